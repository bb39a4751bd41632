"""Reproducing runs through the real daemon: replay + verify, drift of a file read by path, diff,
lineage, fork from a checkpoint, and the state at an earlier log position."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.daemon.daemon_proc import Daemon, running
from tests.daemon.test_runs import wait_run


def graph(source: Path) -> dict[str, Any]:
    return {"description": "read, echo, train", "nodes": {
        "read": {"op": "testops.read_file", "inputs": {"path": str(source)}},
        "echo": {"op": "testops.outputs", "params": {"text": "got"}, "inputs": {"data": {"node": "read", "output": "content"}}},
        "train": {"op": "testops.curve", "params": {"steps": 6, "every": 2}},
    }}


def start(d: Daemon, g: dict[str, Any]) -> str:
    r = d.post("/v1/runs", json={"graph": g})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["run"]["run_id"]
    assert wait_run(d, run_id)["run"]["state"] == "succeeded"
    return run_id


def replay(d: Daemon, run_id: str, **body: Any) -> dict[str, Any]:
    r = d.post(f"/v1/runs/{run_id}/replay", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def quiet_state(d: Daemon) -> tuple[int, dict[str, Any]]:
    """The head and the runs and jobs at that head, read while nothing is being appended."""
    for _ in range(50):
        head = d.get("/v1/status").json()["head"]
        rows = {"runs": d.get("/v1/runs").json()["runs"], "jobs": d.get("/v1/jobs").json()["jobs"]}
        if d.get("/v1/status").json()["head"] == head:
            return head, rows
        time.sleep(0.1)
    raise TimeoutError("the log kept growing")


def by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in rows}


def test_replay_verify_drift_diff_lineage_and_time_travel(tmp_path: Path) -> None:
    source = tmp_path / "facts.txt"
    source.write_text("the sky is green\n")
    with running(tmp_path / "home") as d:
        original = start(d, graph(source))
        at, then = quiet_state(d)
        assert d.get(f"/v1/runs/{original}/verify").status_code == 422  # not a replay, no ?against=

        first = replay(d, original, verify=True)
        run = first["run"]
        assert first["verify"] == f"/v1/runs/{run['run_id']}/verify"
        assert (run["replay_of"], run["no_cache"]) == (original, True)
        busy = d.get(first["verify"])
        assert busy.status_code == 409 and "still running" in busy.json()["error"]["message"]
        view = wait_run(d, run["run_id"])
        assert {n["state"] for n in view["run"]["nodes"].values()} == {"completed"}  # really re-ran
        report = d.get(first["verify"]).json()["verify"]
        assert report["verdict"] == "bit-identical", report["summary"]
        assert report["nodes"]["train"]["loss"]["steps"] == {"a": 6, "b": 6, "compared": 6}
        assert report["drift"] == []

        source.write_text("the sky is blue\n")
        second = replay(d, original)["run"]["run_id"]
        wait_run(d, second)
        drifted = d.get(f"/v1/runs/{second}/verify").json()["verify"]
        assert drifted["verdict"] == "differs" and drifted["nodes"]["train"]["verdict"] == "bit-identical"
        paths = {(x["node"], x["path"]): x for x in drifted["drift"]}
        assert paths[("read", "inputs.path")]["recorded"] is False
        assert paths[("echo", "inputs.data")]["a"] != paths[("echo", "inputs.data")]["b"]
        assert drifted["nodes"]["read"]["outputs"]["artifacts_differ"][0]["path"] == "content"
        assert drifted["nodes"]["read"]["verdict"] == drifted["nodes"]["echo"]["verdict"] == "differs"

        diff = d.get("/v1/runs/diff", params={"a": original, "b": second}).json()["diff"]
        assert diff["same_inputs"] is False and diff["nodes"]["train"]["same"] is True
        assert [x["path"] for x in diff["nodes"]["echo"]["inputs_differ"]] == ["inputs.data"]
        assert diff["nodes"]["echo"]["a"]["outputs"]["text"] == "got\nthe sky is green\n"
        assert diff["nodes"]["echo"]["b"]["outputs"]["text"] == "got\nthe sky is blue\n"
        assert diff["nodes"]["train"]["a"]["metrics"] != {}
        assert d.get("/v1/runs/diff", params={"a": original}).status_code == 422

        tree = d.get(f"/v1/runs/{second}/lineage").json()["lineage"]
        assert (tree["run_id"], tree["relation"]) == (original, "origin")
        kids = [(c["run_id"], c["relation"], c.get("focus", False)) for c in tree["children"] if c["kind"] == "run"]
        assert kids == [(run["run_id"], "replay", False), (second, "replay", True)]

        past = d.get("/v1/state", params={"at": at}).json()
        assert past["at"] == at and past["head"] > at
        assert by_key(past["tables"]["runs"]) == by_key(then["runs"])
        assert by_key(past["tables"]["jobs"]) == by_key(then["jobs"])
        assert d.get("/v1/state", params={"at": past["head"] + 1}).status_code == 422
        assert d.get("/v1/state", params={"at": "x"}).status_code == 422


def test_a_jittery_replay_is_within_tolerance_and_a_fork_changes_one_param(tmp_path: Path) -> None:
    noisy = {"nodes": {"train": {"op": "testops.curve", "params": {"steps": 6, "every": 2, "jitter": 1e-7}}}}
    with running(tmp_path / "home") as d:
        original = start(d, noisy)
        again = replay(d, original)["run"]["run_id"]
        wait_run(d, again)
        report = d.get(f"/v1/runs/{again}/verify").json()["verify"]
        assert report["verdict"] == "within-tolerance", report["summary"]
        assert "artifacts differ: weights" in report["nodes"]["train"]["notes"]
        assert report["tolerance"]["rtol"] == 1e-3
        strict = d.get(f"/v1/runs/{again}/verify", params={"rtol": 0, "atol": 0}).json()["verify"]
        assert strict["verdict"] == "differs"

        job = d.get(f"/v1/runs/{original}").json()["run"]["nodes"]["train"]["job_id"]
        events = d.get("/v1/events", params={"stream": f"job-{job}"}).json()["events"]
        saved = {e["event"]["step"]: e["event"]["sha256"] for e in events if e["type"] == "job-checkpointed"}
        assert sorted(saved) == [2, 4, 6]
        bad = d.post(f"/v1/runs/{original}/fork", json={"node": "train", "step": 5, "set": {}})
        assert bad.status_code == 422 and "steps 2, 4, 6" in bad.json()["error"]["problems"][0]["message"]
        bad = d.post(f"/v1/runs/{original}/fork", json={"node": "train", "set": {"nope": 1}})
        assert bad.status_code == 422 and bad.json()["error"]["problems"][0]["where"] == "nodes.train.params.nope"
        assert d.post(f"/v1/runs/{original}/fork", json={"node": "ghost", "set": {}}).status_code == 422

        r = d.post(f"/v1/runs/{original}/fork", json={"node": "train", "step": 4, "set": {"scale": 2.0},
                                                       "command_id": "fork-1"})
        assert r.status_code == 201, r.text
        fork = r.json()["run"]
        assert fork["forked_from"] == {"run": original, "node": "train", "step": 4, "job": job, "checkpoint": saved[4]}
        assert fork["graph"]["nodes"]["train"]["params"]["scale"] == 2.0
        assert d.post(f"/v1/runs/{original}/fork", json={"node": "train", "step": 4, "set": {"scale": 2.0},
                                                         "command_id": "fork-1"}).json()["run"]["run_id"] == fork["run_id"]
        wait_run(d, fork["run_id"])
        diff = d.get("/v1/runs/diff", params={"a": original, "b": fork["run_id"]}).json()["diff"]
        changed = {x["path"]: x for x in diff["nodes"]["train"]["inputs_differ"]}
        assert (changed["graph.params.scale"]["a"], changed["graph.params.scale"]["b"]) == (1.0, 2.0)
        tree = d.get(f"/v1/runs/{original}/lineage").json()["lineage"]
        assert [c["relation"] for c in tree["children"]] == ["replay", "fork at train step 4"]


def test_a_forked_node_continues_from_the_chosen_checkpoint(tmp_path: Path) -> None:
    with running(tmp_path / "home") as d:
        original = start(d, {"nodes": {"train": {"op": "testops.curve", "params": {"steps": 6, "every": 2}}}})
        fork = d.post(f"/v1/runs/{original}/fork", json={"node": "train", "step": 2, "set": {"scale": 2.0}}).json()
        view = wait_run(d, fork["run"]["run_id"])
        outputs = view["run"]["nodes"]["train"]["outputs"]
        assert (outputs["resumed_from"], outputs["final_loss"]) == (2, 2.0 / 6)
        assert view["jobs"][view["run"]["nodes"]["train"]["job_id"]]["resume_checkpoint"] is not None


def test_a_replay_of_a_run_answered_from_the_cache_is_bit_identical(tmp_path: Path) -> None:
    source = tmp_path / "facts.txt"
    source.write_text("the sky is green\n")
    with running(tmp_path / "home") as d:
        start(d, graph(source))
        cached = start(d, graph(source))
        view = d.get(f"/v1/runs/{cached}").json()
        assert {n["state"] for n in view["run"]["nodes"].values()} == {"cached"}
        first = replay(d, cached, verify=True)
        view = wait_run(d, first["run"]["run_id"])
        assert {n["state"] for n in view["run"]["nodes"].values()} == {"completed"}
        report = d.get(first["verify"]).json()["verify"]
        assert report["verdict"] == "bit-identical", report["summary"]
        assert report["nodes"]["train"]["state"] == {"a": "cached", "b": "completed"}
        assert report["drift"] == []
