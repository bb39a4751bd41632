"""Schema of the log database and its migrations (sqlite-utils, tracked in PRAGMA user_version)."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from tunelog.events.state import Fold


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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1]
"""Applied in order; the database's user_version counts how many have run. Append only."""


def migrate(db: sqlite_utils.Database, folds: tuple[Fold, ...]) -> None:
    """Bring the schema up to date and make sure every projection has its table."""
    current = db.execute("PRAGMA user_version").fetchone()[0]
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
