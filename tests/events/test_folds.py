"""A fold's `evolve_many` (what rebuilds use) equals its `evolve` applied one event at a time."""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from tunelog.events import jobs as J
from tunelog.events.base import Event, StampedEvent
from tunelog.events.state import JobRow, all_folds, evolve_job, evolve_jobs

ids = st.sampled_from(["a", "b"])
texts = st.text(max_size=4)
numbers = st.integers(-2, 6) | st.floats(-2, 6, allow_nan=False)  # small: steps often tie or step back
# Points as workers send them (each with a step) and odd ones: no step, empty, keys in any order.
point = (st.fixed_dictionaries({"step": st.integers(0, 6)}, optional={"loss": numbers, "lr": numbers})
         | st.dictionaries(st.sampled_from(["step", "loss", "lr", "tokens"]), numbers, max_size=4))
points = st.lists(point, max_size=3)

job_events = st.one_of(
    st.builds(J.JobQueued, job_id=ids, plugin=st.just("p"), operation=st.just("op"),
              params=st.dictionaries(st.sampled_from(["lr", "r"]), st.integers(0, 9)), code_hash=texts,
              plugin_version=st.just("1")),
    st.builds(J.JobStarted, job_id=ids, pid=st.integers(1, 99), slot=st.just("cpu0"), log_path=texts),
    st.builds(J.JobProgress, job_id=ids, step=st.integers(0, 6), total=st.none() | st.integers(1, 9)),
    *[st.builds(J.JobMetrics, job_id=ids, points=points)] * 3,  # mostly metrics, as in a real log
    st.builds(J.JobArtifact, job_id=ids, name=texts, sha256=texts, size=st.integers(0, 9)),
    st.builds(J.JobSucceeded, job_id=ids, outputs=st.dictionaries(texts, texts, max_size=2),
              duration_s=st.floats(0, 9, allow_nan=False)),
    st.builds(J.JobCancelled, job_id=ids, forced=st.booleans()),
)


def stamped(events: list[Event]) -> list[StampedEvent]:
    return [StampedEvent(position=i + 1, time=1.5 * i, event=e) for i, e in enumerate(events)]


start_rows = st.none() | st.builds(
    lambda metrics, step: JobRow(key="a", job_id="a", plugin="p", operation="op", params={}, inputs={},
                                 code_hash="h", plugin_version="1", resource="cpu", state="running",
                                 queued_position=1, queued_at=0.0, metrics=metrics, step=step),
    st.dictionaries(st.sampled_from(["step", "loss"]), numbers, max_size=2), st.integers(0, 50))


@settings(max_examples=300, deadline=None)
@given(start_rows, st.lists(job_events, max_size=30))
def test_evolve_jobs_equals_evolve_job_one_by_one(row: JobRow | None, events: list[Event]) -> None:
    envs = stamped(events)
    assert evolve_jobs(row, envs) == functools.reduce(evolve_job, envs, row)


def test_every_fold_many_equals_its_evolve_one_by_one_on_a_run_of_metrics() -> None:
    queued = J.JobQueued(job_id="a", plugin="p", operation="op", params={}, code_hash="h", plugin_version="1")
    metrics = [J.JobMetrics(job_id="a", points=[{"step": s, "loss": 1 / (s + 1)}]) for s in range(50)]
    envs = stamped([queued, *metrics, J.JobMetrics(job_id="a", points=[{"loss": 0.1}, {"step": 3}])])
    for fold in all_folds():
        ours = [e for e in envs if e.event.tag in fold.tags]
        assert fold.fold_many(None, ours) == functools.reduce(fold.evolve, ours, None), fold.table
