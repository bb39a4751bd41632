"""Time travel: the state rebuilt at position N equals the live projections as they were at N."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store.test_rebuild_property import histories, stream_of
from tunelog.events import jobs as J
from tunelog.events import plugins as P
from tunelog.events import runs as R
from tunelog.events.errors import ValidationError
from tunelog.events.state import all_folds
from tunelog.store import SqliteStore
from tunelog.store.timetravel import state_at

TABLES = [f.table for f in all_folds()]


def snapshot(store: SqliteStore) -> dict[str, list[dict[str, Any]]]:
    return {t: [msgspec.to_builtins(r) for r in store.rows(t)] for t in TABLES}


def queued(job_id: str, run_id: str | None = None) -> J.JobQueued:
    return J.JobQueued(job_id=job_id, plugin="p", operation="op", params={"n": 1}, code_hash="h",
                       plugin_version="1", run_id=run_id)


def test_state_at_equals_the_live_snapshot_taken_at_that_position(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.sqlite")
    snaps = {0: snapshot(store)}
    store.append("plugin-p", [P.PluginLoaded(name="p", version="1", code_hash="h", path="/x", source="user",
                                                manifest={})])
    store.append("run-r1", [R.RunSubmitted(run_id="r1", graph={"nodes": {"a": {}}}, order=["a"], code={})])
    store.append("job-j1", [queued("j1", "r1")])
    store.append("run-r1", [R.NodeQueued(run_id="r1", node="a", job_id="j1", cache_key="k", inputs={})])
    snaps[store.head()] = snapshot(store)
    store.append("job-j1", [J.JobStarted(job_id="j1", pid=1, slot="cpu0", log_path="l"),
                            J.JobMetrics(job_id="j1", points=[{"step": 1, "loss": 0.5}])])
    snaps[store.head()] = snapshot(store)
    # Later events change rows that existed at N and add new ones; N's state must not see them.
    store.append("job-j1", [J.JobSucceeded(job_id="j1", outputs={"x": 1}, duration_s=1.0)])
    store.append("run-r1", [R.NodeCompleted(run_id="r1", node="a", job_id="j1", cache_key="k", outputs={"x": 1}),
                            R.RunFinished(run_id="r1", state="succeeded")])
    store.append("plugin-p", [P.PluginRemoved(name="p", path="/x")])
    store.append("model-m", [R.ModelAdded(name="m", ref="/m")])
    snaps[store.head()] = snapshot(store)
    for position, expected in snaps.items():
        assert state_at(store.path, position, tmp_path) == expected, position
    assert state_at(store.path, 4, tmp_path, tables=["runs"]) == {"runs": snaps[4]["runs"]}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("state-at-")] == []
    store.close()


def test_positions_outside_the_log_and_unknown_tables_are_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.sqlite")
    store.append("job-a", [queued("a")])
    with pytest.raises(ValidationError) as bad:
        state_at(store.path, 2, tmp_path)
    assert bad.value.problems == [{"where": "at", "message": "must be between 0 and 1 (the log's last position)"}]
    with pytest.raises(ValidationError, match="unknown projection table"):
        state_at(store.path, 1, tmp_path, tables=["nope"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("state-at-")] == []
    store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.data())
def test_any_history_any_position(history: list[list[object]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SqliteStore(Path(d) / "log.sqlite")
        cut = data.draw(st.integers(0, len(history)))
        for batch in history[:cut]:
            store.append(stream_of(batch[0]), batch)  # type: ignore[arg-type]
        position, expected = store.head(), snapshot(store)
        for batch in history[cut:]:
            store.append(stream_of(batch[0]), batch)  # type: ignore[arg-type]
        assert state_at(store.path, position, d) == expected
        store.close()
