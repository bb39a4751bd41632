"""Adapter rows carry the log position that produced them, so adapter lists page through an index;
migration 4 gives rows folded before it the same position a rebuild would (real SQLite files)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tunelog.events.merges import AdapterMerged, MergeInput
from tunelog.events.runs import NodeCompleted
from tunelog.store import SqliteStore
from tunelog.store.schema import MIGRATIONS, field_sql


def sha(i: int) -> str:
    return f"{i:02d}" * 32


def write_history(store: SqliteStore) -> None:
    """Three trained adapters (one produced twice: its first producer is its origin), one merge."""
    for i, s in enumerate([sha(3), sha(1), sha(3), sha(2)]):
        store.append(f"run-r{i}", [NodeCompleted(run_id=f"r{i}", node="train", job_id=f"j{i}", cache_key=f"c{i}",
                                                 outputs={"adapter": s, "log": sha(90 + i)},
                                                 output_types={"adapter": "adapter", "log": "file"})])
    store.append("merge-m", [AdapterMerged(merge_id="merge-m", merge_type="cat", inputs=[MergeInput(sha256=sha(1))],
                                           base_model={"ref": "m"}, output_sha256=sha(4), output_kind="adapter",
                                           exact=True)])


def test_adapters_page_by_the_position_of_the_event_that_produced_them(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.sqlite")
    write_history(store)
    rows = store.select("adapters", order="created_position")
    assert [(r.sha256, r.created_position) for r in rows] == [(sha(3), 1), (sha(1), 2), (sha(2), 4), (sha(4), 5)]
    assert [r.sha256 for r in store.select("adapters", order="created_position", after=4, descending=True,
                                           limit=1)] == [sha(1)]
    store.close()
    conn = sqlite3.connect(tmp_path / "log.sqlite")
    sql = f"SELECT data FROM adapters WHERE {field_sql('created_position')} < 9 ORDER BY {field_sql('created_position')} DESC LIMIT 50"
    plan = " ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
    assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan


def test_migration_4_gives_rows_folded_before_it_the_position_a_rebuild_gives(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.sqlite")
    write_history(store)
    store.close()
    conn = sqlite3.connect(tmp_path / "log.sqlite", isolation_level=None)  # the log as version 3 left it
    conn.execute("UPDATE adapters SET data = json_remove(data, '$.created_position')")
    conn.execute('DROP INDEX "idx_adapters_created_position"')
    conn.execute("PRAGMA user_version = 3")
    conn.close()

    store = SqliteStore(tmp_path / "log.sqlite")
    migrated = store.rows("adapters")
    assert sorted(r.created_position for r in migrated) == [1, 2, 4, 5]
    store.rebuild()
    assert store.rows("adapters") == migrated
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert [r.sha256 for r in store.select("adapters", order="created_position", descending=True, limit=2)] == [
        sha(4), sha(2)]
    store.close()
