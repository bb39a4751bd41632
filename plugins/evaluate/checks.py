"""Up-front checks of evaluate requests, run by the daemon at submit (manifest `checks:`), and the
choice of the serving backend. No torch here: this runs on every submit."""

from __future__ import annotations

import importlib.util
from typing import Any

Problems = list[tuple[str, str]]
BACKENDS = ("auto", "transformers", "vllm")


def choose_backend(requested: str, *, vllm_installed: bool, cuda: bool, quantization: str | None) -> tuple[str, str]:
    """(backend, why) for a serve request: `auto` takes vLLM when it is installed, a CUDA GPU is there and
    the base is not bitsandbytes-quantised, else transformers; an explicit choice is kept. `why` says
    what was missing (empty when nothing was)."""
    missing = [why for why, ok in (("vllm is not installed", vllm_installed), ("no CUDA GPU is visible", cuda),
                                   (f"the base is loaded quantised ({quantization}), which tunelog serves with "
                                    "transformers only", quantization is None)) if not ok]
    if requested == "auto":
        return ("transformers" if missing else "vllm"), "; ".join(missing)
    return requested, "; ".join(missing) if requested == "vllm" else ""


def vllm_refusal(why: str) -> str:
    return f"the vllm backend needs vllm, a CUDA GPU and an unquantised base: {why}; use transformers (or auto)"


def serve(params: dict[str, Any], inputs: dict[str, Any], facts: dict[str, Any]) -> tuple[Problems, Problems]:
    """An explicit vLLM backend without vllm, a GPU slot or with a quantised base is refused before the job
    queues; `auto` decides in the job, where the GPU is."""
    if params.get("backend") != "vllm":
        return [], []
    quantization = params.get("quantization")
    _, why = choose_backend("vllm", vllm_installed=importlib.util.find_spec("vllm") is not None,
                            cuda=bool(facts.get("cuda")), quantization=None if quantization in (None, "none")
                            else str(quantization))
    return ([("backend", vllm_refusal(why))] if why else []), []


def generate(params: dict[str, Any], inputs: dict[str, Any], facts: dict[str, Any]) -> tuple[Problems, Problems]:
    """Streaming answers one prompt at a time, so it does not go with a batch of prompts."""
    size = params.get("batch_size", 1)
    if params.get("stream") and isinstance(size, int) and size > 1:
        return [("batch_size", f"streaming generates one prompt at a time; set batch_size to 1 or stream to false "
                               f"(got {size})")], []
    return [], []
