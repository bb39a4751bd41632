"""The jobs projection as a pure fold over plain lists of events: every field each event sets (and
every field it leaves alone), the batched rebuild path `evolve_jobs`, and the fold table itself,
through the real `evolve_job` and a real SQLite store."""

from __future__ import annotations

import functools
from pathlib import Path

import msgspec
import pytest

from tunelog.events import jobs as J
from tunelog.events import runs as R
from tunelog.events.base import Event, StampedEvent
from tunelog.events.plugins import PluginLoaded
from tunelog.events.state import CORE_FOLDS, Fold, JobRow, all_folds, evolve_daemon, evolve_job, evolve_jobs
from tunelog.events.system import DaemonStarted, DaemonStopped
from tunelog.store.sqlite import SqliteStore

replace = msgspec.structs.replace

QUEUED = J.JobQueued(job_id="j1", plugin="p", operation="train", params={"lr": 0.1}, code_hash="c0de",
                     plugin_version="0.3", inputs={"data": {"sha256": "d"}}, resource="gpu", devices=2,
                     resume_of="j0", run_id="r1", resume_checkpoint="ck", nodes=3, gpu_type="A100",
                     uses={"helper": "beef"})
ROW = JobRow(key="j1", job_id="j1", plugin="p", operation="train", params={"lr": 0.1}, inputs={"data": {"sha256": "d"}},
             code_hash="c0de", plugin_version="0.3", resource="gpu", devices=2, nodes=3, gpu_type="A100",
             state="queued", queued_position=7, queued_at=70.0, resume_of="j0", resume_checkpoint="ck", run_id="r1",
             uses={"helper": "beef"})
"""What QUEUED makes at position 7, time 70."""


def at(position: int, event: Event) -> StampedEvent:
    return StampedEvent(position=position, time=10.0 * position, event=event)


def step(row: JobRow | None, event: Event, position: int = 8) -> JobRow | None:
    return evolve_job(row, at(position, event))


def test_a_queued_job_has_every_field_of_its_event_and_its_place_in_the_log() -> None:
    assert step(None, QUEUED, 7) == ROW
    # queueing again (a resubmitted id) starts the row over
    assert step(replace(ROW, state="failed", error="x", step=5), QUEUED, 9) == replace(ROW, queued_position=9,
                                                                                       queued_at=90.0)


def test_events_of_a_job_never_queued_make_no_row() -> None:
    for event in [J.JobStarted(job_id="j1", pid=1, slot="cpu0", log_path="l"), J.JobCancelled(job_id="j1"),
                  J.JobMetrics(job_id="j1", points=[{"step": 1}])]:
        assert step(None, event) is None
        assert evolve_jobs(None, [at(1, event)]) is None


def test_each_job_event_sets_its_fields_and_only_those() -> None:
    started = step(ROW, J.JobStarted(job_id="j1", pid=42, slot="gpu0,gpu1", log_path="/w.log", run_id="r1"))
    assert started == replace(ROW, state="running", pid=42, slot="gpu0,gpu1", log_path="/w.log", started_at=80.0)
    cases: list[tuple[Event, JobRow]] = [
        (J.JobArtifact(job_id="j1", name="adapter", sha256="a1", size=3), replace(ROW, artifacts={"adapter": "a1"})),
        (J.JobCheckpointed(job_id="j1", step=12, sha256="k1", size=9),
         replace(ROW, checkpoint_step=12, checkpoint_sha256="k1")),
        (J.JobCancelRequested(job_id="j1", reason="because"), replace(ROW, cancel_requested=True)),
        (J.JobSucceeded(job_id="j1", outputs={"adapter": {"sha256": "a1"}}, duration_s=3.0),
         replace(ROW, state="succeeded", outputs={"adapter": {"sha256": "a1"}}, ended_at=80.0)),
        (J.JobFailed(job_id="j1", error="ValueError: bad", cause="exception", exit_code=1, signal="SIGTERM",
                     traceback="Traceback ...", last_lines=["a", "b"], error_type="ValueError",
                     message="bad\nrow 3", hint="fix row 3", problems=[{"where": "row 3", "message": "bad"}]),
         replace(ROW, state="failed", error="ValueError: bad", cause="exception", traceback="Traceback ...",
                 last_lines=["a", "b"], ended_at=80.0, error_type="ValueError", error_message="bad\nrow 3",
                 hint="fix row 3", problems=[{"where": "row 3", "message": "bad"}])),
        (J.JobCancelled(job_id="j1", forced=True), replace(ROW, state="cancelled", ended_at=80.0)),
        (J.JobInterrupted(job_id="j1", reason="daemon restarted"),
         replace(ROW, state="interrupted", error="daemon restarted", ended_at=80.0)),
        # events the projection does not read leave the row as it was
        (J.JobLog(job_id="j1", lines=["hello"]), ROW),
        (PluginLoaded(name="p", version="1", code_hash="h", path="/p", source="user", manifest={}), ROW),
    ]
    for event, expected in cases:
        assert step(ROW, event) == expected, event.tag
    two = step(step(ROW, J.JobArtifact(job_id="j1", name="a", sha256="1", size=1)),
               J.JobArtifact(job_id="j1", name="b", sha256="2", size=1))
    assert two is not None and two.artifacts == {"a": "1", "b": "2"}


