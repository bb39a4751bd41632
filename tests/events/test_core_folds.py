"""The daemon and plugin projections as pure folds over plain lists of events: every field of the
row they make, from the event and its envelope's time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tunelog.events.base import Event, StampedEvent
from tunelog.events.plugins import PluginFailed, PluginLoaded, PluginReloaded, PluginRemoved
from tunelog.events.state import DaemonRow, PluginRow, evolve_daemon, evolve_plugin
from tunelog.events.system import DaemonStarted, DaemonStopped


def fold(evolve: Callable[[Any, StampedEvent], Any], events: Iterable[tuple[float, Event]]) -> list[Any]:
    """Every row the fold passes through, one per event (time = the envelope's time)."""
    row, rows = None, []
    for position, (time, event) in enumerate(events, start=1):
        row = evolve(row, StampedEvent(position=position, time=time, event=event))
        rows.append(row)
    return rows


def test_the_daemon_row_counts_starts_and_keeps_the_last_start_and_stop() -> None:
    first = DaemonStarted(pid=11, version="1.0", data_dir="/data", socket="/run/a.sock")
    second = DaemonStarted(pid=22, version="1.1", data_dir="/data2", socket="/run/b.sock")
    running, stopped, again = fold(evolve_daemon, [(10.0, first), (20.0, DaemonStopped(pid=11, reason="signal")),
                                                   (30.0, second)])
    assert running == DaemonRow(pid=11, version="1.0", socket="/run/a.sock", data_dir="/data", running=True,
                                starts=1, started_at=10.0, stopped_at=None)
    assert stopped == DaemonRow(pid=11, version="1.0", socket="/run/a.sock", data_dir="/data", running=False,
                                starts=1, started_at=10.0, stopped_at=20.0)
    assert again == DaemonRow(pid=22, version="1.1", socket="/run/b.sock", data_dir="/data2", running=True,
                              starts=2, started_at=30.0, stopped_at=None)
    assert evolve_daemon(again, StampedEvent(position=9, time=40.0, event=PluginRemoved(name="x", path="/p"))) == again


def loaded(version: str, code_hash: str, *, source: str = "user") -> PluginLoaded:
    return PluginLoaded(name="alpha", version=version, code_hash=code_hash, path="/plugins/alpha", source=source,
                        manifest={"name": "alpha", "version": version})


def test_the_plugin_row_follows_loads_failures_and_removal() -> None:
    reloaded = PluginReloaded(name="alpha", version="0.2", code_hash="h2", previous_hash="h1", path="/moved/alpha",
                              source="builtin", manifest={"name": "alpha", "version": "0.2"})
    failed = PluginFailed(name="alpha", path="/third/alpha", code_hash="h3", error="SyntaxError",
                          problems=[{"where": "backend.py", "message": "bad"}], traceback="Traceback ...")
    first, second, broken, gone = fold(evolve_plugin, [(1.0, loaded("0.1", "h1")), (2.0, reloaded), (3.0, failed),
                                                       (4.0, PluginRemoved(name="alpha", path="/third/alpha"))])
    assert first == PluginRow(key="alpha", name="alpha", status="loaded", path="/plugins/alpha", source="user",
                              version="0.1", code_hash="h1", manifest={"name": "alpha", "version": "0.1"},
                              loads=1, updated_at=1.0)
    assert second == PluginRow(key="alpha", name="alpha", status="loaded", path="/moved/alpha", source="builtin",
                               version="0.2", code_hash="h2", manifest={"name": "alpha", "version": "0.2"},
                               loads=2, updated_at=2.0)
    # a failure keeps the last good code registered, and says what failed
    assert broken == PluginRow(key="alpha", name="alpha", status="failed", path="/third/alpha", source="builtin",
                               version="0.2", code_hash="h2", failed_hash="h3", error="SyntaxError",
                               traceback="Traceback ...", problems=[{"where": "backend.py", "message": "bad"}],
                               manifest={"name": "alpha", "version": "0.2"}, loads=2, updated_at=3.0)
    assert gone == PluginRow(**{**{f: getattr(broken, f) for f in broken.__struct_fields__},
                                "status": "removed", "updated_at": 4.0})


def test_a_plugin_that_never_loaded_fails_with_a_row_of_its_own_and_a_removal_of_nothing_is_nothing() -> None:
    failed = PluginFailed(name="beta", path="/plugins/beta", code_hash="h9", error="no manifest")
    [row] = fold(evolve_plugin, [(5.0, failed)])
    assert row == PluginRow(key="beta", name="beta", status="failed", path="/plugins/beta", failed_hash="h9",
                            error="no manifest", updated_at=5.0)
    assert fold(evolve_plugin, [(6.0, PluginRemoved(name="ghost", path="/nowhere"))]) == [None]
    assert fold(evolve_plugin, [(1.0, loaded("0.1", "h1")), (2.0, loaded("0.1", "h1"))])[1].loads == 2
