"""Schema of the log database and its migrations (tracked in PRAGMA user_version).

The schema is plain SQL. sqlite-utils cannot be imported without importing pandas and numpy
(its `db` module registers their column types at import), which put 80 MB into the daemon the
first time it created a database. A future migration that needs what plain SQL makes awkward
(sqlite-utils' `table.transform()` rebuilding a table) may import it inside its own step: the
cost is paid once, by the daemon that upgrades.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator

from tunelog.events.state import Fold

_V1 = """
CREATE TABLE "events" (
   "position" INTEGER PRIMARY KEY,
   "stream" TEXT NOT NULL,
   "version" INTEGER NOT NULL,
   "type" TEXT NOT NULL,
   "schema_version" INTEGER NOT NULL,
   "time" REAL NOT NULL,
   "payload" TEXT NOT NULL,
   "command_id" TEXT,
   "causation_id" TEXT,
   "correlation_id" TEXT
);
CREATE UNIQUE INDEX "idx_events_stream_version" ON "events" ("stream", "version");
CREATE INDEX "idx_events_command_id" ON "events" ("command_id");
CREATE INDEX "idx_events_type" ON "events" ("type");
CREATE TABLE "projection_positions" (
   "name" TEXT PRIMARY KEY,
   "position" INTEGER
);
"""
"""The tables sqlite-utils 4 created for version 1, statement for statement (older logs have them)."""


_V2 = """
CREATE TABLE "commands" (
   "command_id" TEXT PRIMARY KEY,
   "kind" TEXT NOT NULL,
   "fingerprint" TEXT NOT NULL,
   "status" INTEGER NOT NULL,
   "answer" BLOB NOT NULL,
   "time" REAL NOT NULL
);
"""
"""The answers of commands with an idempotency key (not events: a retry reads them, no fold does),
as sqlite-utils 4 created the table."""


_V3 = """
CREATE INDEX "idx_events_type_version" ON "events" ("type", "schema_version");
DROP INDEX "idx_events_type";
"""
"""Index each event's schema version beside its type: a rebuild learns from the index alone
whether any stored payload needs upcasting, instead of fetching every row's version. Queries
by type use the new index as they used the old one."""


_V4_TYPES = ("node-completed", "adapter-merged")
"""The events that produce adapters (`events.run_state._adapter_key` says which)."""


def _v4(conn: sqlite3.Connection) -> None:
    """Adapter rows gain `created_position`, the log position of the event that produced each, so
    adapter lists page through an index (the fold's index is created after the migrations).

    Rows folded before this carry no position: each gets the first producing event's, found in one
    pass over the producing events (through the type index), as a rebuild would set it."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'adapters'").fetchone() is None:
        return  # a new log: its rows are folded with the field
    from tunelog.events.base import StampedEvent, decode_payload
    from tunelog.events.run_state import _adapter_key

    first: dict[str, int] = {}
    rows = conn.execute("SELECT position, time, type, schema_version, payload FROM events "
                        f"WHERE type IN ({', '.join('?' * len(_V4_TYPES))}) ORDER BY position", _V4_TYPES)
    for position, when, tag, version, payload in rows:
        key = _adapter_key(StampedEvent(position=position, time=when, event=decode_payload(tag, version, payload)))
        if key is not None:
            first.setdefault(key, position)
    conn.executemany("UPDATE adapters SET data = json_set(data, '$.created_position', ?) WHERE key = ?",
                     [(position, key) for key, position in first.items()])


def _v1(conn: sqlite3.Connection) -> None:
    _run(conn, _V1)


def _v2(conn: sqlite3.Connection) -> None:
    _run(conn, _V2)


def _v3(conn: sqlite3.Connection) -> None:
    _run(conn, _V3)


def _run(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4]
"""Applied in order, each in its own transaction; the database's user_version counts how many
have run. Append only."""


def field_sql(field: str) -> str:
    """The SQL expression of one top-level field of a projection row (rows are JSON in `data`).

    Queries must spell it exactly like the index does for SQLite to use the index."""
    return f"json_extract(data, '$.{field}')"


def index_name(table: str, fields: tuple[str, ...]) -> str:
    return f"idx_{table}_{'_'.join(fields)}"


def migrate(conn: sqlite3.Connection, folds: tuple[Fold, ...]) -> None:
    """Bring the schema up to date and make sure every projection has its table and indexes."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    for number, step in enumerate(MIGRATIONS[current:], start=current + 1):
        with _transaction(conn):
            step(conn)
            conn.execute(f"PRAGMA user_version = {number}")
    for fold in folds:
        statements = []
        if fold.table not in have:
            statements += [f'CREATE TABLE "{fold.table}" ("key" TEXT PRIMARY KEY, "data" TEXT)',
                           f"INSERT OR REPLACE INTO projection_positions (name, position) VALUES ('{fold.table}', 0)"]
        for fields in fold.indexes:
            if index_name(fold.table, fields) not in have:
                statements.append(f'CREATE INDEX "{index_name(fold.table, fields)}" ON "{fold.table}" '
                                  f"({', '.join(field_sql(f) for f in fields)})")
        if statements:
            with _transaction(conn):
                for sql in statements:
                    conn.execute(sql)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on a connection in autocommit mode (`isolation_level=None`)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