def test_progress_keeps_the_last_known_total_and_note() -> None:
    first = step(ROW, J.JobProgress(job_id="j1", step=3, total=10, message="loading"))
    assert first == replace(ROW, step=3, total=10, message="loading")
    second = step(first, J.JobProgress(job_id="j1", step=4))
    assert second == replace(ROW, step=4, total=10, message="loading")
    third = step(second, J.JobProgress(job_id="j1", step=2, total=0, message="eval"))
    assert third == replace(ROW, step=2, total=0, message="eval")


def metrics(*points: dict[str, float]) -> J.JobMetrics:
    return J.JobMetrics(job_id="j1", points=list(points))


def test_metrics_keep_the_latest_value_of_each_and_the_highest_step() -> None:
    row = replace(ROW, step=5, metrics={"loss": 2.0, "lr": 0.5})
    cases: list[tuple[list[J.JobMetrics], dict[str, float], int]] = [
        ([metrics({"step": 6, "loss": 1.0}), metrics({"step": 7, "tokens": 9.0})],
         {"loss": 1.0, "lr": 0.5, "step": 7, "tokens": 9.0}, 7),
        ([metrics({"step": 6, "loss": 1.0}, {"step": 8, "loss": 0.5})], {"loss": 0.5, "lr": 0.5, "step": 8}, 8),
        ([metrics({"step": 3, "loss": 1.0})], {"loss": 1.0, "lr": 0.5, "step": 3}, 5),  # a step back keeps 5
        ([metrics({"loss": 1.5})], {"loss": 1.5, "lr": 0.5}, 5),  # no step at all keeps the row's
        ([metrics({"step": 6.9})], {"loss": 2.0, "lr": 0.5, "step": 6.9}, 6),  # steps are whole numbers
        ([metrics()], {"loss": 2.0, "lr": 0.5}, 5),
    ]
    for events, expected, expected_step in cases:
        envs = [at(8 + i, e) for i, e in enumerate(events)]
        one_by_one = functools.reduce(evolve_job, envs, row)
        assert one_by_one == replace(row, metrics=expected, step=expected_step), events
        assert evolve_jobs(row, envs) == one_by_one, events
    assert row.metrics == {"loss": 2.0, "lr": 0.5}, "folding changed the row it started from"


def test_evolve_jobs_writes_the_merged_metrics_before_the_next_event_and_at_the_end() -> None:
    row = replace(ROW, state="running", step=1, metrics={"loss": 3.0})
    envs = [at(8, metrics({"step": 2, "loss": 2.0})), at(9, metrics()), at(10, metrics({"step": 3, "loss": 1.0})),
            at(11, J.JobProgress(job_id="j1", step=4, message="eval")),  # progress sets the step itself
            at(12, metrics({"step": 4, "acc": 0.5})), at(13, metrics({"loss": 0.5})),
            at(14, J.JobSucceeded(job_id="j1", outputs={}, duration_s=1.0)),
            at(15, metrics({"step": 9}))]  # metrics after the end still count, as one by one
    expected = replace(row, state="succeeded", ended_at=140.0, message="eval", step=9,
                       metrics={"loss": 0.5, "step": 9, "acc": 0.5})
    assert functools.reduce(evolve_job, envs, row) == expected
    assert evolve_jobs(row, envs) == expected
    assert evolve_jobs(row, envs[:3]) == replace(row, step=3, metrics={"loss": 1.0, "step": 3})
    assert evolve_jobs(row, envs[3:4]) == replace(row, step=4, message="eval")
    assert evolve_jobs(None, [at(7, QUEUED), at(8, metrics({"step": 2, "loss": 2.0}))]) == replace(
        ROW, step=2, metrics={"step": 2, "loss": 2.0})
    assert evolve_jobs(row, []) is row
    assert row.metrics == {"loss": 3.0}, "folding changed the row it started from"


def test_fold_many_uses_evolve_many_when_a_fold_has_one_and_evolve_one_by_one_else() -> None:
    envs = [at(1, DaemonStarted(pid=1, version="1", socket="s", data_dir="d")), at(2, DaemonStopped(pid=1, reason="signal"))]
    plain = Fold("daemon", object, frozenset(), lambda env: "daemon", evolve_daemon)
    assert plain.fold_many(None, envs) == functools.reduce(evolve_daemon, envs, None)
    batched = Fold("daemon", object, frozenset(), lambda env: "daemon", evolve_daemon,
                   evolve_many=lambda row, es: ("batched", row, [e.position for e in es]))
    assert batched.fold_many("r", envs) == ("batched", "r", [1, 2])


