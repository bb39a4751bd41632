"""A rebuild reads each row's schema version only when the (type, schema_version) index says some
payload is stored at another version than today's; such payloads are upcast, the rest decoded at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, ClassVar

from tunelog.events.base import Event, Stamped, upcaster
from tunelog.events.state import Fold
from tunelog.store.sqlite import SqliteStore


class Titled(Event, frozen=True, tag="test-titled"):
    """A test event whose v1 payloads had `title`; v2 calls it `name`."""

    schema_version: ClassVar[int] = 2
    key: str
    """The row it touches."""
    name: str
    """What the row records."""


@upcaster("test-titled", 1)
def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["name"] = data.pop("title")
    return data


def evolve(row: dict[str, Any] | None, env: Stamped) -> dict[str, Any]:
    e = env.event
    assert isinstance(e, Titled)
    return {"names": [*(row or {"names": []})["names"], e.name], "last_position": env.position, "time": env.time}


FOLDS = (Fold("titled", dict, frozenset({"test-titled"}), lambda env: getattr(env.event, "key", None), evolve),)


def rows(store: SqliteStore) -> dict[str, Any]:
    return {r["names"][0]: r for r in store.rows("titled")}


def test_a_rebuild_upcasts_old_rows_and_equals_the_live_projection(tmp_path: Path) -> None:
    clock = iter(float(t) for t in range(1, 100))
    store = SqliteStore(tmp_path / "log.sqlite", folds=FOLDS, clock=lambda: next(clock))
    store.append("a", [Titled(key="a", name="a1"), Titled(key="a", name="a2")])
    live = rows(store)
    assert store.rebuild() == 2
    assert rows(store) == live  # all current: the fast path

    # An older tunelog wrote a v1 row (as a log from before the schema change holds it).
    conn = sqlite3.connect(tmp_path / "log.sqlite", isolation_level=None)
    conn.execute("INSERT INTO events (position, stream, version, type, schema_version, time, payload) "
                 "VALUES (3, 'a', 3, 'test-titled', 1, 7.25, '{\"type\":\"test-titled\",\"key\":\"a\",\"title\":\"a3\"}')")
    conn.close()
    assert store.rebuild() == 3
    assert rows(store) == {"a1": {"names": ["a1", "a2", "a3"], "last_position": 3, "time": 7.25}}
    store.close()


def test_a_type_stored_only_at_an_old_version_is_upcast_by_a_rebuild(tmp_path: Path) -> None:
    """No payload of the type is at today's version: the rebuild must still see it as stale."""
    SqliteStore(tmp_path / "log.sqlite", folds=FOLDS).close()
    conn = sqlite3.connect(tmp_path / "log.sqlite", isolation_level=None)
    conn.execute("INSERT INTO events (position, stream, version, type, schema_version, time, payload) "
                 "VALUES (1, 'b', 1, 'test-titled', 1, 3.5, '{\"type\":\"test-titled\",\"key\":\"b\",\"title\":\"b1\"}')")
    conn.close()
    store = SqliteStore(tmp_path / "log.sqlite", folds=FOLDS)
    assert store.rebuild() == 1
    assert rows(store) == {"b1": {"names": ["b1"], "last_position": 1, "time": 3.5}}
    store.close()


def test_the_type_index_holds_schema_versions(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "log.sqlite", folds=FOLDS).close()
    with sqlite3.connect(tmp_path / "log.sqlite") as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT type, schema_version, count(*) FROM events "
                            "GROUP BY type, schema_version").fetchall()
    assert "COVERING INDEX idx_events_type_version" in plan[-1][-1]
