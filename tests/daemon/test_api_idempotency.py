"""Every mutating route through a real daemon: a retried command id gets the first answer exactly
(even after later changes, even when the precondition no longer holds), and the id reused for a
different command is refused with 409 and appends nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.daemon_proc import Daemon, running
from tunelog.daemon.api import jobs, plugins, reproduce, runs, system

MUTATING = {r.path for mod in (jobs, plugins, reproduce, runs, system) for r in mod.routes
            if "POST" in (r.methods or ())} - {"/v1/workflows/validate"}
WALKED: set[str] = set()
WALKS = {"test_models_and_workflows", "test_jobs", "test_runs", "test_plugins_and_admin",
         "test_a_retried_stop_reaching_a_restarted_daemon_does_not_stop_it"}
PASSED: set[str] = set()


@pytest.fixture(autouse=True)
def _note_passed(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    PASSED.add(request.node.name)


@pytest.fixture(scope="module", autouse=True)
def _every_mutating_route_was_walked() -> Iterator[None]:
    """Once every walk in this module has run (in whatever order), they covered every mutating route."""
    yield
    if WALKS <= PASSED:
        assert WALKED == MUTATING, f"mutating routes no test walked: {sorted(MUTATING - WALKED)}"


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running(tmp_path_factory.mktemp("home")) as daemon:
        deadline = time.monotonic() + 30
        while not daemon.plugins_ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield daemon


def head(d: Daemon) -> int:
    return int(d.get("/v1/status").json()["head"])


def appended_by_commands(d: Daemon, after: int) -> list[dict[str, Any]]:
    """Events after `after` that a client's command appended (jobs started meanwhile move the head
    with events of their own, which carry no client command id)."""
    events = d.get("/v1/events", params={"after": after}).json()["events"]
    return [e for e in events if e["command_id"] and ":" not in e["command_id"]]


def post(d: Daemon, route: str, path: str, body: dict[str, Any], command_id: str) -> Any:
    WALKED.add(route)
    return d.post(path, json={**body, "command_id": command_id})


def retried(d: Daemon, route: str, path: str, body: dict[str, Any], command_id: str) -> Any:
    """Send a command twice: the second answer equals the first and appends nothing."""
    first = post(d, route, path, body, command_id)
    assert 200 <= first.status_code < 300, first.text
    before = head(d)
    again = post(d, route, path, body, command_id)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert appended_by_commands(d, before) == []
    return first.json()


def refused(d: Daemon, route: str, path: str, body: dict[str, Any], command_id: str) -> None:
    """The id reused for another command: 409 naming the conflict, nothing appended."""
    before = head(d)
    r = post(d, route, path, body, command_id)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "conflict" and command_id in r.json()["error"]["message"]
    assert appended_by_commands(d, before) == []


def wait_run(d: Daemon, run_id: str, *, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = d.get(f"/v1/runs/{run_id}").json()["run"]
        if run["state"] != "running":
            return run  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} still running")


GRAPH = {"nodes": {"a": {"op": "testops.outputs", "params": {"text": "one"}}, "f": {"op": "testops.fail"}}}
SLOW = {"nodes": {"s": {"op": "testops.sleep", "params": {"seconds": 30}}}}


def test_models_and_workflows(d: Daemon) -> None:
    add = retried(d, "/v1/models", "/v1/models", {"name": "m1", "ref": "/nowhere/m1"}, "add-m1")
    assert add["model"]["name"] == "m1"
    refused(d, "/v1/models", "/v1/models", {"name": "m2", "ref": "/nowhere/m2"}, "add-m1")
    refused(d, "/v1/models/{name}/remove", "/v1/models/m1/remove", {}, "add-m1")  # the add's id: not a remove
    assert d.get("/v1/models").json()["models"][0]["name"] == "m1"
    retried(d, "/v1/models/{name}/remove", "/v1/models/m1/remove", {}, "rm-m1")  # the retry meets no model: same answer
    refused(d, "/v1/models/{name}/remove", "/v1/models/m2/remove", {}, "rm-m1")
    again = d.post("/v1/models", json={"name": "m1", "ref": "/nowhere/m1", "command_id": "add-m1"})
    assert again.status_code == 201 and again.json() == add  # the original answer, not null

    v1 = retried(d, "/v1/workflows", "/v1/workflows", {"name": "w", "graph": GRAPH}, "save-w1")
    newer = {"nodes": {"a": {"op": "testops.outputs", "params": {"text": "two"}}}}
    assert retried(d, "/v1/workflows", "/v1/workflows", {"name": "w", "graph": newer}, "save-w2")["workflow"]["version"] == 2
    again = d.post("/v1/workflows", json={"name": "w", "graph": GRAPH, "command_id": "save-w1"})
    assert again.json() == v1 and v1["workflow"]["version"] == 1
    refused(d, "/v1/workflows", "/v1/workflows", {"name": "w", "graph": newer}, "save-w1")
    refused(d, "/v1/workflows", "/v1/workflows", {"name": "w", "graph": GRAPH}, "add-m1")


def test_jobs(d: Daemon) -> None:
    job = retried(d, "/v1/jobs", "/v1/jobs", {"plugin": "testops", "operation": "sleep", "params": {"seconds": 30}},
                  "job-1")["job"]
    refused(d, "/v1/jobs", "/v1/jobs", {"plugin": "testops", "operation": "sleep", "params": {"seconds": 2}}, "job-1")
    refused(d, "/v1/jobs/{job_id}/cancel", f"/v1/jobs/{job['job_id']}/cancel", {}, "job-1")
    retried(d, "/v1/jobs/{job_id}/cancel", f"/v1/jobs/{job['job_id']}/cancel", {}, "cancel-1")
    ended = d.wait_job(job["job_id"], ("cancelled",))
    assert ended["state"] == "cancelled"
    again = d.post(f"/v1/jobs/{job['job_id']}/cancel", json={"command_id": "cancel-1"})
    assert again.status_code == 202  # the first answer, though the job has ended since
    refused(d, "/v1/jobs/{job_id}/cancel", f"/v1/jobs/{job['job_id']}/cancel", {"reason": "other"}, "cancel-1")


def test_runs(d: Daemon) -> None:
    run = retried(d, "/v1/runs", "/v1/runs", {"graph": GRAPH}, "submit-1")["run"]
    refused(d, "/v1/runs", "/v1/runs", {"graph": GRAPH, "label": "other"}, "submit-1")
    refused(d, "/v1/runs/{run_id}/replay", f"/v1/runs/{run['run_id']}/replay", {}, "submit-1")
    assert wait_run(d, run["run_id"])["state"] == "failed"
    resumed = retried(d, "/v1/runs/{run_id}/resume", f"/v1/runs/{run['run_id']}/resume", {}, "resume-1")
    assert wait_run(d, run["run_id"])["state"] == "failed"
    again = d.post(f"/v1/runs/{run['run_id']}/resume", json={"command_id": "resume-1"})
    assert (again.status_code, again.json()) == (202, resumed)  # not a second resume, not "nothing to resume"
    refused(d, "/v1/runs/{run_id}/resume", f"/v1/runs/{run['run_id']}/resume", {}, "submit-1")

    replay = retried(d, "/v1/runs/{run_id}/replay", f"/v1/runs/{run['run_id']}/replay", {}, "replay-1")["run"]
    assert replay["replay_of"] == run["run_id"]
    fork = {"node": "a", "set": {"text": "forked"}}
    retried(d, "/v1/runs/{run_id}/fork", f"/v1/runs/{run['run_id']}/fork", fork, "fork-1")
    refused(d, "/v1/runs/{run_id}/fork", f"/v1/runs/{run['run_id']}/fork", {**fork, "set": {"text": "x"}}, "fork-1")

    slow = retried(d, "/v1/runs", "/v1/runs", {"graph": SLOW}, "submit-slow")["run"]
    job = d.submit("sleep", params={"seconds": 0}, command_id="a-job")
    refused(d, "/v1/runs/{run_id}/cancel", f"/v1/runs/{slow['run_id']}/cancel", {}, "a-job")
    assert d.get(f"/v1/runs/{slow['run_id']}").json()["run"]["state"] == "running"
    cancelled = retried(d, "/v1/runs/{run_id}/cancel", f"/v1/runs/{slow['run_id']}/cancel", {}, "cancel-run")
    assert wait_run(d, slow["run_id"])["state"] == "cancelled"
    again = d.post(f"/v1/runs/{slow['run_id']}/cancel", json={"command_id": "cancel-run"})
    assert (again.status_code, again.json()) == (202, cancelled)
    d.wait_job(job["job_id"], ("succeeded",))


def test_plugins_and_admin(d: Daemon) -> None:
    retried(d, "/v1/plugins/reload", "/v1/plugins/reload", {}, "reload-1")
    refused(d, "/v1/plugins/reload", "/v1/plugins/reload", {"name": "testops"}, "reload-1")
    retried(d, "/v1/admin/rebuild", "/v1/admin/rebuild", {}, "rebuild-1")
    refused(d, "/v1/admin/rebuild", "/v1/admin/rebuild", {}, "reload-1")
    refused(d, "/v1/daemon/stop", "/v1/daemon/stop", {}, "rebuild-1")


def test_a_retried_stop_reaching_a_restarted_daemon_does_not_stop_it(tmp_path: Path) -> None:
    first = Daemon(tmp_path).start()
    r = first.post("/v1/daemon/stop", json={"command_id": "stop-1"})
    assert r.status_code == 202
    assert first.proc is not None and first.proc.wait(timeout=15) == 0
    first.stop()  # closes its stderr pipe
    with running(tmp_path) as second:
        WALKED.add("/v1/daemon/stop")
        again = second.post("/v1/daemon/stop", json={"command_id": "stop-1"})
        assert (again.status_code, again.json()) == (202, r.json())
        assert second.get("/v1/status").status_code == 200
        assert second.proc is not None and second.proc.poll() is None
