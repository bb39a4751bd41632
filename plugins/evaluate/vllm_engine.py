"""The vLLM backend of `evaluate.serve`: one `vllm.LLM` on the base model with LoRA enabled, each
adapter served through a `LoRARequest` (vLLM's multi-LoRA batching), the base with none.

Chosen only where vllm is installed and a CUDA GPU is visible (`checks.choose_backend`). The test
machines have neither, so this module is not run by the test suite; what is tested there is the
choice and the refusals. Streaming sends the whole answer as one piece (the offline `LLM` API
answers whole requests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelog.plugins.common.adapters import read_adapter_config

from .inference import Generation
from .serving import Complete

_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The `max_lora_rank` values vLLM accepts."""


def load(base_dir: Path, named: list[tuple[str, Path]], *, dtype: str) -> Complete:
    """Start vLLM on `base_dir` with room for every adapter; returns the server's `complete`."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    rank = max((int(read_adapter_config(folder, where=name).get("r", 8)) for name, folder in named), default=8)
    lora: dict[str, Any] = {}
    if named:
        lora = {"enable_lora": True, "max_loras": len(named),
                "max_lora_rank": next((r for r in _LORA_RANKS if r >= rank), _LORA_RANKS[-1])}
    llm = LLM(model=str(base_dir), dtype=dtype, **lora)
    requests = {name: LoRARequest(name, i + 1, str(folder)) for i, (name, folder) in enumerate(named)}

    def complete(name: str, ids: list[int], *, streamer: Any = None, max_new_tokens: int = 64, greedy: bool = True,
                 temperature: float = 0.7, top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0,
                 repetition_penalty: float = 1.0, seed: int = 0, stop: list[str] | tuple[str, ...] = ()) -> Generation:
        sample = not greedy and temperature > 0
        params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature if sample else 0.0,
                                top_p=top_p if sample else 1.0, top_k=(top_k or -1) if sample else -1,
                                min_p=min_p if sample else 0.0, repetition_penalty=repetition_penalty, seed=seed,
                                stop=list(stop) or None)
        [out] = llm.generate({"prompt_token_ids": ids}, params, lora_request=requests.get(name), use_tqdm=False)
        done = out.outputs[0]
        if streamer is not None:  # a transformers TextIteratorStreamer: the text, then its end
            streamer.on_finalized_text(done.text, stream_end=True)
        return Generation(text=done.text, tokens=len(done.token_ids),
                          finish="length" if done.finish_reason == "length" else "stop")

    return complete
