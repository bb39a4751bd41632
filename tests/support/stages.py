"""Preference and KTO dataset artifacts for the stage tests, with a signal a tiny model can learn in
a few steps: the preferred answer is the other one plus a fixed sign-off."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

SIGN_OFF = " happy calm"
_SUBJECTS = ("river", "mountain", "cloud", "stone", "forest", "ocean", "city", "village")
_ANSWERS = ("green", "blue", "red", "bright", "dark", "quick", "slow", "small")


def pairs(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Preference records as the datasets plugin normalises them: prompt turns, chosen and rejected text."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        i = rng.randrange(len(_SUBJECTS))
        plain = f"the {_SUBJECTS[i]} is {_ANSWERS[rng.randrange(len(_ANSWERS))]}"
        out.append({"prompt": [{"role": "user", "content": f"what is the {_SUBJECTS[i]}"}],
                    "chosen": plain + SIGN_OFF, "rejected": plain})
    return out


def kto_rows(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """KTO records: each pair split into a desirable and an undesirable row."""
    out = []
    for pair in pairs(n // 2 + n % 2, seed=seed):
        out.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
        out.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    return out[:n]


def write_records(folder: Path, records: list[dict[str, Any]], *, kind: str) -> Path:
    """A dataset artifact folder (train.jsonl + meta.json) as the datasets plugin writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "meta.json").write_text(json.dumps({"format": kind, "kind": kind, "counts": {"train": len(records)}}))
    return folder


def run_stage(root: Path, model_dir: Path, dataset: Path, *, adapter: str | None = None, job_id: str = "job",
              resume_from: Path | None = None, on_message: Any = None, run_id: str | None = None, **params: Any) -> tuple[dict[str, Any], list, Any]:
    """Run lora_trainer.train in-process with the stage's inputs (and an optional adapter to continue)."""
    from tests.support.trainer import BASE
    from tunelog.plugins.context import Context
    from tunelog.plugins.lora_trainer import backend
    from tunelog.store.artifacts import ArtifactStore

    got: list[tuple[str, dict[str, Any]]] = []
    store = ArtifactStore(root / "artifacts")
    holder: dict[str, Any] = {}

    def sink(kind: str, body: dict[str, Any]) -> None:
        got.append((kind, body))
        if on_message is not None:
            on_message(holder["ctx"], kind, body)

    ctx = Context(job_id=job_id, workdir=root / "jobs" / job_id, artifacts=store, sink=sink, resume_from=resume_from,
                  run_id=run_id)
    holder["ctx"] = ctx
    inputs = {"model": str(model_dir), "dataset": store.put_dir(dataset).sha256,
              **({"adapter": adapter} if adapter else {})}
    return backend.train(ctx, {**BASE, **params}, inputs), got, ctx


def curve(messages: list[tuple[str, dict[str, Any]]], name: str = "loss") -> dict[int, float]:
    """Step -> value of one metric, from the messages of a run."""
    return {b["step"]: b[name] for kind, b in messages if kind == "metrics" and name in b}
