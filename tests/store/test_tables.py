"""Typed reads of the projections, over both store implementations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tunelog.events.jobs import JobQueued, JobStarted
from tunelog.events.state import JobRow, all_folds
from tunelog.store import MemoryStore, SqliteStore
from tunelog.store.base import EventStore
from tunelog.store.tables import Table, Tables


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    s: EventStore = SqliteStore(tmp_path / "log.sqlite") if request.param == "sqlite" else MemoryStore()
    yield s
    s.close()


def test_every_projection_has_one_table_with_its_folds_row_type(store: EventStore) -> None:
    tables = Tables(store)
    declared = {name: t for name, t in vars(tables).items() if isinstance(t, Table)}
    assert sorted(declared) == sorted(f.table for f in all_folds())
    for fold in all_folds():
        assert (declared[fold.table].name, declared[fold.table].row_type) == (fold.table, fold.row_type)


def test_get_and_all_read_the_rows_the_store_holds(store: EventStore) -> None:
    for job_id in ("b", "a"):
        store.append(f"job-{job_id}", [JobQueued(job_id=job_id, plugin="p", operation="op", params={},
                                                 code_hash="h", plugin_version="1")])
    store.append("job-a", [JobStarted(job_id="a", pid=1, slot="cpu0", log_path="l")])
    tables = Tables(store)
    a = tables.jobs.get("a")
    assert isinstance(a, JobRow) and a.state == "running"
    assert tables.jobs.get("missing") is None and tables.runs.get("a") is None
    assert [r.job_id for r in tables.jobs.all()] == ["a", "b"]
    assert [r.job_id for r in tables.jobs.select(order="queued_position", where={"state": "queued"})] == ["b"]
    assert tables.jobs.count_by("state") == {"queued": 1, "running": 1}
    assert tables.models.all() == []


def test_every_table_reads_its_own_store(store: EventStore) -> None:
    tables = Tables(store)
    for fold in all_folds():
        assert getattr(tables, fold.table).store is store, fold.table


def test_select_pages_by_after_and_limit_in_either_order_and_prefixes_match_keys(store: EventStore) -> None:
    for job_id in ("c", "a", "b", "ab"):
        store.append(f"job-{job_id}", [JobQueued(job_id=job_id, plugin="p", operation="op", params={},
                                                 code_hash="h", plugin_version="1")])
    jobs = Tables(store).jobs
    order = [r.job_id for r in jobs.select(order="queued_position")]
    assert order == ["c", "a", "b", "ab"]  # ascending unless asked
    first = jobs.select(order="queued_position", limit=2)
    assert [r.job_id for r in first] == ["c", "a"]
    after = jobs.select(order="queued_position", after=first[-1].queued_position, limit=1)
    assert [r.job_id for r in after] == ["b"]
    assert [r.job_id for r in jobs.select(order="queued_position", descending=True, limit=1)] == ["ab"]
    assert [r.job_id for r in jobs.with_prefix("a", limit=5)] == ["a", "ab"]
    assert [r.job_id for r in jobs.with_prefix("a", limit=1)] == ["a"]
