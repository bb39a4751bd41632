"""The built-in `adapter_merge` plugin: merge an adapter into its base model, or combine adapters."""
