"""`datasets.render`: a prepared dataset as a model will see it, for the Data page before training.

The first records go through the model's chat template and tokenizer, cut into pieces marked
trained (what the loss is computed on), not trained, or cut off by `max_length`; every record is
encoded as the trainer encodes it, so the counts of records truncated or dropped, and why, are the
trainer's own. It runs as a job (the tokenizer needs transformers), never in the daemon.
"""

from __future__ import annotations

from typing import Any

from tunelog.events.errors import ValidationError
from tunelog.plugins.api import JobContext
from tunelog.plugins.common.adapters import is_sha, model_folder
from tunelog.plugins.common.data import encode_dataset, marked_pieces, read_dataset, record_kind


def conversation(record: dict[str, Any]) -> list[dict[str, str]]:
    """The messages a record trains on: a chat record's own, or a preference / KTO prompt followed by
    its chosen answer / completion as the assistant's turn (the part the stage scores)."""
    kind = record_kind(record)
    if kind == "chat":
        return list(record["messages"])
    if kind == "text":
        return []
    answer = record["chosen"] if kind == "preference" else record["completion"]
    return [*record["prompt"], {"role": "assistant", "content": answer}]


def render(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The report: {"kind", "records": [{pieces, tokens, trained_tokens, truncated}], "counts"}."""
    dataset = inputs.get("dataset")
    if not is_sha(dataset):
        raise ValidationError(f"inputs.dataset: expected a dataset artifact hash, got {str(dataset)[:80]!r}")
    records = read_dataset(ctx.artifact_path(dataset))
    from tunelog.plugins.common.models import load_tokenizer

    ctx.progress(0, 2, "loading the tokenizer")
    tokenizer = load_tokenizer(model_folder(ctx, inputs.get("model")))
    max_length, truncation = int(params.get("max_length", 512)), str(params.get("truncation", "right"))
    on_prompt = bool(params.get("train_on_prompt", False))
    ctx.progress(1, 2, "rendering")
    shown = []
    for record in records[: int(params.get("rows", 5))]:
        messages = conversation(record)
        if not messages:
            ids = tokenizer(record["text"], add_special_tokens=True)["input_ids"]
            shown.append({"pieces": [[record["text"], True]], "tokens": len(ids), "trained_tokens": len(ids),
                          "truncated": False})
            continue
        shown.append(marked_pieces(tokenizer, messages, max_length=max_length, train_on_prompt=on_prompt,
                                   truncation=truncation))  # type: ignore[arg-type]
    kind = record_kind(records[0]) if records else "chat"
    counts = encode_dataset(tokenizer, records, max_length=max_length, train_on_prompt=on_prompt,
                            truncation=truncation).counts if kind in ("chat", "text") \
        else {"kind": kind, "records": len(records), "max_length": max_length,
              "longer_than_max_length": sum(marked_pieces(tokenizer, conversation(r), max_length=max_length)["truncated"]
                                            for r in records)}
    ctx.progress(2, 2, "done")
    template = getattr(tokenizer, "chat_template", None)
    return {"report": {"kind": kind, "records": shown, "counts": counts, "chat_template": bool(template),
                       "max_length": max_length}}
