"""README promises of the daemon that no other test pinned: the cache key covers the plugin's
code and the contents of local input files, `POST /v1/admin/rebuild` reports whether the rebuilt
projections are identical, and artifacts are verified when read."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import yaml

from tests.daemon.daemon_proc import Daemon, running
from tests.daemon.test_runs import states, wait_run

ECHO_BACKEND = "def run(ctx, params, inputs):\n    return {{'out': {value}}}\n"


def run_graph(d: Daemon, g: dict[str, Any]) -> dict[str, Any]:
    r = d.post("/v1/runs", json={"graph": g})
    assert r.status_code == 201, r.text
    return wait_run(d, r.json()["run"]["run_id"])


def read_graph(source: Path) -> dict[str, Any]:
    return {"nodes": {
        "read": {"op": "testops.read_file", "inputs": {"path": str(source)}},
        "echo": {"op": "testops.outputs", "inputs": {"data": {"node": "read", "output": "content"}}},
    }}


def test_an_edited_local_input_file_reruns_its_node_and_what_depends_on_it(tmp_path: Path) -> None:
    source = tmp_path / "facts.txt"
    source.write_text("the sky is green\n")
    with running(tmp_path / "home") as d:
        first = run_graph(d, read_graph(source))
        assert states(first) == {"read": "completed", "echo": "completed"}
        assert states(run_graph(d, read_graph(source))) == {"read": "cached", "echo": "cached"}
        source.write_text("the sky is blue\n")  # same path, same parameters: only the content changed
        edited = run_graph(d, read_graph(source))
        assert states(edited) == {"read": "completed", "echo": "completed"}
        assert edited["run"]["nodes"]["echo"]["outputs"]["text"] == "hello\nthe sky is blue\n"


def write_echo_plugin(folder: Path, value: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"name": "echoer", "version": "0.1", "description": "Returns a constant.",
                "operations": {"run": {"description": "Return a number.", "resource": "cpu",
                                       "outputs": {"out": {"type": "json", "description": "A number."}}}}}
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    (folder / "backend.py").write_text(ECHO_BACKEND.format(value=value))


def plugin_hash(d: Daemon, name: str) -> str | None:
    row = d.get(f"/v1/plugins/{name}")
    return row.json()["plugin"].get("code_hash") if row.status_code == 200 else None


def wait_plugin_hash(d: Daemon, name: str, *, not_: str | None, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = plugin_hash(d, name)
        if h is not None and h != not_:
            return h
        time.sleep(0.05)
    raise TimeoutError(f"plugin {name} has no new code hash (still {not_})")


def test_an_edited_plugin_backend_reruns_the_node_instead_of_answering_from_the_cache(tmp_path: Path) -> None:
    home = tmp_path / "home"
    plugin = home / "plugins" / "echoer"
    write_echo_plugin(plugin, 1)
    graph = {"nodes": {"e": {"op": "echoer.run"}}}
    with running(home) as d:
        before = wait_plugin_hash(d, "echoer", not_=None)
        assert run_graph(d, graph)["run"]["nodes"]["e"]["outputs"]["out"] == 1
        assert states(run_graph(d, graph)) == {"e": "cached"}
        write_echo_plugin(plugin, 2)  # same manifest, same parameters: only backend.py changed
        d.post("/v1/plugins/reload", json={"name": "echoer"})
        wait_plugin_hash(d, "echoer", not_=before)
        edited = run_graph(d, graph)
        assert states(edited) == {"e": "completed"}
        assert edited["run"]["nodes"]["e"]["outputs"]["out"] == 2


def test_rebuild_reports_identical_and_names_a_projection_tampered_with_in_sqlite(tmp_path: Path) -> None:
    source = tmp_path / "facts.txt"
    source.write_text("x\n")
    home = tmp_path / "home"
    with running(home) as d:
        run_id = run_graph(d, read_graph(source))["run"]["run_id"]
        report = d.post("/v1/admin/rebuild", json={}).json()
        assert report["identical"] is True and report["differs"] == []
        assert report["events_folded"] == d.get("/v1/status").json()["head"]
        with sqlite3.connect(home / "log.sqlite") as conn:  # a projection row edited behind the log's back
            changed = conn.execute("UPDATE runs SET data = json_set(data, '$.state', 'failed') WHERE key = ?",
                                   (run_id,)).rowcount
        assert changed == 1
        assert d.get(f"/v1/runs/{run_id}").json()["run"]["state"] == "failed"
        report = d.post("/v1/admin/rebuild", json={}).json()
        assert report["identical"] is False and report["differs"] == ["runs"]
        assert d.get(f"/v1/runs/{run_id}").json()["run"]["state"] == "succeeded"  # the log wins
        assert d.post("/v1/admin/rebuild", json={}).json()["identical"] is True


def test_a_corrupted_artifact_fails_the_job_that_reads_it_with_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "facts.txt"
    source.write_text("the sky is green\n")
    home = tmp_path / "home"
    with running(home) as d:
        first = run_graph(d, read_graph(source))
        sha = first["run"]["nodes"]["read"]["outputs"]["content"]
        stored = home / "artifacts" / "sha256" / sha[:2] / sha
        os.chmod(stored, 0o644)
        stored.write_text("the sky is plaid\n")  # bit rot, or a hand edit of the store
        r = d.post("/v1/runs", json={"graph": read_graph(source), "force": ["echo"]})
        view = wait_run(d, r.json()["run"]["run_id"])
        assert states(view) == {"read": "cached", "echo": "failed"}
        job = view["jobs"][view["run"]["nodes"]["echo"]["job_id"]]
        assert f"artifact {sha[:12]} is damaged" in job["error"], job["error"]


MEMOPS_BACKEND = '''
import os
import signal


def allocate(ctx, params, inputs):
    ctx.progress(0, message="allocating")
    return {"out": len(bytearray(1 << 50))}  # a petabyte: the allocator refuses, Python raises MemoryError


def kill9(ctx, params, inputs):
    os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_worker_that_runs_out_of_memory_fails_with_cause_oom_and_a_sigkill_hints_at_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = home / "plugins" / "memops"
    folder.mkdir(parents=True)
    ops = {op: {"description": f"{op}.", "resource": "cpu", "outputs": {"out": {"type": "json", "description": "x"}}}
           for op in ("allocate", "kill9")}
    (folder / "manifest.yaml").write_text(yaml.safe_dump({"name": "memops", "version": "0.1",
                                                          "description": "Out of memory.", "operations": ops}))
    (folder / "backend.py").write_text(MEMOPS_BACKEND)
    with running(home) as d:
        wait_plugin_hash(d, "memops", not_=None)
        jobs = {}
        for op in ("allocate", "kill9"):
            r = d.post("/v1/jobs", json={"plugin": "memops", "operation": op, "params": {}})
            assert r.status_code == 201, r.text
            jobs[op] = d.wait_job(r.json()["job"]["job_id"], ("failed", "succeeded"))
        oom, killed = jobs["allocate"], jobs["kill9"]
        assert (oom["state"], oom["cause"]) == ("failed", "oom"), oom
        assert oom["error"].startswith("MemoryError")
        # A SIGKILL the kernel's OOM killer did not send is a signal, and the error says what it may be.
        assert (killed["state"], killed["cause"]) == ("failed", "signal"), killed
        assert killed["error"] == "killed by SIGKILL (out of memory?)"
