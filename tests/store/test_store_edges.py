"""Edges of the store the contract tests leave out: causation and correlation ids survive a read,
type filters with several types, SQLite errors become our errors naming what was being done,
time travel's refusals, and the package's lazy names. Written against surviving mutants."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tunelog.store
from tunelog.events import jobs as J
from tunelog.events import runs as R
from tunelog.events.base import Event, Stamped
from tunelog.events.errors import ConflictError, TunelogError, ValidationError
from tunelog.events.state import Fold, all_folds
from tunelog.store import MemoryStore, SqliteStore
from tunelog.store.base import CommandRecord, EventStore
from tunelog.store.timetravel import copy_prefix, state_at


def queued(job_id: str) -> J.JobQueued:
    return J.JobQueued(job_id=job_id, plugin="p", operation="op", params={}, code_hash="h", plugin_version="1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "log.sqlite")
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "memory"])
def either(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    s: EventStore = (SqliteStore(tmp_path / "log.sqlite", clock=lambda: 42.5) if request.param == "sqlite"
                     else MemoryStore(clock=lambda: 42.5))
    yield s
    s.close()


def test_command_causation_and_correlation_ids_and_the_time_are_read_back(either: EventStore) -> None:
    [written] = either.append("job-a", [queued("a")], command_id="cmd", causation_id="cause", correlation_id="corr")
    [read] = either.read(stream="job-a")
    assert (read.command_id, read.causation_id, read.correlation_id) == ("cmd", "cause", "corr")
    assert (read.time, read.schema_version, read.type) == (42.5, 1, "job-queued")
    assert read == written


def test_a_batch_gets_consecutive_positions_and_a_removal_empties_its_row(either: EventStore) -> None:
    either.append("job-a", [queued("a")])
    batch = either.append("models", [R.ModelAdded(name="m", ref="/m"), R.ModelAdded(name="n", ref="/n"),
                                     R.ModelRemoved(name="m")])
    assert [(e.position, e.version) for e in batch] == [(2, 1), (3, 2), (4, 3)]
    assert [r.name for r in either.rows("models")] == ["n"]
    assert either.projection_position("models") == 4
    assert either.rebuild() == 4  # m's removal comes after n's event: a later run of m's events deletes the row
    assert [r.name for r in either.rows("models")] == ["n"]


def test_reading_by_several_types_and_a_limit(store: SqliteStore) -> None:
    store.append("job-a", [queued("a"), J.JobStarted(job_id="a", pid=1, slot="cpu0", log_path="l"),
                           J.JobCancelRequested(job_id="a")])
    store.append("job-b", [queued("b")])
    got = store.read(types=["job-started", "job-cancel-requested"])
    assert [e.type for e in got] == ["job-started", "job-cancel-requested"]
    assert [e.position for e in store.read(types=["job-queued"], after=1)] == [4]
    assert [e.position for e in store.read(limit=2)] == [1, 2]
    assert store.stream_version("job-a") == 3 and store.stream_version("job-nobody") == 0
    assert store.projection_position("no-such-projection") == 0
    assert store.projection_position("jobs") == 4


def test_sqlite_errors_become_tunelog_errors_naming_what_was_being_done(store: SqliteStore) -> None:
    store.append("job-a", [queued("a")])
    store.conn.execute("DROP TABLE jobs")
    with pytest.raises(TunelogError, match="^reading jobs: no such table: jobs$"):
        store.get("jobs", "a")
    store.conn.execute("ALTER TABLE events RENAME TO gone")
    with pytest.raises(TunelogError, match="^reading events: no such table: events$"):
        store.read()


def test_time_travel_refusals_name_the_field(tmp_path: Path, store: SqliteStore) -> None:
    store.append("job-a", [queued("a")])
    with pytest.raises(ValidationError) as unknown:
        state_at(store.path, 1, tmp_path, tables=["nope", "jobs"])
    assert unknown.value.message == "unknown projection table"
    known = ", ".join(f.table for f in all_folds())
    assert unknown.value.problems == [{"where": "tables", "message": f"no table 'nope' (tables: {known})"}]
    with pytest.raises(ValidationError) as before:
        state_at(store.path, -1, tmp_path)
    assert before.value.message == "cannot travel to that position"
    with pytest.raises(ValidationError, match=f"^no event log at {tmp_path / 'missing.sqlite'}$"):
        copy_prefix(tmp_path / "missing.sqlite", tmp_path / "copy.sqlite", 0)


def test_the_store_package_imports_its_names_lazily() -> None:
    from tunelog.store import artifacts, base, memory, sqlite

    assert tunelog.store.SqliteStore is sqlite.SqliteStore and tunelog.store.MemoryStore is memory.MemoryStore
    assert tunelog.store.ArtifactStore is artifacts.ArtifactStore and tunelog.store.EventStore is base.EventStore
    with pytest.raises(AttributeError, match="^module 'tunelog.store' has no attribute 'Nope'$"):
        tunelog.store.Nope  # noqa: B018


# -- store/sqlite.py survivors of 2026-12-06 ----------------------------------------------------

def test_a_file_that_is_not_a_log_or_a_folder_that_is_missing_is_named_when_opening(tmp_path: Path) -> None:
    garbage = tmp_path / "log.sqlite"
    garbage.write_bytes(b"not a database, a text someone saved here by mistake" * 20)
    with pytest.raises(TunelogError) as damaged:
        SqliteStore(garbage)
    assert damaged.value.message == f"opening {garbage}: the database is damaged (file is not a database)"
    missing = tmp_path / "nowhere" / "log.sqlite"
    with pytest.raises(TunelogError) as unopened:
        SqliteStore(missing)
    assert unopened.value.message == f"opening {missing}: unable to open database file"
    assert unopened.value.hint == "check that the folder exists and that you may write to it"
    assert not missing.parent.exists()


def test_a_stale_expected_version_says_what_to_do(either: EventStore) -> None:
    either.append("job-a", [queued("a")])
    with pytest.raises(ConflictError) as stale:
        either.append("job-a", [queued("a")], expected_version=0)
    assert (stale.value.message, stale.value.hint) == ("stream 'job-a' is at version 1, not 0",
                                                       "re-read the stream and retry the command")
    assert either.stream_version("job-a") == 1


def test_the_log_is_shared_by_threads_and_each_write_is_committed_for_other_connections(tmp_path: Path) -> None:
    """The daemon calls the store from worker threads; another process (a reader, `tunectl` on a
    copy, the next daemon) sees each write once the call returns, commands included."""
    store = SqliteStore(tmp_path / "log.sqlite")
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(store.append("job-a", [queued("a")])))
    worker.start()
    worker.join()
    assert [e.position for e in done[0]] == [1]
    store.record_command(CommandRecord(command_id="c1", kind="submit", fingerprint="f", status=0, answer=""))
    store.record_command(CommandRecord(command_id="c2", kind="submit", fingerprint="f", status=0, answer=""))
    store.forget_command("c1")
    with sqlite3.connect(tmp_path / "log.sqlite") as other:
        assert other.execute("SELECT command_id FROM commands").fetchall() == [("c2",)]
        assert other.execute("SELECT count(*) FROM events").fetchone() == (1,)
    store.append("job-b", [queued("b")])  # no transaction was left open by the statements above
    store.close()


def test_a_count_of_a_field_that_is_not_kept_counted_follows_appends(either: EventStore) -> None:
    """`count_by` keeps counters only for a fold's `counted` fields; any other indexed field is
    counted again each time, so it never goes stale."""
    either.append("job-a", [queued("a")])
    assert either.count_by("jobs", "queued_position") == {1: 1}
    either.append("job-b", [queued("b")])
    assert either.count_by("jobs", "queued_position") == {1: 1, 2: 1}


def test_select_with_several_conditions_joins_them_all(either: EventStore) -> None:
    either.append("job-a", [queued("a")])
    either.append("job-b", [queued("b"), J.JobCancelRequested(job_id="b")])
    either.append("job-c", [queued("c")])
    got = either.select("jobs", order="queued_position", where={"state": "queued", "queued_position": 4})
    assert [r.job_id for r in got] == ["c"]
    assert either.select("jobs", order="queued_position", where={"state": "running", "queued_position": 4}) == []
    assert [r.job_id for r in either.select("jobs", order="queued_position", where={"state": "queued"},
                                            after=1)] == ["b", "c"]


class _Noted(Event, frozen=True, tag="test-noted"):
    """A test event two folds read; the first touches a row only for some."""

    key: str
    """The row it touches."""
    first: bool
    """Whether the first fold touches a row for it."""


def _count(row: dict[str, Any] | None, env: Stamped) -> dict[str, Any]:
    return {"n": (row or {"n": 0})["n"] + 1}


_TWO_FOLDS = (Fold("first", dict, frozenset({"test-noted"}),
                   lambda env: env.event.key if getattr(env.event, "first", False) else None, _count),
              Fold("second", dict, frozenset({"test-noted"}), lambda env: getattr(env.event, "key", None), _count))


def test_an_event_no_fold_reads_and_one_a_fold_skips_still_reach_the_other_folds(tmp_path: Path) -> None:
    """A fold with no row for an event (key None) must not keep the folds after it from folding it;
    an event of a type no fold reads is kept and folds nothing. Live and rebuilt agree."""
    store = SqliteStore(tmp_path / "log.sqlite", folds=_TWO_FOLDS)
    store.append("s", [_Noted(key="x", first=False), queued("a"), _Noted(key="x", first=True)])
    live = ([dict(r) for r in store.rows("first")], [dict(r) for r in store.rows("second")])
    assert live == ([{"n": 1}], [{"n": 2}])
    assert store.rebuild() == 2
    assert ([dict(r) for r in store.rows("first")], [dict(r) for r in store.rows("second")]) == live
    assert [e.type for e in store.read()] == ["test-noted", "job-queued", "test-noted"]
    store.close()


def test_every_sqlite_failure_names_the_call_it_broke(store: SqliteStore) -> None:
    """Each store call says what it was doing when SQLite failed (here: its table is gone)."""
    store.append("job-a", [queued("a")])
    record = CommandRecord(command_id="c", kind="submit", fingerprint="f", status=0, answer="")

    def fails(call: Any, message: str) -> None:
        with pytest.raises(TunelogError) as failed:
            call()
        assert failed.value.message == message

    store.conn.execute("DROP TABLE commands")
    fails(lambda: store.command("c"), "looking up a command: no such table: commands")
    fails(lambda: store.record_command(record), "recording a command: no such table: commands")
    fails(lambda: store.forget_command("c"), "forgetting a command: no such table: commands")
    store.conn.execute("DROP TABLE projection_positions")
    fails(lambda: store.projection_position("jobs"), "reading the position of jobs: no such table: projection_positions")
    store.conn.execute("DROP TABLE jobs")
    fails(lambda: store.rows("jobs"), "reading jobs: no such table: jobs")
    fails(lambda: store.select("jobs", order="queued_position"), "reading jobs: no such table: jobs")
    fails(lambda: store.with_prefix("jobs", "a", limit=3), "reading jobs: no such table: jobs")
    fails(lambda: store.count_by("jobs", "state"), "counting jobs: no such table: jobs")
    store.conn.execute("ALTER TABLE events RENAME TO gone")
    fails(lambda: store.stream_version("job-a"), "reading the version of 'job-a': no such table: events")
    fails(lambda: store.append("job-a", [queued("b")]), "appending to 'job-a': no such table: events")
    fails(store.rebuild, "rebuilding projections: no such table: events")
