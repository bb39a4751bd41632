"""A failed job's whole error, true node states and attaching to a run, through `tunectl` against a
real daemon with the testops plugin (no torch)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.cli.conftest import MODULE, Daemon, needs_testops

pytestmark = needs_testops


def submit(daemon: Daemon, tmp_path: Path, graph: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"graph-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(graph))
    return daemon.tunectl("workflow", "submit", str(path), *args)


def wait_node(daemon: Daemon, run_id: str, node: str, state: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = daemon.json("runs", "show", run_id)
        if view["run"]["nodes"][node]["state"] == state:
            return view  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"node {node} of run {run_id} never became {state}: {view['run']['nodes'][node]}")


def wait_run(daemon: Daemon, run_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = daemon.json("runs", "show", run_id)
        if view["run"]["state"] != "running":
            return view  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


ROWS = [f"  - row {i}: field 'response' is missing (reason {i})" for i in range(1, 26)]


def test_a_failed_job_keeps_and_shows_its_whole_error(daemon: Daemon, tmp_path: Path) -> None:
    out = submit(daemon, tmp_path, {"nodes": {"bad": {"op": "testops.invalid", "params": {"rows": 25}}}})
    assert out.returncode == 6
    err = out.stderr
    assert "  - bad: failed: ValidationError: data: 25 problems; nothing was stored" in err
    assert "      the rows were read from data.jsonl" in err  # the message's second line
    hint = "    Hint: fix the rows named below, or map columns with the `columns` parameter"
    assert hint in err
    shown = [line for line in err.splitlines() if line.startswith("      - row ")]
    assert shown == ["    " + r for r in ROWS[:20]], err  # problems in their order, the first 20
    assert err.index(hint) < err.index(shown[0])  # "named below": the rows follow the hint
    assert "      … and 5 more (see --json)" in err

    run_id = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("run r"))
    view = daemon.json("runs", "show", run_id)
    job = view["jobs"][view["run"]["nodes"]["bad"]["job_id"]]
    assert (job["error"], job["error_type"]) == ("ValidationError: data: 25 problems; nothing was stored",
                                                   "ValidationError")
    assert job["error_message"] == "data: 25 problems; nothing was stored\nthe rows were read from data.jsonl"
    assert job["hint"].startswith("fix the rows named below") and len(job["problems"]) == 25
    assert job["problems"][24] == {"where": "row 25", "message": "field 'response' is missing (reason 25)"}

    text = daemon.tunectl("runs", "show", run_id).stdout
    assert f"error of bad (job {job['job_id']}):" in text and "  … and 5 more (see --json)" in text
    assert all("  " + r in text for r in ROWS[:20]) and ROWS[20] not in text
    assert "    the rows were read from data.jsonl" in text

    follow = daemon.tunectl("runs", "follow", run_id)
    assert follow.returncode == 6 and "      - row 20: field" in follow.stderr and "5 more" in follow.stderr

    shown_job = daemon.tunectl("jobs", "show", job["job_id"]).stdout
    assert "error      ValidationError: data: 25 problems; nothing was stored (cause: exception)" in shown_job
    assert "\n  the rows were read from data.jsonl\nHint: fix the rows named below" in shown_job
    assert "\n  - row 1: field 'response' is missing (reason 1)\n" in shown_job
    assert "  … and 5 more (see --json)" in shown_job
    assert len(daemon.json("jobs", "show", job["job_id"])["problems"]) == 25

    logs = daemon.tunectl("logs", "-f", job["job_id"])
    assert logs.returncode == 6 and "\nHint: fix the rows named below" in logs.stderr
    assert "\n  - row 20: field 'response' is missing (reason 20)\n  … and 5 more (see --json)\n" in logs.stderr


def test_json_has_one_shape_with_and_without_detach(daemon: Daemon, tmp_path: Path) -> None:
    graph = {"nodes": {"a": {"op": "testops.outputs", "params": {"text": "shape"}}}}
    followed = json.loads(submit(daemon, tmp_path, graph, "--json").stdout)
    detached = json.loads(submit(daemon, tmp_path, graph, "--json", "--detach").stdout)
    assert set(followed) == set(detached) == {"run", "jobs"}
    assert set(followed["run"]) == set(detached["run"])
    assert detached["run"]["run_id"] != followed["run"]["run_id"]


def read_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_line(lines: queue.Queue[str], start: str, *, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if line.startswith(start):
            return line
    raise AssertionError(f"no line starting {start!r} in {seen}")


def test_node_states_are_true_and_follow_attaches_to_a_run_under_way(daemon: Daemon, tmp_path: Path) -> None:
    graph = {"nodes": {"first": {"op": "testops.outputs", "params": {"text": "attach"}},
                       "count": {"op": "testops.checkpointing", "params": {"steps": 3000, "step_s": 0.02}},
                       "after": {"op": "testops.outputs", "inputs": {"data": {"node": "count", "output": "step"}}}}}
    out = submit(daemon, tmp_path, graph, "--detach", "--json")
    run_id = json.loads(out.stdout)["run"]["run_id"]
    view = wait_node(daemon, run_id, "count", "running")
    job_id = view["run"]["nodes"]["count"]["job_id"]
    assert view["jobs"][job_id]["state"] == "running"
    row = next(line for line in daemon.tunectl("runs", "show", run_id).stdout.splitlines() if line.startswith("count "))
    assert row.split()[2] == "running"

    # No new job starts while it is followed: what it shows comes from attaching.
    proc = subprocess.Popen([*MODULE, "runs", "follow", run_id], env=daemon.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = read_lines(proc)
        assert wait_line(lines, "following run").startswith(f"following run {run_id}")
        assert wait_line(lines, "first: ").startswith("first: completed report=")
        assert wait_line(lines, "count: ") == f"count: running (job {job_id}, cpu0)"
        assert wait_line(lines, "count: step ").startswith("count: step ")
        assert wait_line(lines, "after: ") == "after: pending"
        assert daemon.tunectl("runs", "cancel", run_id).returncode == 0
        assert wait_line(lines, "count: cancelled") == "count: cancelled"
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 6 and f"Error: run {run_id} cancelled" in err

    done = wait_run(daemon, run_id)
    nodes = done["run"]["nodes"]
    assert (done["run"]["state"], nodes["count"]["state"], nodes["count"]["error"]) == ("cancelled", "cancelled", "")
    assert nodes["after"]["state"] == "skipped"
    text = daemon.tunectl("runs", "show", run_id).stdout
    assert "cancelled: cancelled" not in text
    assert next(line for line in text.splitlines() if line.startswith("count ")).split()[2] == "cancelled"


def events_of(daemon: Daemon, run_id: str, *types: str) -> list[dict[str, Any]]:
    out = daemon.tunectl("events", "--json", *(a for t in types for a in ("--type", t)))
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["events"]
    return [e for e in rows if e["event"].get("run_id") == run_id or e["stream"] == f"run-{run_id}"]


def test_merged_models_adapters_lineage_and_state_at(daemon: Daemon, tmp_path: Path) -> None:
    graph = {"nodes": {"a4": {"op": "testops.fake_adapter", "params": {"r": 4}, "inputs": {"model": "some/base"}},
                       "m": {"op": "testops.fake_merged_model", "params": {"seed": 7},
                             "inputs": {"adapter": {"node": "a4", "output": "adapter"}}}}}
    view = json.loads(submit(daemon, tmp_path, graph, "--json").stdout)
    assert view["run"]["state"] == "succeeded"
    adapter, model = view["run"]["nodes"]["a4"]["outputs"]["adapter"], view["run"]["nodes"]["m"]["outputs"]["model"]

    listed = next(a for a in daemon.json("adapters", "list") if a["sha256"] == adapter)
    assert listed["base_model"] == {"ref": "some/base"}
    assert (Path(listed["path"]) / "adapter_config.json").is_file()

    # a merged model is named by a unique prefix of its hash, like an adapter
    merged = daemon.json("merge", "--model", model[:10], adapter[:10], "--into-model", "--detach")
    assert set(merged) == {"run", "jobs"}
    assert merged["run"]["graph"]["nodes"]["merge"]["inputs"] == {"model": model, "adapter": adapter}
    merge_run = merged["run"]["run_id"]
    wait_run(daemon, merge_run)
    tree = daemon.tunectl("runs", "lineage", merge_run).stdout
    assert "merge merge (merged)" in tree and "merge_and_unload of 1 adapter(s) on " + model[:12] in tree
    assert f"adapter {adapter[:12]} (input)  weight 1" in tree

    # node states as they were at a past position, `running` included
    run_id = view["run"]["run_id"]
    started = next(e for e in events_of(daemon, run_id, "job-started")
                   if e["event"]["job_id"] == view["run"]["nodes"]["m"]["job_id"])
    past = daemon.tunectl("state", "--at", str(started["position"]), "--table", "runs").stdout
    assert f"  {run_id}  a4=completed m=running" in past
    queued = next(e for e in events_of(daemon, run_id, "node-queued") if e["event"]["node"] == "m")
    assert f"  {run_id}  a4=completed m=queued" in daemon.tunectl("state", "--at", str(queued["position"])).stdout
