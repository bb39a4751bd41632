"""Schema of the log database and its migrations (sqlite-utils, tracked in PRAGMA user_version)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from tunelog.events.state import Fold

if TYPE_CHECKING:
    import sqlite_utils


def _v1(db: sqlite_utils.Database) -> None:
    db["events"].create(  # type: ignore[union-attr]
        {"position": int, "stream": str, "version": int, "type": str, "schema_version": int, "time": float,
         "payload": str, "command_id": str, "causation_id": str, "correlation_id": str},
        pk="position", not_null={"stream", "version", "type", "schema_version", "time", "payload"},
    )
    db["events"].create_index(["stream", "version"], unique=True)  # type: ignore[union-attr]
    db["events"].create_index(["command_id"])  # type: ignore[union-attr]
    db["events"].create_index(["type"])  # type: ignore[union-attr]
    db["projection_positions"].create({"name": str, "position": int}, pk="name")  # type: ignore[union-attr]


def _v2(db: sqlite_utils.Database) -> None:
    """The answers of commands with an idempotency key (not events: a retry reads them, no fold does)."""
    db["commands"].create(  # type: ignore[union-attr]
        {"command_id": str, "kind": str, "fingerprint": str, "status": int, "answer": bytes, "time": float},
        pk="command_id", not_null={"kind", "fingerprint", "status", "answer", "time"},
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2]
"""Applied in order; the database's user_version counts how many have run. Append only."""


def migrate(conn: sqlite3.Connection, folds: tuple[Fold, ...]) -> None:
    """Bring the schema up to date and make sure every projection has its table.

    sqlite-utils is imported only when there is something to do: it pulls in pandas, which the
    daemon and the workers should not carry for a schema that is already current.
    """
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if current == len(MIGRATIONS) and all(f.table in tables for f in folds):
        return
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    for number, step in enumerate(MIGRATIONS[current:], start=current + 1):
        with db.conn:
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
    for fold in folds:
        if not db[fold.table].exists():
            with db.conn:
                db[fold.table].create({"key": str, "data": str}, pk="key")  # type: ignore[union-attr]
                db["projection_positions"].insert({"name": fold.table, "position": 0},  # type: ignore[union-attr]
                                                  replace=True)
