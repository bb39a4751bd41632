"""The torch/peft side of `evaluate`: one base model with every adapter attached, switched in place.

Adapters load with peft's multi-adapter API (the first with `PeftModel.from_pretrained(...,
adapter_name=)`, the rest with `load_adapter`); `set_adapter` activates one, and
`disable_adapter()` gives the untouched base. Imported only inside operations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunelog.plugins.common.data import IGNORE_INDEX, collate
from tunelog.plugins.common.models import disable_bnb_cpu_repacking, load_model


def load(base_dir: Path, named: list[tuple[str, Path]], *, dtype: str, quantization: str | None) -> Any:
    """The base model (optionally bitsandbytes-quantised) in eval mode with every adapter attached."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(base_dir, dtype=dtype, quantization=quantization,
                       compute_dtype=dtype, device=device)
    # bitsandbytes repacks 4-bit weights in place on the first eval forward on AVX512-BF16 CPUs,
    # which breaks later training and merges of the same weights: flag every layer before any forward.
    disable_bnb_cpu_repacking(model)
    if named:
        from peft import PeftModel

        (first, folder), *rest = named
        model = PeftModel.from_pretrained(model, str(folder), adapter_name=first)
        for name, folder in rest:
            model.load_adapter(str(folder), adapter_name=name)
    return model.eval()


@contextmanager
def active(model: Any, name: str) -> Iterator[None]:
    """Run the body with adapter `name` active, or with every adapter disabled for `base`."""
    if name != "base":
        model.set_adapter(name)
        yield
    elif hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield
    else:
        yield


def score(model: Any, name: str, batches: list[list[dict[str, Any]]], *, pad_id: int,
          stop: Callable[[], bool]) -> tuple[float, int]:
    """(summed next-token loss, number of target tokens) of variant `name` over the batches."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    with torch.inference_mode(), active(model, name):
        for features in batches:
            if stop():
                break
            batch = collate(features, pad_id=pad_id)
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
            labels = batch["labels"][:, 1:].to(device)
            total += float(F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=IGNORE_INDEX, reduction="sum"))
            tokens += int((labels != IGNORE_INDEX).sum())
    return total, tokens


def prompt_ids(tokenizer: Any, prompt: str, *, chat: bool) -> list[int]:
    """Token ids of a prompt: a user turn plus the generation prompt of the chat template, or plain text."""
    if not chat:
        return list(tokenizer(prompt)["input_ids"])
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def generate(model: Any, tokenizer: Any, name: str, ids: list[int], *, max_new_tokens: int = 64,
             greedy: bool = True, temperature: float = 0.7, top_p: float = 1.0, seed: int = 0) -> str:
    """Decoded new text of variant `name` for one prompt; the seed is reset so variants sample alike."""
    import torch
    from transformers import GenerationConfig

    sample = not greedy and temperature > 0
    # A fresh config: sampling defaults shipped in the model's generation_config must not leak into greedy runs.
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=sample,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                              **({"temperature": temperature, "top_p": top_p} if sample else {}))
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    torch.manual_seed(seed)
    with torch.inference_mode(), active(model, name):
        out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=config)
    return str(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))
