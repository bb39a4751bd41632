"""Time travel: the projections as they were at an earlier log position.

The log is never rewritten, so the state at position N is whatever the folds make of events
1..N. `state_at` copies that prefix into a throwaway SQLite database (schema copied from the
live one, so no migration tooling is loaded), rebuilds its projections with the same folds the
live store uses, reads every table, and deletes the copy.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from tunelog.events.errors import ValidationError
from tunelog.events.state import all_folds
from tunelog.store.sqlite import SqliteStore, sqlite_errors


def state_at(store_path: str | Path, position: int, tmp_dir: str | Path, *,
             tables: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every projection table (or those named) as plain rows, ordered by key, after event `position`."""
    tmp = Path(tempfile.mkdtemp(prefix="state-at-", dir=tmp_dir))
    try:
        db = tmp / "log.sqlite"
        copy_prefix(Path(store_path), db, position)
        store = SqliteStore(db)
        try:
            store.rebuild()
            known = [f.table for f in all_folds()]
            wanted = _wanted(known, tables)
            return {t: [msgspec.to_builtins(r) for r in store.rows(t)] for t in wanted}
        finally:
            store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _wanted(known: list[str], tables: Iterable[str] | None) -> list[str]:
    if tables is None:
        return known
    wanted = list(tables)
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise ValidationError.collect("unknown projection table", [
            ("tables", f"no table {t!r} (tables: {', '.join(known)})") for t in unknown])
    return wanted


def copy_prefix(source: Path, target: Path, position: int) -> int:
    """Copy the schema and the events up to `position` from `source` into a new database; returns
    how many events were copied. Reading does not block the daemon: the log is in WAL mode."""
    if not source.is_file():
        raise ValidationError(f"no event log at {source}")
    with sqlite_errors(f"copying the log up to position {position}"):
        conn = sqlite3.connect(target, isolation_level=None)
        try:
            conn.execute("ATTACH DATABASE ? AS src", (str(source),))
            head = int(conn.execute("SELECT coalesce(max(position), 0) FROM src.events").fetchone()[0])
            if not 0 <= position <= head:
                raise ValidationError.collect("cannot travel to that position", [
                    ("at", f"must be between 0 and {head} (the log's last position)")])
            _copy_schema(conn)
            conn.execute("BEGIN")
            copied = conn.execute("INSERT INTO main.events SELECT * FROM src.events WHERE position <= ?",
                                  (position,)).rowcount
            conn.execute("INSERT INTO main.projection_positions (name, position) "
                         "SELECT name, 0 FROM src.projection_positions")
            conn.execute("COMMIT")
            conn.execute("DETACH DATABASE src")
            return int(copied)
        finally:
            conn.close()


def _copy_schema(conn: sqlite3.Connection) -> None:
    """Tables first, then indexes, then the schema version the migrations track."""
    rows = conn.execute("SELECT sql FROM src.sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
                        "ORDER BY type = 'index', name").fetchall()
    for (sql,) in rows:
        conn.execute(sql)
    version = int(conn.execute("PRAGMA src.user_version").fetchone()[0])
    conn.execute(f"PRAGMA main.user_version = {version}")
