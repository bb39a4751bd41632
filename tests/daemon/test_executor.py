"""The run executor (daemon/runs/executor.py) in this process over real parts: a real SQLite store, a
real plugin manager with two small plugins, the real job runner (its scheduler not started, so a
job stays queued). A job's end is what its worker would append to the job's stream (JobStarted,
JobCheckpointed, a terminal event); the executor only reads the jobs projection those events make.
Each pass is one `advance()`; the tests check every event the pass appends and what it leaves alone.
Real workers running whole runs: tests/daemon/test_runs.py and test_reproduce.py (a daemon process)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.daemon import runs_support as support
from tests.daemon.runs_support import end, job_of, run_events, states
from tunelog.daemon.runs.executor import RunExecutor, path_hashes, used_code
from tunelog.daemon.runs.graph import cache_key
from tunelog.daemon.services import Services
from tunelog.events import jobs as J
from tunelog.events import runs as R
from tunelog.events.errors import ConflictError, JobError, NotFoundError, ValidationError
from tunelog.events.run_state import RunRow
from tunelog.events.streams import job_stream, run_stream
from tunelog.store.artifacts import sha256_file, tree_digest


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Services]:
    with support.services(tmp_path / "home", support.plugins(tmp_path / "plugins")) as services:
        yield services


CHAIN = {"description": "a chain", "nodes": {
    "a": {"op": "ex.gen", "params": {"n": 2}},
    "b": {"op": "ex.use", "inputs": {"data": {"node": "a", "output": "rows"}}},
    "c": {"op": "ex.gen", "params": {"n": 3}},
}}


def test_nodes_start_when_their_inputs_are_ready_fed_with_upstream_outputs(s: Services) -> None:
    row = s.runs.submit(CHAIN)
    ex = s.plugins.resolve("ex", "gen").row
    assert row.run_id.startswith("r") and len(row.run_id) == 20 and row.state == "running"
    assert row.label == "a chain" and row.order.index("a") < row.order.index("b")
    assert row.code == {n: {"plugin": "ex", "version": "1.2", "code_hash": ex.code_hash} for n in "abc"}
    assert (row.workflow, row.workflow_version, row.no_cache, row.force, row.replay_of, row.forked_from) == (
        None, None, False, [], None, None)
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert states(row) == {"a": "queued", "b": "pending", "c": "queued"}
    a = s.tables.jobs.get(row.nodes["a"].job_id)
    assert a is not None
    assert (a.plugin, a.operation, a.params, a.inputs, a.code_hash, a.plugin_version, a.resource, a.run_id,
            a.resume_of, a.devices, a.uses) == ("ex", "gen", {"n": 2}, {}, ex.code_hash, "1.2", "cpu", row.run_id,
                                                None, 1, {})
    queued = next(e for t, e in run_events(s, row.run_id) if t == "node-queued" and e.node == "a")
    assert (queued.node, queued.attempt, queued.resume_of, queued.input_hashes, queued.inputs) == ("a", 1, None, {}, {})
    assert queued.cache_key == cache_key(op="ex.gen", code_hash=ex.code_hash, params={"n": 2}, inputs={})
    # The job's command id is <run>:<node>:<attempt>: the log answers it with the job's own event.
    answered = s.store.append(job_stream(""), [], command_id=f"{row.run_id}:a:1")
    assert [e.event.job_id for e in answered] == [a.job_id]  # type: ignore[attr-defined]
    head = s.store.head()
    s.runs.advance()  # nothing has ended: a pass appends nothing
    assert s.store.head() == head

    end(s, a.job_id, outputs={"rows": [1, 2], "note": "made"})
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert states(row) == {"a": "completed", "b": "queued", "c": "queued"}  # b starts in the same pass
    assert row.nodes["a"].outputs == {"rows": [1, 2], "note": "made"}
    completed = [e for t, e in run_events(s, row.run_id) if t == "node-completed"]
    assert [(e.node, e.job_id, e.cache_key, e.output_types) for e in completed] == [
        ("a", a.job_id, queued.cache_key, {"rows": "json", "note": "text"})]
    b = s.tables.jobs.get(row.nodes["b"].job_id)
    assert b is not None and b.inputs == {"data": [1, 2]} and b.params == {"lr": 1.0, "tag": ""}

    end(s, b.job_id, outputs={"out": 1})
    s.runs.advance()
    assert s.runs.find(row.run_id).state == "running"  # c is still queued
    end(s, job_of(s, row.run_id, "c"))
    s.runs.advance()
    s.runs.advance()
    assert s.runs.find(row.run_id).state == "succeeded"
    assert [e.state for t, e in run_events(s, row.run_id) if t == "run-finished"] == ["succeeded"]


def finish_chain(s: Services, **submit: Any) -> RunRow:
    row = s.runs.submit(CHAIN, **submit)
    for _ in range(3):
        s.runs.advance()
        for n, node in s.runs.find(row.run_id).nodes.items():
            if node.state == "queued" and node.job_id:
                end(s, node.job_id, outputs={"rows": [1, 2]} if n == "a" else {"out": n})
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert row.state == "succeeded", row.nodes
    return row


def test_a_second_run_is_answered_from_the_cache_unless_told_not_to(s: Services) -> None:
    first = finish_chain(s)
    again = s.runs.submit(CHAIN)
    s.runs.advance()
    again = s.runs.find(again.run_id)
    assert again.state == "succeeded" and set(states(again).values()) == {"cached"}
    cached = {e.node: e for t, e in run_events(s, again.run_id) if t == "node-cached"}
    assert {n: (e.source_job, e.outputs, e.cache_key) for n, e in cached.items()} == {
        n: (first.nodes[n].job_id, first.nodes[n].outputs, first.nodes[n].cache_key) for n in "abc"}

    fresh = s.runs.submit(CHAIN, no_cache=True, workflow="w", workflow_version=2, label="mine")
    assert (fresh.no_cache, fresh.workflow, fresh.workflow_version, fresh.label) == (True, "w", 2, "mine")
    s.runs.advance()
    assert states(s.runs.find(fresh.run_id)) == {"a": "queued", "b": "pending", "c": "queued"}

    forced = s.runs.submit(CHAIN, force=["b"])
    assert forced.force == ["b"]
    s.runs.advance()
    assert states(s.runs.find(forced.run_id)) == {"a": "cached", "b": "queued", "c": "cached"}

    head = s.store.head()
    with pytest.raises(ValidationError) as refused:
        s.runs.submit(CHAIN, force=["b", "zz", "yy"])
    assert refused.value.message.startswith("cannot force unknown nodes")
    assert refused.value.problems == [{"where": "force", "message": "no node 'zz'"},
                                      {"where": "force", "message": "no node 'yy'"}]
    assert s.store.head() == head


def test_a_retried_command_id_answers_with_its_run_and_another_commands_id_is_refused(s: Services) -> None:
    row = s.runs.submit(CHAIN, command_id="sub-1")
    head = s.store.head()
    assert s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}}, command_id="sub-1").run_id == row.run_id
    assert s.store.head() == head
    job = s.jobs.submit(plugin="ex", operation="gen", params={"n": 1}, inputs={}, code_hash="0" * 64,
                        plugin_version="1", resource="cpu", command_id="job-1")
    with pytest.raises(ConflictError, match="command id 'job-1' was already used for another command"):
        s.runs.submit(CHAIN, command_id="job-1")
    assert s.tables.jobs.get(job.job_id) is not None
    s.store.append("workflow-w", [R.WorkflowSaved(name="w", version=1, graph={})], command_id="wf-1")
    with pytest.raises(ConflictError, match="command id 'wf-1' was already used for another command"):
        s.runs.submit(CHAIN, command_id="wf-1")  # an event without a run_id field


def test_path_inputs_are_hashed_into_the_key_so_an_edited_file_runs_again(s: Services, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("one")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x").write_text("x")
    graph = {"nodes": {"f": {"op": "ex.use", "inputs": {"file": str(data)}},
                       "d": {"op": "ex.use", "inputs": {"file": str(folder)}}}}
    row = s.runs.submit(graph)
    s.runs.advance()
    queued = {e.node: e for t, e in run_events(s, row.run_id) if t == "node-queued"}
    assert queued["f"].input_hashes == {"file": sha256_file(data)}
    assert queued["d"].input_hashes == {"file": tree_digest(folder)[0]}
    code = s.plugins.resolve("ex", "use").row.code_hash
    assert queued["f"].cache_key == cache_key(op="ex.use", code_hash=code, params={"lr": 1.0, "tag": ""},
                                              inputs={"file": str(data), "file#sha256": sha256_file(data)})
    for node in ("f", "d"):
        end(s, queued[node].job_id)
    s.runs.advance()
    same = s.runs.submit(graph)
    s.runs.advance()
    assert set(states(s.runs.find(same.run_id)).values()) == {"cached"}
    data.write_text("two")
    edited = s.runs.submit(graph)
    s.runs.advance()
    assert states(s.runs.find(edited.run_id)) == {"f": "queued", "d": "cached"}


def test_path_hashes_skip_what_is_not_a_local_path(s: Services, tmp_path: Path) -> None:
    op = s.plugins.resolve("ex", "use").op
    data = tmp_path / "d.txt"
    data.write_text("d")
    assert path_hashes(op, {"file": str(data), "data": str(data), "model": str(data)}) == {"file": sha256_file(data)}
    assert path_hashes(op, {"file": str(tmp_path / "gone")}) == {}
    assert path_hashes(op, {"file": ["list"]}) == {}
    assert path_hashes(op, {}) == {}
    assert used_code({"plugin": "ex", "uses.rw": "h1", "code_hash": "c", "uses.other": "h2"}) == {"rw": "h1",
                                                                                                 "other": "h2"}


def test_a_failed_node_skips_its_consumers_and_fails_the_run_then_resume_runs_them_again(s: Services) -> None:
    row = s.runs.submit(CHAIN)
    s.runs.advance()
    end(s, job_of(s, row.run_id, "a"), "failed", error="bad rows")
    end(s, job_of(s, row.run_id, "c"))
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert states(row) == {"a": "failed", "b": "skipped", "c": "completed"} and row.state == "failed"
    assert row.nodes["a"].error == "failed: bad rows"
    assert row.nodes["b"].error == "upstream node 'a' did not complete"
    assert [e.state for t, e in run_events(s, row.run_id) if t == "run-finished"] == ["failed"]
    with pytest.raises(NotFoundError):
        s.runs.resume("nope")

    resumed = s.runs.resume(row.run_id, command_id="res-1")
    assert resumed.state == "running"
    answered = s.store.append(run_stream(""), [], command_id="res-1")  # the event carries the command id
    assert [e.type for e in answered] == ["run-resumed"]
    assert [e.nodes for t, e in run_events(s, row.run_id) if t == "run-resumed"] == [["a", "b"]]
    with pytest.raises(JobError, match="is still running") as running:
        s.runs.resume(row.run_id)
    assert running.value.hint == "cancel it first, or wait for it to finish"
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert states(row) == {"a": "queued", "b": "pending", "c": "completed"} and row.nodes["a"].attempt == 2
    end(s, job_of(s, row.run_id, "a"), outputs={"rows": []})
    s.runs.advance()
    end(s, job_of(s, row.run_id, "b"))
    s.runs.advance()
    assert s.runs.find(row.run_id).state == "succeeded"
    with pytest.raises(JobError, match=f"run {row.run_id} has nothing to resume: every node completed"):
        s.runs.resume(row.run_id)


def test_a_job_that_ended_without_an_error_names_its_state(s: Services) -> None:
    row = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}, "y": {"op": "ex.gen", "params": {"n": 5}}}})
    s.runs.advance()
    end(s, job_of(s, row.run_id, "x"), "failed", error="")
    end(s, job_of(s, row.run_id, "y"), "cancelled")
    s.runs.advance()
    failed = {e.node: e for t, e in run_events(s, row.run_id) if t == "node-failed"}
    assert {n: (e.job_id, e.state, e.error) for n, e in failed.items()} == {
        "x": (job_of(s, row.run_id, "x"), "failed", "failed"), "y": (job_of(s, row.run_id, "y"), "cancelled", "cancelled")}
    assert s.runs.find(row.run_id).state == "failed"


def test_cancel_stops_active_jobs_skips_pending_nodes_and_ends_the_run_cancelled(s: Services) -> None:
    row = s.runs.submit(CHAIN)
    s.runs.advance()
    done_c = job_of(s, row.run_id, "c")
    end(s, done_c)  # ended, but the executor has not seen it yet: it is not cancelled again
    cancelled = s.runs.cancel(row.run_id[:6], reason="enough", command_id="cx-1")
    assert cancelled.cancel_requested and cancelled.state == "running"
    assert [e.type for e in s.store.append(run_stream(""), [], command_id="cx-1")] == ["run-cancel-requested"]
    assert [e.reason for t, e in run_events(s, row.run_id) if t == "run-cancel-requested"] == ["enough"]
    a = s.tables.jobs.get(job_of(s, row.run_id, "a"))
    assert a is not None and a.state == "cancelled"
    asked = [e.event for e in s.store.read(stream=job_stream(a.job_id), types=["job-cancel-requested"])]
    assert [e.reason for e in asked] == ["run cancelled: enough"]  # type: ignore[attr-defined]
    assert not list(s.store.read(stream=job_stream(done_c), types=["job-cancel-requested"]))
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert states(row) == {"a": "cancelled", "b": "skipped", "c": "completed"} and row.state == "cancelled"
    assert row.nodes["b"].error == "the run was cancelled"
    plain = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}})
    s.runs.cancel(plain.run_id)
    assert [e.reason for t, e in run_events(s, plain.run_id) if t == "run-cancel-requested"] == ["cancelled by user"]
    with pytest.raises(JobError, match=f"run {row.run_id} is cancelled; only a running run can be cancelled"):
        s.runs.cancel(row.run_id)


def test_an_interrupted_job_of_a_cancelled_run_is_not_started_again(s: Services) -> None:
    row = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}})
    s.runs.advance()
    job = job_of(s, row.run_id, "x")
    end(s, job, "interrupted", checkpoint=(3, "c" * 64))
    s.store.append(run_stream(row.run_id), [R.RunCancelRequested(run_id=row.run_id)])
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert row.nodes["x"].state == "failed" and row.nodes["x"].jobs == [job]
    assert row.nodes["x"].error == "interrupted: daemon restarted" and row.state == "cancelled"


def test_an_interrupted_node_continues_from_its_latest_checkpoint_until_its_budget_is_spent(s: Services) -> None:
    row = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}})
    s.runs.advance()
    first = job_of(s, row.run_id, "x")
    end(s, first, "interrupted", checkpoint=(3, "c" * 64))
    s.runs.advance()
    second = job_of(s, row.run_id, "x")
    job = s.tables.jobs.get(second)
    assert second != first and job is not None and (job.resume_of, job.resume_checkpoint) == (first, None)
    queued = [e for t, e in run_events(s, row.run_id) if t == "node-queued"]
    assert [(e.attempt, e.resume_of) for e in queued] == [(1, None), (2, first)]
    end(s, second, "interrupted")  # no checkpoint of its own: the latest one is still the first job's
    s.runs.advance()
    third = s.tables.jobs.get(job_of(s, row.run_id, "x"))
    assert third is not None and third.resume_of == first
    end(s, third.job_id, "interrupted", checkpoint=(5, "d" * 64))
    s.runs.advance()
    fourth = job_of(s, row.run_id, "x")
    assert s.tables.jobs.get(fourth).resume_of == third.job_id  # type: ignore[union-attr]
    end(s, fourth, "interrupted")  # the third resume: max_resumes is 3
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert row.nodes["x"].state == "failed" and len(row.nodes["x"].jobs) == 4 and row.state == "failed"


def test_a_node_with_no_checkpoint_starts_over_after_an_interruption(s: Services) -> None:
    row = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}})
    s.runs.advance()
    first = job_of(s, row.run_id, "x")
    end(s, first, "interrupted")
    s.runs.advance()
    job = s.tables.jobs.get(job_of(s, row.run_id, "x"))
    assert job is not None and job.job_id != first and job.resume_of is None
    # A cached key does not answer a node that already ran a job: it continues as a job.
    s.store.append(run_stream("other"), [R.NodeCompleted(
        run_id="other", node="x", job_id="j0", cache_key=s.runs.find(row.run_id).nodes["x"].cache_key, outputs={})])
    end(s, job.job_id, "interrupted")
    s.runs.advance()
    assert s.runs.find(row.run_id).nodes["x"].state == "queued"


def test_a_node_that_cannot_start_fails_and_only_it(s: Services) -> None:
    row = s.runs.submit({"nodes": {"g": {"op": "ex.big"}, "x": {"op": "ex.gen"}}})
    s.runs.advance()
    failed = [e for t, e in run_events(s, row.run_id) if t == "node-failed"]
    assert [(e.node, e.job_id, e.state, e.error) for e in failed] == [
        ("g", "", "failed", "could not start: the job needs a GPU and this machine has none")]
    assert s.runs.find(row.run_id).nodes["x"].state == "queued"


def test_device_requests_the_daemon_cannot_give_are_refused_at_submit_naming_each_parameter(s: Services) -> None:
    head = s.store.head()
    graph = {"nodes": {"two": {"op": "ex.wide", "params": {"gpus": 2}},
                       "spread": {"op": "ex.wide", "params": {"gpus": 2, "machines": 2}},
                       "card": {"op": "ex.wide", "params": {"card": "A100"}},
                       "fine": {"op": "ex.wide"}}}
    with pytest.raises(ValidationError) as refused:
        s.runs.submit(graph)
    assert refused.value.message.startswith("the graph asks for devices this daemon cannot give")
    assert refused.value.problems == [
        {"where": "nodes.two.params.gpus", "message": "the job needs 2 CPU slots and this daemon has 1"},
        {"where": "nodes.spread.params.machines", "message": "asks for 2 nodes and local jobs run on this one machine"},
        {"where": "nodes.card.params.card",
         "message": "asks for GPU type 'A100' and local jobs cannot choose a GPU model"}]
    assert refused.value.hint == "lower `devices`, or give the daemon more slots (TUNELOG_SLOTS, TUNELOG_GPUS)"
    with pytest.raises(ValidationError) as second:
        s.runs.submit({"nodes": {"card": {"op": "ex.wide", "params": {"card": "A100"}}}})
    assert second.value.hint is not None and second.value.hint.startswith("leave gpu_type empty")
    assert s.store.head() == head
    with pytest.raises(ValidationError) as none:
        s.runs.submit({"nodes": {"zero": {"op": "ex.wide", "params": {"gpus": 0}}}})
    assert none.value.problems == [{"where": "nodes.zero.params.gpus", "message": "must be at least 1"}]
    assert none.value.hint is None
    assert s.store.head() == head
    ok = s.runs.submit({"nodes": {"fine": {"op": "ex.wide"}, "one": {"op": "ex.wide", "params": {"machines": 1}}}})
    s.runs.advance()
    job = s.tables.jobs.get(job_of(s, ok.run_id, "fine"))
    assert job is not None and (job.devices, job.nodes, job.gpu_type) == (1, 0, "")
    job = s.tables.jobs.get(job_of(s, ok.run_id, "one"))
    assert job is not None and (job.devices, job.nodes) == (1, 1)  # what the operation asks for goes to the job


def test_a_registered_model_name_is_recorded_as_its_reference(s: Services) -> None:
    s.store.append("model-base", [R.ModelAdded(name="base", ref="/models/base")])
    graph = {"nodes": {"m": {"op": "ex.use", "inputs": {"model": "base", "data": "base"}},
                       "u": {"op": "ex.use", "inputs": {"model": "unknown"}}}}
    row = s.runs.submit(graph)
    assert row.graph["nodes"]["m"]["inputs"] == {"model": "/models/base", "data": "base"}
    assert row.graph["nodes"]["u"]["inputs"] == {"model": "unknown"}
    s.runs.advance()
    job = s.tables.jobs.get(job_of(s, row.run_id, "m"))
    assert job is not None and job.inputs == {"model": "/models/base", "data": "base"}


def test_operations_a_node_calls_are_pinned_with_the_run_and_in_the_key(s: Services) -> None:
    graph = {"nodes": {"j": {"op": "ex.judge", "params": {"rewards": ["rw.score"]}}}}
    rw = s.plugins.resolve("rw", "score").row.code_hash
    ex = s.plugins.resolve("ex", "judge").row.code_hash
    row = s.runs.submit(graph)
    assert row.code["j"] == {"plugin": "ex", "version": "1.2", "code_hash": ex, "uses.rw": rw}
    s.runs.advance()
    job = s.tables.jobs.get(job_of(s, row.run_id, "j"))
    assert job is not None and job.uses == {"rw": rw}
    assert s.runs.find(row.run_id).nodes["j"].cache_key == cache_key(
        op="ex.judge", code_hash=ex, params={"rewards": ["rw.score"]}, inputs={}, uses={"rw": rw})
    # A replay pins recorded code: given per node, it replaces the current code for that node only.
    pinned = {"plugin": "ex", "version": "0.9", "code_hash": "e" * 64, "uses.rw": "f" * 64}
    old = s.runs.submit({"nodes": {**graph["nodes"], "g": {"op": "ex.gen"}}}, code={"j": pinned})
    assert old.code["j"] == pinned and old.code["g"]["code_hash"] == s.plugins.resolve("ex", "gen").row.code_hash
    s.runs.advance()
    job = s.tables.jobs.get(job_of(s, old.run_id, "j"))
    assert job is not None and (job.uses, job.code_hash, job.plugin_version) == ({"rw": "f" * 64}, "e" * 64, "0.9")


def test_find_takes_an_id_or_a_unique_prefix(s: Services) -> None:
    one = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}})
    assert s.runs.find(one.run_id).run_id == one.run_id
    assert s.runs.find(one.run_id[:-3]).run_id == one.run_id
    with pytest.raises(NotFoundError, match="no run 'zzz'") as missing:
        s.runs.find("zzz")
    assert missing.value.hint == "`tunectl runs list` shows them"
    with pytest.raises(NotFoundError, match="no run ''"):
        s.runs.find("")
    ids = sorted([one.run_id] + [s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}}).run_id for _ in range(6)])
    with pytest.raises(ValidationError) as ambiguous:
        s.runs.find("r")
    listed = ambiguous.value.message.removeprefix("run id prefix 'r' is ambiguous: ").split(", ")
    assert len(listed) == 5 and set(listed) <= set(ids)


def forkable(s: Services) -> RunRow:
    """a -> b -> c, with b's job interrupted after two checkpoints and then done."""
    row = s.runs.submit(CHAIN | {"nodes": {**CHAIN["nodes"],
                                           "d": {"op": "ex.use", "inputs": {"data": {"node": "b", "output": "out"}}}}})
    s.runs.advance()
    end(s, job_of(s, row.run_id, "a"), outputs={"rows": [1]})
    end(s, job_of(s, row.run_id, "c"))
    s.runs.advance()
    first_b = job_of(s, row.run_id, "b")
    s.store.append(job_stream(first_b), [J.JobStarted(job_id=first_b, pid=1, slot="cpu0", log_path="-"),
                                         J.JobCheckpointed(job_id=first_b, step=2, sha256="2" * 64, size=1)])
    end(s, first_b, "interrupted", started=False, checkpoint=(4, "4" * 64))
    s.runs.advance()
    end(s, job_of(s, row.run_id, "b"), outputs={"out": 7})
    s.runs.advance()
    end(s, job_of(s, row.run_id, "d"))
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert row.state == "succeeded"
    return row


