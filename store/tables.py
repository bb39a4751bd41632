"""Typed reads of the projections: one attribute per table, each row its msgspec struct.

`Tables(store)` wraps any EventStore (SQLite or in memory) without changing its contract:
`tables.jobs.get(job_id) -> JobRow | None` reads what `store.get("jobs", job_id)` reads, with
the row type the fold in `events.state.all_folds()` declares for that table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from tunelog.events.run_state import AdapterRow, CacheRow, ModelRow, RunRow, WorkflowRow
from tunelog.events.state import DaemonRow, JobRow, PluginRow
from tunelog.store.base import EventStore

Row = TypeVar("Row")


class Table(Generic[Row]):
    """One projection read as rows of one type."""

    def __init__(self, store: EventStore, name: str, row_type: type[Row]) -> None:
        self.store = store
        self.name = name
        self.row_type = row_type

    def get(self, key: str) -> Row | None:
        """The row under `key`, or None."""
        row: Row | None = self.store.get(self.name, key)
        return row

    def all(self) -> list[Row]:
        """Every row, ordered by key."""
        rows: list[Row] = self.store.rows(self.name)
        return rows

    def select(self, *, order: str, where: Mapping[str, Any] | None = None, after: Any = None,
               limit: int | None = None, descending: bool = False) -> list[Row]:
        """Rows whose fields equal `where`, ordered by `order`, past `after`, at most `limit`
        (`EventStore.select`)."""
        rows: list[Row] = self.store.select(self.name, order=order, where=where, after=after, limit=limit,
                                            descending=descending)
        return rows

    def with_prefix(self, prefix: str, *, limit: int) -> list[Row]:
        """At most `limit` rows whose key starts with `prefix`, ordered by key."""
        rows: list[Row] = self.store.with_prefix(self.name, prefix, limit=limit)
        return rows

    def count_by(self, field: str) -> dict[Any, int]:
        """Number of rows for each value of one field."""
        return self.store.count_by(self.name, field)


class Tables:
    """Every projection of `events.state.all_folds()`, one typed attribute each."""

    def __init__(self, store: EventStore) -> None:
        self.daemon = Table(store, "daemon", DaemonRow)
        self.plugins = Table(store, "plugins", PluginRow)
        self.jobs = Table(store, "jobs", JobRow)
        self.workflows = Table(store, "workflows", WorkflowRow)
        self.runs = Table(store, "runs", RunRow)
        self.cache = Table(store, "cache", CacheRow)
        self.adapters = Table(store, "adapters", AdapterRow)
        self.models = Table(store, "models", ModelRow)
