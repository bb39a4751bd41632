"""A DPO worker killed with SIGKILL mid-training, through the real daemon, resumes from its last
periodic checkpoint to the exact bytes of an uninterrupted run (CPU, deterministic mode)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.daemon.daemon_proc import running
from tests.daemon.test_runs import wait_run
from tests.daemon.test_training_runs import TRAIN, ref, submit, wait_checkpoint
from tests.support.stages import pairs
from tunelog.store.artifacts import ArtifactStore

pytestmark = pytest.mark.slow
pytest.importorskip("trl")


def test_a_dpo_worker_killed_mid_training_resumes_to_the_exact_bytes(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}) + "\n"
                            for p in pairs(16)))
    graph = {"nodes": {
        "data": {"op": "datasets.prepare", "inputs": {"source": str(data)}, "params": {"format": "preference"}},
        "dpo": {"op": "lora_trainer.train", "params": {**TRAIN, "stage": "dpo", "max_steps": 40, "save_every": 4},
                "inputs": {"model": str(tiny_model_dir), "dataset": ref("data", "dataset")}}}}
    with running(tmp_path / "home", builtins=True) as d:
        straight = submit(d, graph)
        run_id = d.post("/v1/runs", json={"graph": graph, "no_cache": True}).json()["run"]["run_id"]
        job = wait_checkpoint(d, run_id, "dpo", at_least=8)
        os.killpg(job["pid"], signal.SIGKILL)
        assert wait_run(d, run_id)["run"]["nodes"]["dpo"]["state"] == "failed"
        assert d.post(f"/v1/runs/{run_id}/resume", json={}).status_code == 202
        resumed = wait_run(d, run_id, timeout=600)
        assert resumed["run"]["state"] == "succeeded"
        a, b = (r["run"]["nodes"]["dpo"]["outputs"]["adapter"] for r in (straight, resumed))
        store = ArtifactStore(tmp_path / "home" / "artifacts")
        assert (store.path(a) / "adapter_model.safetensors").read_bytes() == \
            (store.path(b) / "adapter_model.safetensors").read_bytes()
        assert a == b
