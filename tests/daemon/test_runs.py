"""Workflow runs through the real daemon: ordering, cache, failure propagation, validation, resume."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from tests.daemon.daemon_proc import Daemon, running


def graph(text: str = "hello", *, fail: bool = True) -> dict[str, Any]:
    nodes: dict[str, Any] = {
        "a": {"op": "testops.outputs", "params": {"text": text}},
        "b": {"op": "testops.outputs", "params": {"text": "second"}, "inputs": {"data": {"node": "a", "output": "report"}}},
        "c": {"op": "testops.outputs", "params": {"text": "independent"}},
    }
    if fail:
        nodes["f"] = {"op": "testops.fail"}
        nodes["after_f"] = {"op": "testops.outputs", "inputs": {"data": {"node": "f", "output": "nothing"}}}
    return {"description": "test graph", "nodes": nodes}


def wait_run(d: Daemon, run_id: str, *, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = d.get(f"/v1/runs/{run_id}").json()
        if view["run"]["state"] != "running":
            return view  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} still running: {view['run']['nodes']}")


def states(view: dict[str, Any]) -> dict[str, str]:
    return {n: s["state"] for n, s in view["run"]["nodes"].items()}


def test_a_malformed_graph_reports_every_problem_with_node_and_port_and_appends_nothing(tmp_path: Path) -> None:
    bad = {"nodes": {
        "x": {"op": "testops.outputs", "params": {"text": 3, "nope": 1}, "inputs": {"data": {"node": "y", "output": "report"}}},
        "y": {"op": "testops.outputs", "inputs": {"data": {"node": "x", "output": "report"}}},
        "z": {"op": "testops.nosuch"},
        "w": {"op": "ghost.op"},
        "v": {"op": "testops.checkpointing", "inputs": {"extra": "1"}},
        "u": {"op": "testops.outputs", "inputs": {"data": {"node": "missing", "output": "report"}}},
        "t": {"op": "testops.outputs", "inputs": {"data": {"node": "v", "output": "nothing"}}},
    }}
    with running(tmp_path / "home") as d:
        head = d.get("/v1/status").json()["head"]
        r = d.post("/v1/runs", json={"graph": bad})
        assert r.status_code == 422
        where = {p["where"]: p["message"] for p in r.json()["error"]["problems"]}
        assert "nodes.x.params.text" in where and "nodes.x.params.nope" in where
        assert "unknown operation" in where["nodes.z.op"] and "unknown operation" in where["nodes.w.op"]
        assert "unknown input port" in where["nodes.v.inputs.extra"]
        assert "unknown node 'missing'" in where["nodes.u.inputs.data"]
        assert "has no output 'nothing'" in where["nodes.t.inputs.data"]
        assert any("cycle" in m for m in where.values())
        assert d.post("/v1/workflows/validate", json={"graph": bad}).status_code == 422
        assert d.get("/v1/status").json()["head"] == head


def test_a_run_executes_in_order_fails_downstream_only_and_is_cached_next_time(tmp_path: Path) -> None:
    with running(tmp_path / "home") as d:
        r = d.post("/v1/runs", json={"graph": graph(), "command_id": "run-1"})
        assert r.status_code == 201, r.text
        run_id = r.json()["run"]["run_id"]
        assert d.post("/v1/runs", json={"graph": graph(), "command_id": "run-1"}).json()["run"]["run_id"] == run_id
        view = wait_run(d, run_id)
        assert view["run"]["state"] == "failed"
        assert states(view) == {"a": "completed", "b": "completed", "c": "completed", "f": "failed",
                                "after_f": "skipped"}
        b_out = view["run"]["nodes"]["b"]["outputs"]["text"]
        assert b_out == "second\nhello"
        again = wait_run(d, d.post("/v1/runs", json={"graph": graph()}).json()["run"]["run_id"])
        assert states(again) == {"a": "cached", "b": "cached", "c": "cached", "f": "failed", "after_f": "skipped"}
        # Editing one node re-runs it and what depends on it, nothing else.
        edited = wait_run(d, d.post("/v1/runs", json={"graph": graph("changed", fail=False)}).json()["run"]["run_id"])
        assert states(edited) == {"a": "completed", "b": "completed", "c": "cached"}
        assert edited["run"]["state"] == "succeeded"
        assert edited["run"]["nodes"]["b"]["outputs"]["text"] == "second\nchanged"
        forced = wait_run(d, d.post("/v1/runs", json={"graph": graph("changed", fail=False), "force": ["c"]}).json()["run"]["run_id"])
        assert states(forced) == {"a": "cached", "b": "cached", "c": "completed"}
        nocache = wait_run(d, d.post("/v1/runs", json={"graph": graph("changed", fail=False), "no_cache": True}).json()["run"]["run_id"])
        assert set(states(nocache).values()) == {"completed"}


def test_saved_workflows_are_versioned(tmp_path: Path) -> None:
    with running(tmp_path / "home") as d:
        assert d.post("/v1/workflows", json={"name": "pipe", "graph": graph(fail=False)}).json()["workflow"]["version"] == 1
        assert d.post("/v1/workflows", json={"name": "pipe", "graph": graph("v2", fail=False)}).json()["workflow"]["version"] == 2
        assert d.get("/v1/workflows/pipe", params={"version": 1}).json()["workflow"]["graph"] == graph(fail=False)
        run = d.post("/v1/runs", json={"workflow": "pipe@1"}).json()["run"]
        assert (run["workflow"], run["workflow_version"]) == ("pipe", 1)
        assert wait_run(d, run["run_id"])["run"]["state"] == "succeeded"


def test_a_daemon_stop_mid_run_resumes_the_node_from_its_checkpoint(tmp_path: Path) -> None:
    home = tmp_path / "home"
    g = {"nodes": {"first": {"op": "testops.outputs"},
                   "count": {"op": "testops.checkpointing", "params": {"steps": 300, "step_s": 0.02}},
                   "last": {"op": "testops.outputs", "inputs": {"data": {"node": "first", "output": "report"}}}}}
    d = Daemon(home).start()
    run_id = d.post("/v1/runs", json={"graph": g}).json()["run"]["run_id"]
    deadline = time.monotonic() + 30
    # Stop once the counting job has reported steps, so its checkpoint is past step 0.
    while not any(j["operation"] == "checkpointing" and j["step"] > 0
                  for j in d.get("/v1/jobs", params={"state": "running"}).json()["jobs"]):
        assert time.monotonic() < deadline, "the counting job reported no step in time"
        time.sleep(0.05)
    d.stop(signal.SIGTERM)
    with running(home) as d2:
        view = wait_run(d2, run_id)
        count = view["run"]["nodes"]["count"]
        assert view["run"]["state"] == "succeeded" and len(count["jobs"]) == 2
        assert count["outputs"]["step"] == 300 and count["outputs"]["resumed_from"] > 0
        first_job = view["jobs"][count["jobs"][0]]
        assert first_job["state"] == "interrupted" and first_job["checkpoint_step"] == count["outputs"]["resumed_from"]
        assert view["run"]["nodes"]["first"]["state"] == "completed"
