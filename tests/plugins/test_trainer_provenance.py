"""A training job of a run records its provenance (TrainingStarted) before the first step."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.support.trainer import run_train, write_dataset
from tunelog.events.runs import TrainingStarted

torch.set_num_threads(1)


def test_training_records_what_decides_its_result(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_dataset(tmp_path / "data", n_train=8)
    outputs, messages, _ = run_train(tmp_path, tiny_model_dir, data, run_id="r1", max_steps=2)
    started = [b["event"] for kind, b in messages if kind == "event" and isinstance(b["event"], TrainingStarted)]
    assert len(started) == 1
    ev = started[0]
    assert (ev.run_id, ev.job_id, ev.seed, ev.resumed_from_step) == ("r1", "job", 0, None)
    assert ev.params["max_steps"] == 2 and ev.params["lr"] == 0.01
    assert {"python", "torch", "transformers", "peft", "accelerate"} <= set(ev.libraries)
    assert ev.libraries == {"python": ev.libraries["python"], **outputs["metrics"]["versions"]}  # one probe
    assert ev.model["weights_sha256"] and ev.model["ref"] == str(tiny_model_dir)
    assert len(ev.dataset["sha256"]) == 64 and len(ev.dataset["tokenized_sha256"]) == 64
    assert ev.device["type"] == "cpu" and ev.device["threads"] == 1 and ev.device["cpu_capability"]
    assert ev.determinism["settings_sha256"]
    # The first message that is not a log line precedes every metric: provenance comes first.
    kinds = [kind for kind, _ in messages if kind != "log"]
    assert kinds.index("event") < kinds.index("metrics")


def test_a_job_outside_a_run_records_nothing_extra(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_dataset(tmp_path / "data", n_train=8)
    _, messages, _ = run_train(tmp_path, tiny_model_dir, data, max_steps=1)
    assert not [b for kind, b in messages if kind == "event"]