def test_a_fork_runs_the_forked_node_from_its_checkpoint_and_everything_downstream(s: Services) -> None:
    row = forkable(s)
    first_b = row.nodes["b"].jobs[0]
    fork = s.runs.submit(row.graph, forked_from={"run": row.run_id, "node": "b", "step": 2, "job": first_b,
                                                 "checkpoint": "2" * 64}, code=row.code)
    s.runs.advance()
    fork = s.runs.find(fork.run_id)
    assert states(fork) == {"a": "cached", "b": "queued", "c": "cached", "d": "pending"}
    job = s.tables.jobs.get(fork.nodes["b"].job_id)
    assert job is not None and (job.resume_of, job.resume_checkpoint) == (first_b, "2" * 64)
    end(s, job.job_id, outputs={"out": 7})  # the same outputs: d's key is cached, yet d is downstream of the fork
    s.runs.advance()
    assert s.runs.find(fork.run_id).nodes["d"].state == "queued"

    plain = s.runs.submit(row.graph, forked_from={"run": row.run_id, "node": "b", "step": None, "job": None,
                                                  "checkpoint": None})
    s.runs.advance()
    plain = s.runs.find(plain.run_id)
    job = s.tables.jobs.get(plain.nodes["b"].job_id)
    assert job is not None and (job.resume_of, job.resume_checkpoint) == (None, None)
    end(s, job.job_id, outputs={"out": 7})
    s.runs.advance()
    assert s.runs.find(plain.run_id).nodes["d"].state == "queued"

    upstream = s.runs.submit(row.graph, forked_from={"run": row.run_id, "node": "a"})
    s.runs.advance()
    assert states(s.runs.find(upstream.run_id)) == {"a": "queued", "b": "pending", "c": "cached", "d": "pending"}


