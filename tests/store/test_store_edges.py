"""Edges of the store the contract tests leave out: causation and correlation ids survive a read,
type filters with several types, SQLite errors become our errors naming what was being done,
time travel's refusals, and the package's lazy names. Written against surviving mutants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tunelog.store
from tunelog.events import jobs as J
from tunelog.events import runs as R
from tunelog.events.errors import TunelogError, ValidationError
from tunelog.events.state import all_folds
from tunelog.store import MemoryStore, SqliteStore
from tunelog.store.base import EventStore
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
