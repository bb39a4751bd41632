"""The run, cache, adapter and model folds, event by event: what `tunectl runs show`, the cache and
`adapters list` read. Written against mutants that survived the property tests (which compare
a fold with itself, live against rebuilt, and so cannot see a fold that is wrong both times)."""

from __future__ import annotations

from typing import Any

import msgspec

from tunelog.events import merges as M
from tunelog.events import runs as R
from tunelog.events.base import Event, StampedEvent
from tunelog.events.run_state import (
    AdapterRow,
    CacheRow,
    ModelRow,
    NodeRow,
    RunRow,
    WorkflowRow,
    evolve_adapter,
    evolve_cache,
    evolve_model,
    evolve_run,
    evolve_workflow,
)


def fold(events: list[Event], evolve: Any, row: Any = None) -> list[Any]:
    """Every intermediate row, one per event."""
    out = []
    for i, e in enumerate(events):
        row = evolve(row, StampedEvent(position=10 + i, time=100.0 + i, event=e))
        out.append(row)
    return out


SUBMIT = R.RunSubmitted(run_id="r1", graph={"nodes": {}}, order=["a", "b"], code={"a": {"code_hash": "h"}},
                        workflow="wf", workflow_version=2, no_cache=True, force=["b"], replay_of="r0",
                        forked_from={"run": "r0"}, label="first")


def test_a_run_row_follows_its_nodes_from_submit_to_finish() -> None:
    rows: list[RunRow] = fold([
        SUBMIT,
        R.NodeQueued(run_id="r1", node="a", job_id="j1", cache_key="k1", inputs={"x": 1}, attempt=1),
        R.NodeFailed(run_id="r1", node="a", job_id="j1", state="interrupted", error="daemon stopped"),
        R.NodeQueued(run_id="r1", node="a", job_id="j2", cache_key="k1", inputs={"x": 1}, attempt=2),
        R.NodeCompleted(run_id="r1", node="a", job_id="j2", cache_key="k1", outputs={"y": 2}),
        R.NodeCached(run_id="r1", node="b", cache_key="k2", outputs={"z": 3}, source_job="j0"),
        R.RunCancelRequested(run_id="r1"),
        R.RunFinished(run_id="r1", state="succeeded"),
    ], evolve_run)
    first = rows[0]
    assert first == RunRow(key="r1", run_id="r1", graph={"nodes": {}}, order=["a", "b"],
                           code={"a": {"code_hash": "h"}}, nodes={"a": NodeRow(), "b": NodeRow()}, state="running",
                           submitted_at=100.0, submitted_position=10, workflow="wf", workflow_version=2,
                           replay_of="r0", forked_from={"run": "r0"}, label="first", no_cache=True, force=["b"])
    assert rows[1].nodes["a"] == NodeRow(state="queued", job_id="j1", jobs=["j1"], cache_key="k1", inputs={"x": 1},
                                         attempt=1)
    assert rows[1].nodes["b"] == NodeRow() and rows[1].state == "running"
    assert rows[2].nodes["a"].state == "failed" and rows[2].nodes["a"].error == "interrupted: daemon stopped"
    assert rows[2].nodes["a"].jobs == ["j1"]
    again = rows[3].nodes["a"]
    assert (again.state, again.job_id, again.jobs, again.attempt, again.error) == ("queued", "j2", ["j1", "j2"], 2, "")
    done = rows[4].nodes["a"]
    assert (done.state, done.outputs, done.job_id, done.jobs) == ("completed", {"y": 2}, "j2", ["j1", "j2"])
    cached = rows[5].nodes["b"]
    assert cached == NodeRow(state="cached", cache_key="k2", outputs={"z": 3}, job_id="j0")
    assert rows[5].nodes["a"] == done  # a change to one node leaves the others alone
    assert rows[6].cancel_requested and rows[6].state == "running"
    assert (rows[7].state, rows[7].finished_at) == ("succeeded", 107.0)
    assert rows[0].nodes == {"a": NodeRow(), "b": NodeRow()}  # earlier rows are never changed in place


def test_resume_reopens_only_the_named_nodes_and_skips_carry_their_reason() -> None:
    rows: list[RunRow] = fold([
        SUBMIT,
        R.NodeFailed(run_id="r1", node="a", job_id="j1", state="failed", error="boom"),
        R.NodeSkipped(run_id="r1", node="b", reason="a failed"),
        R.RunCancelRequested(run_id="r1"),
        R.RunFinished(run_id="r1", state="failed"),
        R.RunResumed(run_id="r1", nodes=["b"]),
    ], evolve_run)
    assert rows[2].nodes["b"] == NodeRow(state="skipped", error="a failed")
    resumed = rows[5]
    assert (resumed.state, resumed.finished_at, resumed.cancel_requested) == ("running", None, False)
    assert resumed.nodes["b"] == NodeRow(state="pending", error="")
    assert resumed.nodes["a"] == rows[4].nodes["a"] and resumed.nodes["a"].error == "failed: boom"


def test_training_started_is_kept_per_job_and_other_events_change_nothing() -> None:
    start = R.TrainingStarted(run_id="r1", job_id="j1", params={"lr": 1}, seed=3, libraries={"torch": "2"},
                              device={"type": "cpu"}, model={"sha": "m"}, dataset={"sha": "d"}, determinism={})
    second = msgspec.structs.replace(start, job_id="j2", seed=4)
    rows: list[RunRow] = fold([SUBMIT, start, second, R.ModelAdded(name="x", ref="y")], evolve_run)
    assert rows[1].training == {"j1": msgspec.to_builtins(start)}
    assert set(rows[2].training) == {"j1", "j2"} and rows[2].training["j2"]["seed"] == 4
    assert rows[3] == rows[2]
    assert evolve_run(None, StampedEvent(position=1, time=0.0, event=start)) is None  # no run, nothing to fold