def test_an_interrupted_node_whose_plugin_is_gone_fails_its_run_and_the_others_go_on(tmp_path: Path) -> None:
    """An interrupted node whose plugin is gone cannot be started again: its node fails saying so
    (the run ends instead of staying `running` for ever; `runs resume` can take it up once the
    plugin is back), and the other runs advance in the same pass."""
    plugins = support.plugins(tmp_path / "plugins")
    with support.services(tmp_path / "home", plugins) as s:
        stuck, later = s.runs.submit({"nodes": {"x": {"op": "rw.score"}}}), s.runs.submit({"nodes": {"y": {"op": "ex.gen"}}})
        done = s.runs.submit({"nodes": {"z": {"op": "rw.score"}}})
        s.runs.advance()
        end(s, job_of(s, stuck.run_id, "x"), "interrupted", checkpoint=(1, "1" * 64))
        end(s, job_of(s, later.run_id, "y"))
        end(s, job_of(s, done.run_id, "z"), outputs={"value": 1})
        shutil.rmtree(plugins / "rw")
        anyio.run(s.plugins.scan)
        s.runs.advance()
        assert s.runs.find(later.run_id).state == "succeeded"
        stuck_row = s.runs.find(stuck.run_id)
        assert (stuck_row.state, stuck_row.nodes["x"].state) == ("failed", "failed")
        (failed,) = [e for t, e in run_events(s, stuck.run_id) if t == "node-failed"]
        assert failed.job_id == job_of(s, stuck.run_id, "x")
        assert failed.error.startswith("could not resume: ") and "rw" in failed.error, failed.error
        # A job that succeeded still completes its node; its output types are unknown without the plugin.
        (completed,) = [e for t, e in run_events(s, done.run_id) if t == "node-completed"]
        assert (completed.outputs, completed.output_types) == ({"value": 1}, {})
        assert s.runs.find(done.run_id).state == "succeeded"


