"""Helpers for the lora_trainer tests: a small chat dataset artifact and an in-process training run."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from tunelog.plugins.context import Context

_SUBJECTS = ("river", "mountain", "cloud", "stone", "forest", "ocean", "city", "village", "apple", "cherry")
_ANSWERS = ("green", "blue", "red", "bright", "dark", "quick", "slow", "calm", "happy", "small")


def chat_records(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Short question/answer conversations in the tiny tokenizer's vocabulary."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        i = rng.randrange(len(_SUBJECTS))
        extra = " ".join(rng.choice(_ANSWERS) for _ in range(rng.randrange(0, 6)))
        out.append({"messages": [
            {"role": "user", "content": f"what is the {_SUBJECTS[i]} {extra}".strip()},
            {"role": "assistant", "content": f"the {_SUBJECTS[i]} is {_ANSWERS[i]} {extra}".strip()}]})
    return out


def write_dataset(folder: Path, *, n_train: int = 24, n_validation: int = 0, seed: int = 0) -> Path:
    """A dataset artifact folder as the datasets plugin writes it (train.jsonl, validation.jsonl, meta.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    records = chat_records(n_train + n_validation, seed=seed)
    splits = {"train": records[:n_train], "validation": records[n_train:]}
    for name, rows in splits.items():
        if rows:
            (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "meta.json").write_text(json.dumps({"format": "messages", "kind": "chat",
                                                  "counts": {k: len(v) for k, v in splits.items() if v}}))
    return folder


BASE = {"threads": 1, "max_steps": 4, "batch_size": 4, "max_length": 64, "pad_to_multiple": 16, "seed": 0,
        "lr": 0.01}
"""Small, fast settings; lr is high so a few steps visibly change the model."""


def run_train(root: Path, model_dir: Path, dataset: Path | str, *, resume_from: Path | None = None,
              job_id: str = "job", on_message: Any = None, run_id: str | None = None, **params: Any) -> tuple[dict[str, Any], list, Context]:
    """Run lora_trainer.train in-process; returns (outputs, messages, context).

    `on_message(ctx, kind, body)` sees every message as it is sent (e.g. to request a stop).
    """
    from tunelog.plugins.lora_trainer import backend
    from tunelog.store.artifacts import ArtifactStore

    got: list[tuple[str, dict[str, Any]]] = []
    store = ArtifactStore(root / "artifacts")
    holder: dict[str, Context] = {}

    def sink(kind: str, body: dict[str, Any]) -> None:
        got.append((kind, body))
        if on_message is not None:
            on_message(holder["ctx"], kind, body)

    ctx = Context(job_id=job_id, workdir=root / "jobs" / job_id, artifacts=store, sink=sink, resume_from=resume_from,
                  run_id=run_id)
    holder["ctx"] = ctx
    sha = dataset if isinstance(dataset, str) else store.put_dir(dataset).sha256
    outputs = backend.train(ctx, {**BASE, **params}, {"model": str(model_dir), "dataset": sha})
    return outputs, got, ctx
