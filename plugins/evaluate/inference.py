"""The torch/peft side of `evaluate`: one base model with every adapter attached, switched in place.

Adapters load with peft's multi-adapter API (the first with `PeftModel.from_pretrained(...,
adapter_name=)`, the rest with `load_adapter`); `set_adapter` activates one, and
`disable_adapter()` gives the untouched base. Imported only inside operations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


def prompt_ids(tokenizer: Any, prompt: str, *, chat: bool, system: str = "",
               history: list[dict[str, str]] | None = None, template: str | None = None) -> list[int]:
    """Token ids of a prompt: earlier turns, an optional system message, the prompt as a user turn and
    the generation prompt of the chat template (`template`, else the tokenizer's); or, with `chat`
    off, the plain text."""
    if not chat:
        return list(tokenizer(prompt)["input_ids"])
    messages = [{"role": "system", "content": system}] if system else []
    messages += [*(history or []), {"role": "user", "content": prompt}]
    return messages_ids(tokenizer, messages, template=template)


def messages_ids(tokenizer: Any, messages: list[dict[str, str]], *, template: str | None = None) -> list[int]:
    """Token ids of a conversation under the chat template, ending with the assistant's generation prompt."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=template)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class Generation:
    """One answer: its text (cut before a stop string), new tokens generated, and why it ended."""

    text: str
    tokens: int
    finish: str
    """`stop` (eos or a stop string) or `length` (max_new_tokens reached)."""


def complete(model: Any, tokenizer: Any, name: str, ids: list[int], *, streamer: Any = None,
             **settings: Any) -> Generation:
    """Generate with variant `name` for one prompt (see `complete_many` for the settings). A
    `streamer` (a transformers `BaseStreamer`) receives the tokens as they come."""
    return complete_many(model, tokenizer, name, [ids], streamer=streamer, **settings)[0]


def complete_many(model: Any, tokenizer: Any, name: str, prompts: list[list[int]], *, max_new_tokens: int = 64,
                  greedy: bool = True, temperature: float = 0.7, top_p: float = 1.0, top_k: int = 0,
                  min_p: float = 0.0, repetition_penalty: float = 1.0, seed: int = 0,
                  stop: list[str] | tuple[str, ...] = (), streamer: Any = None) -> list[Generation]:
    """Generate with variant `name` for several prompts at once, left-padded into one batch; the
    seed is reset first so variants sample alike.

    Sampling happens when `greedy` is off and temperature > 0; top_k 0 and min_p 0 switch those
    filters off. Each answer ends at eos, at a stop string (the text is cut before it) or after
    `max_new_tokens`; an answer that ended early is padded while the others go on, and the padding
    is not part of it.
    """
    import torch
    from transformers import GenerationConfig

    sample = not greedy and temperature > 0
    settings: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "top_k": top_k or None,
                                "min_p": min_p or None} if sample else {}
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    pad = eos if pad is None else pad
    # A fresh config: sampling defaults shipped in the model's generation_config must not leak into greedy runs.
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=sample, pad_token_id=pad,
                              eos_token_id=eos, repetition_penalty=repetition_penalty,
                              stop_strings=list(stop) or None, **settings)
    device = next(model.parameters()).device
    width = max(len(ids) for ids in prompts)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=device)
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)
    torch.manual_seed(seed)
    with torch.inference_mode(), active(model, name):
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                             tokenizer=tokenizer if stop else None, streamer=streamer)
    return [_answer(tokenizer, [int(t) for t in row[width:]], eos=eos, pad=pad, max_new_tokens=max_new_tokens,
                    stop=stop) for row in out]


def _answer(tokenizer: Any, new: list[int], *, eos: int | None, pad: int, max_new_tokens: int,
            stop: list[str] | tuple[str, ...]) -> Generation:
    """One row of a batch's output as an answer: up to its eos (kept, as generate leaves it), without
    the padding that follows an answer that ended before the others."""
    if eos is not None and eos in new:
        new = new[: new.index(eos) + 1]
    elif pad != eos:
        while new and new[-1] == pad:
            new.pop()
    text = str(tokenizer.decode(new, skip_special_tokens=True))
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    ended = cut >= 0 or (len(new) > 0 and new[-1] == eos) or len(new) < max_new_tokens
    return Generation(text=text[:cut] if cut >= 0 else text, tokens=len(new), finish="stop" if ended else "length")