@pytest.mark.timeout(60)  # reading a FIFO would block the daemon's loop until a writer comes
def test_a_path_input_that_is_not_a_file_or_folder_fails_its_node_and_only_it(s: Services, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        row = s.runs.submit({"nodes": {"f": {"op": "ex.use", "inputs": {"file": str(fifo)}},
                                       "s": {"op": "ex.use", "inputs": {"file": str(sock_path)}},
                                       "m": {"op": "ex.use", "inputs": {"file": "/proc/self/mem"}}}})
        later = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}})
        s.runs.advance()
    finally:
        sock.close()
    failed = {e.node: e.error for t, e in run_events(s, row.run_id) if t == "node-failed"}
    assert failed == {"f": f"could not start: input 'file' is not a file or folder: {fifo}",
                      "s": f"could not start: input 'file' is not a file or folder: {sock_path}",
                      "m": "could not start: cannot read input 'file' (/proc/self/mem): Input/output error"}
    assert s.runs.find(row.run_id).state == "failed"
    assert s.runs.find(later.run_id).nodes["x"].state == "queued"


def test_a_run_whose_recorded_graph_is_damaged_does_not_stop_the_others(s: Services,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    before = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}}).run_id
    s.store.append(run_stream("r-damaged"), [R.RunSubmitted(run_id="r-damaged", graph={"nodes": {}}, order=["x"],
                                                            code={})])
    later = s.runs.submit({"nodes": {"y": {"op": "ex.gen"}}})
    with caplog.at_level(logging.WARNING, logger="tunelog.daemon.runs.executor"):
        s.runs.advance()
    assert s.runs.find(before).nodes["x"].state == "queued" and s.runs.find(later.run_id).nodes["y"].state == "queued"
    (record,) = caplog.records
    assert record.getMessage() == "run r-damaged: could not advance" and record.exc_info is not None