def test_workflow_cache_and_model_rows() -> None:
    [wf] = fold([R.WorkflowSaved(name="pipe", version=3, graph={"nodes": {}})], evolve_workflow)
    assert wf == WorkflowRow(key="pipe", name="pipe", version=3, graph={"nodes": {}}, saved_at=100.0)
    [cache] = fold([R.NodeCompleted(run_id="r1", node="a", job_id="j2", cache_key="k1", outputs={"y": 2})],
                   evolve_cache)
    assert cache == CacheRow(key="k1", outputs={"y": 2}, job_id="j2", run_id="r1", node="a")
    added, removed = fold([R.ModelAdded(name="smol", ref="/m", note="n"), R.ModelRemoved(name="smol")], evolve_model)
    assert added == ModelRow(key="smol", name="smol", ref="/m", note="n", added_at=100.0) and removed is None


def merged(sha: str, kind: str = "adapter") -> M.AdapterMerged:
    return M.AdapterMerged(merge_id=f"merge-{sha[:16]}", merge_type="cat",
                           inputs=[M.MergeInput(sha256="p1", weight=0.5)], base_model={"ref": "/m"},
                           output_sha256=sha, output_kind=kind, exact=True, job_id="jm")


def test_an_adapter_row_records_its_first_producer_only() -> None:
    trained = R.NodeCompleted(run_id="r1", node="train", job_id="j1", cache_key="k",
                              outputs={"adapter": "s1", "metrics": {"loss": 1}},
                              output_types={"metrics": "json", "adapter": "adapter"})
    rows = fold([trained, merged("s1"), R.NodeCompleted(run_id="r2", node="t", job_id="j9", cache_key="k",
                                                        outputs={"adapter": "s1"}, output_types={"adapter": "adapter"})],
                evolve_adapter)
    first = AdapterRow(key="s1", sha256="s1", source="run", created_at=100.0, created_position=10, run_id="r1",
                       node="train", job_id="j1")
    assert rows == [first, first, first]
    [row] = fold([merged("s2")], evolve_adapter)
    assert row == AdapterRow(key="s2", sha256="s2", source="merge", created_at=100.0, created_position=10,
                             base_model={"ref": "/m"},
                             parents=[{"sha256": "p1", "weight": 0.5}], merge_type="cat", exact=True, job_id="jm")


def test_events_without_an_adapter_leave_the_adapter_row_as_it_is() -> None:
    existing = AdapterRow(key="s1", sha256="s1", source="run", created_at=1.0)
    no_adapter = R.NodeCompleted(run_id="r1", node="d", job_id="j", cache_key="k", outputs={"dataset": "x"},
                                 output_types={"dataset": "dataset"})
    not_a_str = R.NodeCompleted(run_id="r1", node="d", job_id="j", cache_key="k", outputs={"adapter": None},
                                output_types={"adapter": "adapter"})
    for e in (no_adapter, not_a_str, merged("s3", kind="model"), R.ModelAdded(name="a", ref="b")):
        assert evolve_adapter(None, StampedEvent(position=1, time=0.0, event=e)) is None
        assert evolve_adapter(existing, StampedEvent(position=1, time=0.0, event=e)) is existing


def test_the_runs_projection_of_a_real_store_follows_every_run_event_after_each_append(tmp_path: Any) -> None:
    """The runs fold in a real SQLite store, after each append and after a rebuild, equals
    `evolve_run` over every event of the log touching the run: a type missing from the fold's tags
    (the store never shows it the event) shows as a difference at the append where it counts."""
    from tunelog.events import jobs as J
    from tunelog.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "log.sqlite")
    submit = R.RunSubmitted(run_id="r1", graph={"nodes": {}}, order=["a", "b", "c", "d"], code={})
    steps: list[tuple[str, Event]] = [
        ("run-r1", submit),
        ("run-r1", R.NodeQueued(run_id="r1", node="a", job_id="j1", cache_key="ka", inputs={})),
        ("job-j1", J.JobStarted(job_id="j1", pid=7, slot="cpu0", log_path="l", run_id="r1")),
        ("run-r1", R.TrainingStarted(run_id="r1", job_id="j1", params={"lr": 0.1}, seed=3, libraries={}, device={},
                                     model={}, dataset={}, determinism={})),
        ("run-r1", R.NodeCompleted(run_id="r1", node="a", job_id="j1", cache_key="ka", outputs={"x": "1"})),
        ("run-r1", R.NodeCached(run_id="r1", node="b", cache_key="kb", outputs={"y": "2"}, source_job="j0")),
        ("run-r1", R.NodeQueued(run_id="r1", node="c", job_id="j2", cache_key="kc", inputs={})),
        ("run-r1", R.NodeFailed(run_id="r1", node="c", job_id="j2", state="failed", error="boom")),
        ("run-r1", R.NodeSkipped(run_id="r1", node="d", reason="an input failed")),
        ("run-r1", R.RunCancelRequested(run_id="r1", reason="stop")),
        ("run-r1", R.RunFinished(run_id="r1", state="failed")),
        ("run-r1", R.RunResumed(run_id="r1", nodes=["c", "d"])),
    ]
    expected: RunRow | None = None
    for stream, event in steps:
        [env] = store.append(stream, [event])
        expected = evolve_run(expected, StampedEvent(position=env.position, time=env.time, event=env.event))
        assert store.get("runs", "r1") == expected, event
    assert expected is not None and expected.training and expected.nodes["d"].state == "pending"
    assert store.rebuild() > 0
    assert store.get("runs", "r1") == expected
