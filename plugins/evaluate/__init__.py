"""The built-in `evaluate` plugin: loss/perplexity and sample generations, base vs adapters."""
