"""The log database's schema on real SQLite files: a new log is at the latest version with a table
per projection, an older log is upgraded in place keeping its events, a failed step leaves the
log as it was, and the projections' indexes keep the names older logs carry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from tunelog.events.plugins import PluginRemoved
from tunelog.events.state import all_folds
from tunelog.store.schema import _V1, MIGRATIONS, index_name, migrate
from tunelog.store.sqlite import SqliteStore


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def master(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return sorted(conn.execute("SELECT type, name, coalesce(sql, '') FROM sqlite_master").fetchall())


def version_1_log(path: Path) -> sqlite3.Connection:
    """A log as the first release left it: version 1's tables and one event."""
    conn = connect(path)
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)
    event = PluginRemoved(name="x", path="/nowhere")
    conn.execute("INSERT INTO events (stream, version, type, schema_version, time, payload) "
                 "VALUES ('plugin-x', 1, 'plugin-removed', ?, 1.0, ?)",
                 (event.schema_version, msgspec.json.encode(event).decode()))
    conn.execute("PRAGMA user_version = 1")
    return conn


def test_a_new_log_is_at_the_latest_version_with_a_table_and_position_per_projection(tmp_path: Path) -> None:
    conn = connect(tmp_path / "log.sqlite")
    migrate(conn, all_folds())
    assert version(conn) == len(MIGRATIONS) == 4
    tables = {name for kind, name, _ in master(conn) if kind == "table"}
    assert {"events", "projection_positions", "commands"} | {f.table for f in all_folds()} == tables
    assert dict(conn.execute("SELECT name, position FROM projection_positions")) == {f.table: 0 for f in all_folds()}

    before = master(conn)
    migrate(conn, all_folds())  # opening it again changes nothing
    assert master(conn) == before and version(conn) == 4


def test_a_version_1_log_is_upgraded_in_place_keeping_its_events(tmp_path: Path) -> None:
    version_1_log(tmp_path / "log.sqlite").close()
    store = SqliteStore(tmp_path / "log.sqlite")
    try:
        assert [e.event for e in store.read()] == [PluginRemoved(name="x", path="/nowhere")] and store.head() == 1
        assert version(store.conn) == 4
        assert store.command("nothing-yet") is None  # the commands table exists
    finally:
        store.close()


def test_a_failed_step_leaves_the_log_at_its_version_and_names_nothing_half_made(tmp_path: Path) -> None:
    conn = version_1_log(tmp_path / "log.sqlite")
    conn.execute('CREATE TABLE "commands" ("other" TEXT)')  # in the way of version 2's table
    before = master(conn)
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        migrate(conn, all_folds())
    assert version(conn) == 1 and master(conn) == before
    assert not conn.in_transaction  # rolled back, the connection usable
    conn.execute("DROP TABLE commands")
    migrate(conn, all_folds())
    assert version(conn) == 4


def test_projection_indexes_keep_the_names_older_logs_carry(tmp_path: Path) -> None:
    """An index is recognised by its name: a new name would index an older log a second time."""
    conn = connect(tmp_path / "log.sqlite")
    migrate(conn, all_folds())
    indexes = {name: sql for kind, name, sql in master(conn) if kind == "index" and sql}
    assert index_name("jobs", ("state", "queued_position")) == "idx_jobs_state_queued_position"
    assert indexes["idx_jobs_state_queued_position"] == (
        "CREATE INDEX \"idx_jobs_state_queued_position\" ON \"jobs\" "
        "(json_extract(data, '$.state'), json_extract(data, '$.queued_position'))")
    assert {"idx_jobs_queued_position", "idx_runs_state_submitted_position", "idx_runs_submitted_position",
            "idx_events_stream_version", "idx_events_command_id", "idx_events_type_version",
            "idx_adapters_created_position"} <= set(indexes)
    assert "idx_events_type" not in indexes  # version 3 replaced it with the (type, schema_version) index
