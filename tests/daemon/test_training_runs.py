"""Real training through the real daemon on a tiny model: a multi-node workflow with its cache,
exact replay, a daemon killed mid-training, and a worker killed mid-training then resumed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.daemon_proc import Daemon, running
from tests.daemon.test_runs import states, wait_run
from tests.support.trainer import chat_records
from tunelog.store.artifacts import ArtifactStore

pytestmark = pytest.mark.slow

TRAIN = {"max_steps": 3, "batch_size": 4, "max_length": 64, "pad_to_multiple": 16, "threads": 1, "lr": 0.01,
         "deterministic": True}


def write_data(path: Path, n: int = 16, seed: int = 0) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in chat_records(n, seed=seed)))
    return path


def ref(node: str, output: str) -> dict[str, str]:
    return {"node": node, "output": output}


def pipeline(model: Path, data: Path, *, lr1: float = 0.01) -> dict[str, Any]:
    """dataset -> two trainers -> each evaluated, and both merged (cat) then evaluated."""
    gen = {"prompts": ["what is the river"], "max_new_tokens": 4}
    return {"nodes": {
        "data": {"op": "datasets.prepare", "inputs": {"source": str(data)}, "params": {"format": "messages"}},
        "t1": {"op": "lora_trainer.train", "params": {**TRAIN, "lr": lr1},
               "inputs": {"model": str(model), "dataset": ref("data", "dataset")}},
        "t2": {"op": "lora_trainer.train", "params": {**TRAIN, "seed": 1},
               "inputs": {"model": str(model), "dataset": ref("data", "dataset")}},
        "e1": {"op": "evaluate.generate", "params": gen, "inputs": {"model": str(model), "adapters": {"t1": ref("t1", "adapter")}}},
        "e2": {"op": "evaluate.generate", "params": gen, "inputs": {"model": str(model), "adapters": {"t2": ref("t2", "adapter")}}},
        "merge": {"op": "adapter_merge.combine", "params": {"combination_type": "cat"},
                  "inputs": {"model": str(model), "adapters": [{"sha256": ref("t1", "adapter"), "weight": 0.5},
                                                               {"sha256": ref("t2", "adapter"), "weight": 0.5}]}},
    }}


def submit(d: Daemon, graph: dict[str, Any], **kw: Any) -> dict[str, Any]:
    r = d.post("/v1/runs", json={"graph": graph, **kw})
    assert r.status_code == 201, r.text
    return wait_run(d, r.json()["run"]["run_id"], timeout=600)


def test_a_training_workflow_runs_caches_and_reruns_only_what_a_change_touches(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_data(tmp_path / "train.jsonl")
    with running(tmp_path / "home", builtins=True) as d:
        first = submit(d, pipeline(tiny_model_dir, data))
        assert first["run"]["state"] == "succeeded", first["run"]["nodes"]
        assert set(states(first).values()) == {"completed"}
        merged = first["run"]["nodes"]["merge"]["outputs"]["adapter"]
        adapters = {a["sha256"]: a for a in d.get("/v1/adapters").json()["adapters"]}
        assert adapters[merged]["source"] == "merge" and len(adapters[merged]["parents"]) == 2
        assert set(first["run"]["nodes"]["e1"]["outputs"]["report"]["what is the river"]) == {"base", "t1"}
        again = submit(d, pipeline(tiny_model_dir, data))
        assert set(states(again).values()) == {"cached"}
        changed = submit(d, pipeline(tiny_model_dir, data, lr1=0.02))
        assert states(changed) == {"data": "cached", "t1": "completed", "t2": "cached", "e1": "completed",
                                   "e2": "cached", "merge": "completed"}


def two_nodes(model: Path, data: Path, **params: Any) -> dict[str, Any]:
    return {"nodes": {
        "data": {"op": "datasets.prepare", "inputs": {"source": str(data)}, "params": {"format": "messages"}},
        "train": {"op": "lora_trainer.train", "params": {**TRAIN, **params},
                  "inputs": {"model": str(model), "dataset": ref("data", "dataset")}}}}


def test_a_replay_is_bit_identical_and_a_changed_input_file_is_named(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_data(tmp_path / "train.jsonl")
    with running(tmp_path / "home", builtins=True) as d:
        original = submit(d, two_nodes(tiny_model_dir, data, max_steps=4))
        run_id = original["run"]["run_id"]
        replay = d.post(f"/v1/runs/{run_id}/replay", json={"verify": True}).json()["run"]
        assert wait_run(d, replay["run_id"], timeout=600)["run"]["state"] == "succeeded"
        report = d.get(f"/v1/runs/{replay['run_id']}/verify").json()["verify"]
        assert report["verdict"] == "bit-identical", report["summary"]
        assert report["nodes"]["train"]["loss"]["verdict"] == "bit-identical"
        write_data(data, seed=5)  # the user edits the data file, then replays the original
        changed = d.post(f"/v1/runs/{run_id}/replay", json={}).json()["run"]
        wait_run(d, changed["run_id"], timeout=600)
        report = d.get(f"/v1/runs/{changed['run_id']}/verify").json()["verify"]
        assert report["verdict"] == "differs"
        drifted = {(x["node"], x["path"]) for x in report["drift"]}
        assert any(node == "data" and "source" in path for node, path in drifted), drifted
        assert any(node == "train" and "dataset" in path for node, path in drifted), drifted


def wait_checkpoint(d: Daemon, run_id: str, node: str, *, at_least: int, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = d.get(f"/v1/runs/{run_id}").json()
        job_id = view["run"]["nodes"][node]["job_id"]
        job = view["jobs"].get(job_id) if job_id else None
        if job and (job.get("checkpoint_step") or 0) >= at_least and job["state"] == "running":
            return job  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise TimeoutError("no checkpoint in time")


def test_killing_the_daemon_mid_training_resumes_the_node_and_finishes(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_data(tmp_path / "train.jsonl")
    home = tmp_path / "home"
    d = Daemon(home, builtins=True).start()
    run_id = d.post("/v1/runs", json={"graph": two_nodes(tiny_model_dir, data, max_steps=400, save_every=5)}).json()["run"]["run_id"]
    job = wait_checkpoint(d, run_id, "train", at_least=5)
    d.stop(signal.SIGKILL)
    with running(home, builtins=True) as d2:
        view = wait_run(d2, run_id, timeout=900)
        assert view["run"]["state"] == "succeeded", view["run"]["nodes"]
        node = view["run"]["nodes"]["train"]
        assert len(node["jobs"]) == 2 and view["jobs"][node["jobs"][0]]["state"] == "interrupted"
        assert view["jobs"][node["jobs"][1]]["resume_of"] == job["job_id"]
        assert view["run"]["nodes"]["data"]["state"] == "completed" and len(view["run"]["nodes"]["data"]["jobs"]) == 1
        resumed = view["run"]["training"][node["jobs"][1]]
        assert resumed["resumed_from_step"] >= 5


def test_a_worker_killed_mid_training_resumes_to_the_exact_bytes_of_an_uninterrupted_run(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_data(tmp_path / "train.jsonl")
    with running(tmp_path / "home", builtins=True) as d:
        graph = two_nodes(tiny_model_dir, data, max_steps=60, save_every=4)
        straight = submit(d, graph)
        run_id = d.post("/v1/runs", json={"graph": graph, "no_cache": True}).json()["run"]["run_id"]
        job = wait_checkpoint(d, run_id, "train", at_least=8)
        os.killpg(job["pid"], signal.SIGKILL)
        failed = wait_run(d, run_id)
        assert failed["run"]["nodes"]["train"]["state"] == "failed"
        assert d.post(f"/v1/runs/{run_id}/resume", json={}).status_code == 202
        resumed = wait_run(d, run_id, timeout=600)
        assert resumed["run"]["state"] == "succeeded"
        a, b = straight["run"]["nodes"]["train"]["outputs"]["adapter"], resumed["run"]["nodes"]["train"]["outputs"]["adapter"]
        store = ArtifactStore(tmp_path / "home" / "artifacts")
        weights = [(store.path(x) / "adapter_model.safetensors").read_bytes() for x in (a, b)]
        assert weights[0] == weights[1]
        assert a == b  # the whole adapter folder, config included


def test_a_job_with_two_devices_trains_as_two_processes_and_reports_once(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The multi-device path on CPU slots: the daemon starts the worker under torchrun (gloo DDP);
    rank 0 alone reports, and the adapter loads like any other (accelerate launch does the same on GPUs)."""
    data = write_data(tmp_path / "train.jsonl")
    with running(tmp_path / "home", builtins=True, env={"TUNELOG_SLOTS": "cpu0,cpu1", "OMP_NUM_THREADS": "1"}) as d:
        view = submit(d, two_nodes(tiny_model_dir, data, max_steps=3, devices=2))
        assert view["run"]["state"] == "succeeded", view["run"]["nodes"]
        job = view["jobs"][view["run"]["nodes"]["train"]["job_id"]]
        assert job["devices"] == 2 and job["slot"] == "cpu0,cpu1"
        events = d.get("/v1/events", params={"stream": f"job-{job['job_id']}", "type": "job-metrics"}).json()["events"]
        steps = [p["step"] for e in events for p in e["event"]["points"] if "loss" in p]
        assert steps == sorted(set(steps)) and steps[-1] == 3  # one reporter: no step twice
        too_many = d.post("/v1/runs", json={"graph": two_nodes(tiny_model_dir, data, max_steps=3, devices=3)})
        assert too_many.status_code == 422
        assert too_many.json()["error"]["problems"][0]["where"] == "nodes.train.params.devices"
        for ask, field in (({"devices": 2, "nodes": 2}, "nodes"), ({"gpu_type": "A100"}, "gpu_type")):
            refused = d.post("/v1/runs", json={"graph": two_nodes(tiny_model_dir, data, max_steps=3, **ask)})
            assert refused.status_code == 422, refused.text  # a local daemon: one machine, no GPU model to pick
            error = refused.json()["error"]
            assert error["problems"][0]["where"] == f"nodes.train.params.{field}", error
            assert "tunectl daemon config set backend ray://HOST:PORT" in error["hint"], error
