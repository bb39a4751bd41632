"""Up-front checks of evaluate requests, run by the daemon at submit (manifest `checks:`).
No torch here: this runs on every submit."""

from __future__ import annotations

import importlib.util
from typing import Any

Problems = list[tuple[str, str]]


def serve(params: dict[str, Any], inputs: dict[str, Any], facts: dict[str, Any]) -> tuple[Problems, Problems]:
    """The vLLM backend needs vllm installed and a CUDA GPU; refused before the job queues otherwise."""
    if params.get("backend") != "vllm":
        return [], []
    missing = [why for why, ok in (("vllm is not installed", importlib.util.find_spec("vllm") is not None),
                                   ("no CUDA GPU slot", bool(facts.get("cuda")))) if not ok]
    if missing:
        return [("backend", f"the vllm backend needs vllm and a CUDA GPU: {'; '.join(missing)}; "
                            "use transformers")], []
    return [], []