def test_the_folds_read_their_own_events_and_key_rows_by_them() -> None:
    folds = {f.table: f for f in all_folds()}
    assert list(folds) == ["daemon", "plugins", "jobs", "workflows", "runs", "cache", "adapters", "models"]
    assert all_folds()[:3] == CORE_FOLDS
    assert folds["daemon"].tags == {"daemon-started", "daemon-stopped"}
    assert folds["plugins"].tags == {"plugin-loaded", "plugin-reloaded", "plugin-failed", "plugin-removed"}
    assert folds["jobs"].tags == {"job-queued", "job-started", "job-progress", "job-metrics", "job-artifact",
                                  "job-checkpointed", "job-cancel-requested", "job-succeeded", "job-failed",
                                  "job-cancelled", "job-interrupted"}
    assert folds["runs"].tags == {"job-started", "run-submitted", "node-queued", "node-cached", "node-completed",
                                  "node-failed", "node-skipped", "run-cancel-requested", "run-resumed",
                                  "run-finished", "training-started"}
    assert folds["workflows"].tags == {"workflow-saved"} and folds["cache"].tags == {"node-completed"}
    assert folds["adapters"].tags == {"node-completed", "adapter-merged"}
    assert folds["models"].tags == {"model-added", "model-removed"}
    assert folds["daemon"].key(at(1, DaemonStopped(pid=1, reason="signal"))) == "daemon"
    assert folds["plugins"].key(at(1, PluginLoaded(name="p", version="1", code_hash="h", path="/p", source="user", manifest={}))) == "p"
    assert folds["jobs"].key(at(1, QUEUED)) == "j1"
    assert folds["runs"].key(at(1, J.JobStarted(job_id="j1", pid=1, slot="c", log_path="l", run_id="r1"))) == "r1"
    assert folds["runs"].key(at(1, J.JobStarted(job_id="j1", pid=1, slot="c", log_path="l"))) is None
    assert folds["workflows"].key(at(1, R.WorkflowSaved(name="wf", version=1, graph={}))) == "wf"
    assert [f.evolve_many is not None for f in folds.values()] == [False, False, True, False, False, False, False,
                                                                    False]


def test_the_store_counts_jobs_by_state_and_lists_the_queue_in_order(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.sqlite")
    for job_id in ["a", "b", "c"]:
        store.append(f"job-{job_id}", [replace(QUEUED, job_id=job_id)])
    store.append("job-b", [J.JobStarted(job_id="b", pid=5, slot="cpu0", log_path="l")])
    store.append("job-c", [J.JobStarted(job_id="c", pid=6, slot="cpu1", log_path="l"),
                           J.JobMetrics(job_id="c", points=[{"step": 2, "loss": 1.0}]),
                           J.JobFailed(job_id="c", error="boom", cause="exit")])
    assert store.count_by("jobs", "state") == {"queued": 1, "running": 1, "failed": 1}
    assert [r.job_id for r in store.select("jobs", order="queued_position")] == ["a", "b", "c"]
    c = store.get("jobs", "c")
    assert (c.state, c.pid, c.step, c.metrics, c.error) == ("failed", 6, 2, {"step": 2, "loss": 1.0}, "boom")
    assert store.rebuild() > 0
    assert store.get("jobs", "c") == c and store.count_by("jobs", "state") == {"queued": 1, "running": 1, "failed": 1}


@pytest.mark.parametrize("table", ["daemon", "plugins", "jobs"])
def test_core_folds_count_and_index_only_what_the_store_filters_jobs_by(table: str) -> None:
    fold = {f.table: f for f in CORE_FOLDS}[table]
    expected = {"jobs": (("state",), (("state", "queued_position"), ("queued_position",)))}.get(table, ((), ()))
    assert (fold.counted, fold.indexes) == expected


def test_a_progress_step_lower_than_pending_metrics_is_kept_as_one_by_one() -> None:
    """Metrics to step 5, then a progress message back at step 2 (an evaluation pass) and nothing
    after: the batched fold must write the metrics before the progress, not over it at the end."""
    row = replace(ROW, state="running", step=1, metrics={"loss": 3.0})
    envs = [at(8, metrics({"step": 5, "loss": 1.0})), at(9, J.JobProgress(job_id="j1", step=2, message="eval"))]
    one_by_one = functools.reduce(evolve_job, envs, row)
    assert one_by_one == replace(row, step=2, message="eval", metrics={"loss": 1.0, "step": 5})
    assert evolve_jobs(row, envs) == one_by_one
