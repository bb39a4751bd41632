"""Listings and counts over projections: equal on both stores, and served by an index on SQLite
(so they cost what they return, not the history), with a schema made without sqlite-utils."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelog.events.errors import ConflictError
from tunelog.events.jobs import JobCancelled, JobQueued, JobStarted, JobSucceeded
from tunelog.store import MemoryStore, SqliteStore
from tunelog.store.base import EventStore
from tunelog.store.schema import field_sql


def queued(job_id: str) -> JobQueued:
    return JobQueued(job_id=job_id, plugin="p", operation="op", params={}, code_hash="h", plugin_version="1")


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    s: EventStore = SqliteStore(tmp_path / "log.sqlite") if request.param == "sqlite" else MemoryStore()
    for i in range(6):  # ids sort against queue order: listings must follow the queue, not the key
        s.append(f"job-{9 - i}", [queued(str(9 - i))])
    s.append("job-8", [JobStarted(job_id="8", pid=1, slot="cpu0", log_path="l")])
    s.append("job-7", [JobCancelled(job_id="7", forced=False)])
    yield s
    s.close()


def test_select_filters_orders_and_pages_by_a_field(store: EventStore) -> None:
    ids = [r.job_id for r in store.select("jobs", order="queued_position")]
    assert ids == ["9", "8", "7", "6", "5", "4"]
    assert [r.job_id for r in store.select("jobs", order="queued_position", where={"state": "queued"})] == \
        ["9", "6", "5", "4"]
    first = store.select("jobs", order="queued_position", limit=2)
    rest = store.select("jobs", order="queued_position", after=first[-1].queued_position, limit=10)
    assert [r.job_id for r in first + rest] == ids
    newest = store.select("jobs", order="queued_position", descending=True, limit=2)
    older = store.select("jobs", order="queued_position", descending=True, after=newest[-1].queued_position)
    assert [r.job_id for r in newest + older] == ids[::-1]


def test_count_by_counts_each_value(store: EventStore) -> None:
    assert store.count_by("jobs", "state") == {"queued": 4, "running": 1, "cancelled": 1}
    assert store.count_by("plugins", "status") == {}


def test_counts_follow_appends_refusals_and_rebuilds(store: EventStore) -> None:
    def recount() -> dict[str, int]:
        return dict(Counter(r.state for r in store.rows("jobs")))

    assert store.count_by("jobs", "state") == recount()
    store.append("job-9", [JobStarted(job_id="9", pid=2, slot="cpu0", log_path="l"),
                           JobSucceeded(job_id="9", outputs={}, duration_s=1.0)])
    store.append("job-new", [queued("new")])
    with pytest.raises(ConflictError):  # refused: counts nothing
        store.append("job-6", [JobCancelled(job_id="6", forced=False)], expected_version=9)
    assert store.count_by("jobs", "state") == recount() == {"queued": 4, "running": 1, "cancelled": 1,
                                                            "succeeded": 1}
    store.rebuild()
    store.append("job-6", [JobCancelled(job_id="6", forced=False)])
    assert store.count_by("jobs", "state") == recount()


def test_a_field_the_rows_lack_is_refused(store: EventStore) -> None:
    with pytest.raises(ValueError, match="no field 'nope'"):
        store.select("jobs", order="nope")
    with pytest.raises(ValueError, match="no field 'x; DROP TABLE events'"):
        store.count_by("jobs", "x; DROP TABLE events")


def test_listings_and_counts_read_an_index_not_the_table(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "log.sqlite").close()
    conn = sqlite3.connect(tmp_path / "log.sqlite")
    state, position = field_sql("state"), field_sql("queued_position")
    for sql in (f"SELECT data FROM jobs WHERE {state} = 'queued' ORDER BY {position}",
                f"SELECT data FROM jobs WHERE {position} < 5 ORDER BY {position} DESC LIMIT 3",
                f"SELECT {state}, count(*) FROM jobs GROUP BY {state}"):
        plan = " ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (sql, plan)


def test_creating_the_schema_imports_neither_sqlite_utils_nor_pandas(tmp_path: Path) -> None:
    code = (f"import sys; from tunelog.store import SqliteStore; SqliteStore({str(tmp_path / 'new.sqlite')!r}).close(); "
            "print(sorted(m for m in ('pandas', 'numpy', 'sqlite_utils') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_log_whose_schema_sqlite_utils_made_opens_and_gains_the_indexes(tmp_path: Path) -> None:
    import sqlite_utils

    old = sqlite_utils.Database(tmp_path / "old.sqlite")  # what version 1 was before: made by sqlite-utils
    old["events"].create(  # type: ignore[union-attr]
        {"position": int, "stream": str, "version": int, "type": str, "schema_version": int, "time": float,
         "payload": str, "command_id": str, "causation_id": str, "correlation_id": str},
        pk="position", not_null={"stream", "version", "type", "schema_version", "time", "payload"})
    old["events"].create_index(["stream", "version"], unique=True)  # type: ignore[union-attr]
    old["events"].create_index(["command_id"])  # type: ignore[union-attr]
    old["events"].create_index(["type"])  # type: ignore[union-attr]
    old["projection_positions"].create({"name": str, "position": int}, pk="name")  # type: ignore[union-attr]
    old.execute("PRAGMA user_version = 1")
    old.conn.commit()
    old.close()
    SqliteStore(tmp_path / "new.sqlite").close()

    def schema(name: str) -> dict[str, str]:
        with sqlite3.connect(tmp_path / name) as conn:
            return {n: " ".join(s.split()) for n, s in conn.execute("SELECT name, sql FROM sqlite_master")
                    if s is not None}

    store = SqliteStore(tmp_path / "old.sqlite")
    store.append("job-a", [queued("a")])
    assert [r.job_id for r in store.select("jobs", order="queued_position", where={"state": "queued"})] == ["a"]
    store.close()
    assert schema("old.sqlite") == schema("new.sqlite")