def test_the_loop_advances_a_run_once_it_is_submitted(s: Services) -> None:
    async def main() -> None:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                await tg.start(s.runs.run)
                row = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}})  # wakes the loop
                while s.runs.find(row.run_id).nodes["x"].state != "queued":
                    await anyio.sleep(0.01)
                end(s, job_of(s, row.run_id, "x"))
                s.runs.wake()
                while s.runs.find(row.run_id).state != "succeeded":
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()

    anyio.run(main)


def test_the_resume_budget_counts_the_attempts_after_the_first_that_started(s: Services) -> None:
    once = RunExecutor(s.store, s.plugins, s.jobs, max_resumes=1)
    row = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}})
    once.advance()
    end(s, job_of(s, row.run_id, "x"), "interrupted")
    once.advance()
    node = s.runs.find(row.run_id).nodes["x"]
    assert node.state == "queued" and len(node.jobs) == 2  # the first attempt is not a resume
    end(s, job_of(s, row.run_id, "x"), "interrupted")
    once.advance()
    node = s.runs.find(row.run_id).nodes["x"]
    assert node.state == "failed" and len(node.jobs) == 2


def test_nodes_the_stopping_daemon_cannot_start_are_left_for_the_next_one_not_failed(s: Services) -> None:
    """While the job runner shuts down it takes no job: an interrupted node to resume and a pending
    node whose input just arrived stay as they are (the next daemon starts them), not failed."""
    row = s.runs.submit(CHAIN)
    s.runs.advance()
    end(s, job_of(s, row.run_id, "a"), outputs={"rows": [1, 2]})
    end(s, job_of(s, row.run_id, "c"), "interrupted", checkpoint=(1, "1" * 64))
    anyio.run(s.jobs.shutdown)
    assert s.jobs.stopping
    s.runs.advance()
    row = s.runs.find(row.run_id)
    assert (row.state, states(row)) == ("running", {"a": "completed", "b": "pending", "c": "queued"})
    assert not [e for t, e in run_events(s, row.run_id) if t == "node-failed"]
