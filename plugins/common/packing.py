"""Sequence packing without attention across samples, and the collator that batches features.

How a trainer uses it:

    features = pack(encode_dataset(tok, records, max_length=L), max_length=L)
    batch = collate(features[i:i + bs], pad_id=tok.pad_token_id)        # CPU / sdpa / eager
    model(**batch)    # input_ids, labels, position_ids, attention_mask (4-D block-diagonal causal)

`pack` concatenates samples and restarts `position_ids` at 0 for each one (the convention of
transformers' `DataCollatorWithFlattening`). Two ways keep samples from attending to each other:

- `collate(..., packed_mask="4d")` (default): a float (B, 1, L, L) additive mask, 0 where a
  token may attend (same sample, not in the future) and the dtype's most negative value
  elsewhere. transformers passes a 4-D mask as given to sdpa and eager attention. The fill is
  `finfo.min`, not -inf: measured on an H200 (torch 2.11), a float32 mask holding -inf with
  bf16 weights made sdpa silently wrong (logits off by 0.5); finfo.min was exact there, and
  with fp32 weights, with bf16 autocast, and on CPU. float32 (the default `mask_dtype`) works
  with fp32 and bf16 weights; a bf16 mask with fp32 weights and no autocast is refused by sdpa.
- `collate(..., packed_mask="none")`: no attention_mask; the model finds the samples from the
  position_ids restarts. flash-attention (varlen) does this, and so do transformers' own
  sdpa/eager masks, but only when no attention_mask is passed AND no cache is built: call the
  model with `use_cache=False` (or set `model.config.use_cache = False`), else samples leak.

Never pass a 2-D attention_mask of ones with packed features: that lets samples see each other.
Padding tokens get their own positions from 0 so they form a separate block that no sample sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from tunelog.events.errors import ValidationError

IGNORE_INDEX = -100
"""Label of a token that takes no loss (PyTorch cross-entropy's ignore_index)."""


def pack(features: Sequence[dict[str, Any]], *, max_length: int) -> list[dict[str, list[int]]]:
    """Greedy in-order packing of features into rows of at most `max_length` tokens.

    Each packed row has input_ids, labels and position_ids (0.. per sample). The first label of
    every sample becomes -100: in a packed row it would be predicted from the previous sample's
    last token (alone, the first token is never a target anyway), so per-sample losses match.
    """
    rows: list[dict[str, list[int]]] = []
    for number, feature in enumerate(features, start=1):
        n = len(feature["input_ids"])
        if n > max_length:
            raise ValidationError(f"feature {number} has {n} tokens, more than max_length {max_length}",
                                  hint="encode with the same max_length you pack with")
        if n == 0:
            continue
        if not rows or len(rows[-1]["input_ids"]) + n > max_length:
            rows.append({"input_ids": [], "labels": [], "position_ids": []})
        row = rows[-1]
        row["input_ids"] += feature["input_ids"]
        row["labels"] += [IGNORE_INDEX, *feature["labels"][1:]]
        row["position_ids"] += range(n)
    return rows


def collate(features: Sequence[dict[str, Any]], *, pad_id: int, pad_to_multiple: int | None = 64,
            packed_mask: Literal["4d", "none"] = "4d", mask_dtype: Any = None) -> dict[str, Any]:
    """Right-padded tensors for one batch: input_ids, labels (-100 on padding), attention_mask;
    for packed features also position_ids and, with `packed_mask="4d"`, a 4-D block-diagonal
    causal float mask instead of the 2-D one (see the module docstring for `mask_dtype`). Lengths round up to `pad_to_multiple` (fewer
    distinct shapes: oneDNN keeps one kernel set per shape on CPU)."""
    import torch

    if not features:
        raise ValidationError("cannot collate an empty batch")
    if pad_id is None:
        raise ValidationError("pad_id is None", hint="use tokenizer.pad_token_id, or eos_token_id when there is none")
    longest = max(len(f["input_ids"]) for f in features)
    length = -(-longest // pad_to_multiple) * pad_to_multiple if pad_to_multiple and pad_to_multiple > 1 else longest
    shape = (len(features), length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros(shape, dtype=torch.long)
    for b, f in enumerate(features):
        n = len(f["input_ids"])
        input_ids[b, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
        labels[b, :n] = torch.tensor(f["labels"], dtype=torch.long)
        attention[b, :n] = 1
    batch: dict[str, Any] = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
    if not any("position_ids" in f for f in features):
        return batch
    positions = torch.zeros(shape, dtype=torch.long)
    for b, f in enumerate(features):
        n = len(f["input_ids"])
        positions[b, :n] = torch.tensor(f.get("position_ids", range(n)), dtype=torch.long)
        positions[b, n:] = torch.arange(length - n)
    batch["position_ids"] = positions
    if packed_mask == "none":
        del batch["attention_mask"]
    elif packed_mask == "4d":
        batch["attention_mask"] = block_causal_mask(positions, dtype=mask_dtype or torch.float32)
    else:
        raise ValidationError(f"unknown packed_mask {packed_mask!r}", hint="use 4d or none")
    return batch


def block_causal_mask(position_ids: Any, *, dtype: Any) -> Any:
    """(B, 1, L, L) additive mask from packed position_ids: 0 where token i may attend token j
    (both in the same sample, which starts where position_ids is 0, and j <= i), finfo.min elsewhere."""
    import torch

    segment = (position_ids == 0).cumsum(dim=-1)
    length = position_ids.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = (segment[:, :, None] == segment[:, None, :]) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[:, None, :, :]
