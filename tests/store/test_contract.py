"""The store contract, run against both implementations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelog.events.errors import ConflictError, ValidationError
from tunelog.events.jobs import JobCancelRequested, JobQueued, JobStarted
from tunelog.store import MemoryStore, SqliteStore
from tunelog.store.base import CommandRecord, EventStore


def queued(job_id: str) -> JobQueued:
    return JobQueued(job_id=job_id, plugin="p", operation="op", params={"n": 1}, code_hash="h", plugin_version="1")


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    s: EventStore = SqliteStore(tmp_path / "log.sqlite") if request.param == "sqlite" else MemoryStore()
    yield s
    s.close()


def test_positions_and_versions_are_gap_free_in_commit_order(store: EventStore) -> None:
    store.append("job-a", [queued("a")])
    store.append("job-b", [queued("b")])
    store.append("job-a", [JobStarted(job_id="a", pid=1, slot="cpu0", log_path="l")])
    envs = store.read()
    assert [e.position for e in envs] == [1, 2, 3]
    assert [(e.stream, e.version) for e in envs] == [("job-a", 1), ("job-b", 1), ("job-a", 2)]
    assert store.head() == 3 and store.stream_version("job-a") == 2 and store.stream_version("nope") == 0


def test_a_batch_is_atomic_and_a_stale_version_conflicts_and_writes_nothing(store: EventStore) -> None:
    out = store.append("job-a", [queued("a"), JobStarted(job_id="a", pid=1, slot="cpu0", log_path="l")],
                       expected_version=0)
    assert [e.version for e in out] == [1, 2]
    with pytest.raises(ConflictError, match="version 2, not 1"):
        store.append("job-a", [JobCancelRequested(job_id="a"), JobCancelRequested(job_id="a")], expected_version=1)
    assert store.head() == 2
    assert store.get("jobs", "a").cancel_requested is False
    with pytest.raises(ConflictError):
        store.append("job-a", [queued("a")], expected_version=0)


def test_a_retried_command_id_is_answered_from_the_log(store: EventStore) -> None:
    first = store.append("job-a", [queued("a")], command_id="cmd-1")
    again = store.append("job-a", [queued("a")], command_id="cmd-1")
    assert again == first
    assert store.head() == 1
    assert store.read()[0].command_id == "cmd-1"


def test_a_command_record_keeps_the_first_answer(store: EventStore) -> None:
    assert store.command("cmd-1") is None
    first = CommandRecord(command_id="cmd-1", kind="POST /v1/x", fingerprint="a" * 64, status=201, answer=b'{"x":1}')
    assert store.record_command(first) == first
    later = CommandRecord(command_id="cmd-1", kind="POST /v1/y", fingerprint="b" * 64, status=202, answer=b"{}")
    assert store.record_command(later) == first
    assert store.command("cmd-1") == first
    assert store.head() == 0  # a record is no event


def test_a_pending_command_record_is_answered_by_its_own_command_only(store: EventStore) -> None:
    pending = CommandRecord(command_id="cmd-2", kind="POST /v1/x", fingerprint="a" * 64, status=0, answer=b"")
    assert store.record_command(pending) == pending
    other = CommandRecord(command_id="cmd-2", kind="POST /v1/y", fingerprint="b" * 64, status=201, answer=b"{}")
    assert store.record_command(other) == pending  # another command cannot answer it
    answered = CommandRecord(command_id="cmd-2", kind="POST /v1/x", fingerprint="a" * 64, status=201, answer=b"{}")
    assert store.record_command(answered) == answered
    store.forget_command("cmd-2")  # answered records stay
    assert store.command("cmd-2") == answered
    store.record_command(CommandRecord(command_id="cmd-3", kind="POST /v1/x", fingerprint="c" * 64, status=0,
                                       answer=b""))
    store.forget_command("cmd-3")
    assert store.command("cmd-3") is None


def test_a_position_past_64_bits_is_a_validation_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.sqlite")
    with pytest.raises(ValidationError, match="out of range"):
        store.read(after=1 << 63)
    store.close()


def test_reads_from_a_position_with_filters(store: EventStore) -> None:
    for i in range(5):
        store.append(f"job-{i % 2}", [queued(str(i))])
    store.append("job-0", [JobCancelRequested(job_id="0")])
    assert [e.position for e in store.read(after=2)] == [3, 4, 5, 6]
    assert [e.position for e in store.read(after=1, limit=2)] == [2, 3]
    assert [e.position for e in store.read(stream="job-1")] == [2, 4]
    assert [e.position for e in store.read(types=["job-cancel-requested"])] == [6]
    assert store.read(after=6) == []


def test_projections_follow_appends_and_record_their_position(store: EventStore) -> None:
    store.append("job-a", [queued("a")])
    store.append("job-a", [JobStarted(job_id="a", pid=7, slot="cpu0", log_path="l")])
    row = store.get("jobs", "a")
    assert (row.state, row.pid, row.queued_position) == ("running", 7, 1)
    assert store.projection_position("jobs") == 2
    before = store.rows("jobs")
    assert store.rebuild() == 2
    assert store.rows("jobs") == before


def test_rows_by_key_prefix_come_in_key_order_up_to_the_limit(store: EventStore) -> None:
    for job in ("ab2", "ab1", "a", "abc", "b", "ab\u00e9"):
        store.append(f"job-{job}", [queued(job)])
    assert [r.job_id for r in store.with_prefix("jobs", "ab", limit=10)] == ["ab1", "ab2", "abc", "ab\u00e9"]
    assert [r.job_id for r in store.with_prefix("jobs", "ab", limit=2)] == ["ab1", "ab2"]
    assert [r.job_id for r in store.with_prefix("jobs", "abc", limit=10)] == ["abc"]
    assert store.with_prefix("jobs", "c", limit=10) == []
    assert len(store.with_prefix("jobs", "", limit=4)) == 4


def test_subscribers_hear_only_committed_heads(store: EventStore) -> None:
    heard: list[int] = []
    stop = store.subscribe(heard.append)
    store.append("job-a", [queued("a")])
    with pytest.raises(ConflictError):
        store.append("job-a", [queued("a")], expected_version=0)
    store.append("job-b", [queued("b")])
    stop()
    store.append("job-c", [queued("c")])
    assert heard == [1, 2]


def test_sqlite_log_survives_reopen(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "log.sqlite")
    s.append("job-a", [queued("a")], command_id="c")
    s.close()
    s2 = SqliteStore(tmp_path / "log.sqlite")
    assert s2.head() == 1 and s2.get("jobs", "a").state == "queued"
    assert s2.append("job-a", [queued("a")], command_id="c")[0].position == 1
    assert s2.integrity_check() == "ok"
    s2.close()
