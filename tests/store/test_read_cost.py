"""Reading one stream's events of some types costs what that stream holds, not what the log holds
(counted in SQLite virtual-machine steps, so the figure does not depend on the machine)."""

from __future__ import annotations

from pathlib import Path

from tunelog.events import jobs as J
from tunelog.store.sqlite import SqliteStore


def fill(store: SqliteStore, *, others: int) -> None:
    for i in range(others):
        store.append(f"job-o{i}", [J.JobMetrics(job_id=f"o{i}", points=[{"step": s}]) for s in range(200)])
    store.append("job-t", [J.JobMetrics(job_id="t", points=[{"step": s}]) for s in range(5)])


def steps_to_read(store: SqliteStore) -> int:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store.conn.set_progress_handler(count, 100)
    try:
        got = store.read(stream="job-t", types=["job-metrics"])
    finally:
        store.conn.set_progress_handler(None, 100)
    assert [e.event.points for e in got] == [[{"step": s}] for s in range(5)]  # type: ignore[attr-defined]
    return steps


def test_reading_a_streams_metrics_does_not_walk_every_metric_in_the_log(tmp_path: Path) -> None:
    alone, crowded = SqliteStore(tmp_path / "alone.sqlite"), SqliteStore(tmp_path / "crowded.sqlite")
    fill(alone, others=0)
    fill(crowded, others=50)  # 10,000 metrics of other jobs
    assert steps_to_read(crowded) <= 2 * steps_to_read(alone) + 2
    alone.close()
    crowded.close()


def test_a_key_prefix_read_costs_its_matches_not_the_table(tmp_path: Path) -> None:
    def steps(store: SqliteStore) -> int:
        count = [0]
        store.conn.set_progress_handler(lambda: count.__setitem__(0, count[0] + 1) or 0, 100)
        try:
            assert [r.job_id for r in store.with_prefix("jobs", "t", limit=11)] == ["t0", "t1"]
        finally:
            store.conn.set_progress_handler(None, 100)
        return count[0]

    small, large = SqliteStore(tmp_path / "small.sqlite"), SqliteStore(tmp_path / "large.sqlite")
    for store, others in ((small, 0), (large, 2000)):
        store.append("job-t0", [J.JobQueued(job_id="t0", plugin="p", operation="o", params={}, code_hash="h",
                                            plugin_version="1")])
        store.append("job-t1", [J.JobQueued(job_id="t1", plugin="p", operation="o", params={}, code_hash="h",
                                            plugin_version="1")])
        store.append("job-u", [J.JobQueued(job_id=f"u{i:05d}", plugin="p", operation="o", params={}, code_hash="h",
                                           plugin_version="1") for i in range(others)])
    assert steps(large) <= 2 * steps(small) + 2
    small.close()
    large.close()
