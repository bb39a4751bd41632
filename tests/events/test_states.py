"""State names: the folds reach only `JobState` members, and the ended ones are the terminal tags."""

from __future__ import annotations

import functools

import pytest

from tunelog.events import jobs as J
from tunelog.events.base import Event, StampedEvent
from tunelog.events.run_state import NODE_ACTIVE, NODE_AGAIN, NODE_DONE, NODE_ENDED, NodeRow, NodeState
from tunelog.events.state import JOB_ACTIVE, JOB_ENDED, JobRow, JobState, evolve_job


def fold(events: list[Event]) -> JobRow:
    stamped = [StampedEvent(position=i + 1, time=float(i), event=e) for i, e in enumerate(events)]
    row = functools.reduce(evolve_job, stamped, None)
    assert row is not None
    return row


@pytest.mark.parametrize("end", [
    J.JobSucceeded(job_id="a", outputs={}, duration_s=1.0),
    J.JobFailed(job_id="a", error="boom", cause="exit"),
    J.JobCancelled(job_id="a"),
    J.JobInterrupted(job_id="a", reason="daemon restarted"),
])
def test_a_job_passes_through_active_states_to_an_ended_one(end: Event) -> None:
    queued = J.JobQueued(job_id="a", plugin="p", operation="op", params={}, code_hash="h", plugin_version="1")
    started = J.JobStarted(job_id="a", pid=1, slot="cpu0", log_path="l")
    states = [fold([queued]).state, fold([queued, started]).state, fold([queued, started, end]).state]
    assert states[:2] == [JobState.QUEUED, JobState.RUNNING] and set(states[:2]) <= JOB_ACTIVE
    assert states[2] in JOB_ENDED and states[2] == end.tag.removeprefix("job-")


def test_state_sets_partition_the_enums() -> None:
    assert {t.removeprefix("job-") for t in J.TERMINAL} == JOB_ENDED == set(JobState) - JOB_ACTIVE
    assert NODE_ENDED == NODE_DONE | NODE_AGAIN and not NODE_DONE & NODE_AGAIN
    assert set(NodeState) == NODE_ENDED | NODE_ACTIVE | {NodeRow().state}
