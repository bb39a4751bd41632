"""Event-store benchmarks, each printed as a ratio against a baseline measured in the same run.

    python bench/store_bench.py [--events 1000000]

1. Batched append (100 events per commit) through SqliteStore ÷ raw sqlite3 executemany of the
   same rows into the same schema (goal ≥ 0.5).
2. Single appends: events/s through SqliteStore (and raw, for scale).
3. Projection rebuild from N events (default 1 M): events/s (goal ≥ 500 k/s).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from tunelog.events.base import encode_payload
from tunelog.events.jobs import JobMetrics, JobProgress, JobQueued
from tunelog.store.sqlite import _INSERT, SqliteStore


def metric(job: str, step: int) -> JobMetrics:
    return JobMetrics(job_id=job, points=[{"step": step, "loss": 1.0 / (step + 1), "lr": 1e-4}])


def bench_batches(root: Path, *, batches: int, size: int = 100) -> tuple[float, float]:
    """(store events/s, raw events/s) for batches of `size` metric events on one stream."""
    store = SqliteStore(root / "store.sqlite")
    store.append("job-a", [JobQueued(job_id="a", plugin="p", operation="o", params={}, code_hash="h",
                                     plugin_version="1")])
    events = [metric("a", i) for i in range(size)]
    t0 = time.perf_counter()
    for _ in range(batches):
        store.append("job-a", events)
    ours = batches * size / (time.perf_counter() - t0)
    store.close()

    raw = SqliteStore(root / "raw.sqlite")  # same schema, then bypass the store entirely
    raw.close()
    conn = sqlite3.connect(root / "raw.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    payloads = [encode_payload(e).decode() for e in events]
    pos, version = 0, 0
    t0 = time.perf_counter()
    for _ in range(batches):
        rows = []
        now = time.time()
        for p in payloads:
            pos += 1
            version += 1
            rows.append((pos, "job-a", version, "job-metrics", 1, now, p, None, None, None))
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, rows)
        conn.execute("COMMIT")
    theirs = batches * size / (time.perf_counter() - t0)
    conn.close()
    return ours, theirs


def bench_single(root: Path, *, n: int) -> float:
    store = SqliteStore(root / "single.sqlite")
    store.append("job-a", [JobQueued(job_id="a", plugin="p", operation="o", params={}, code_hash="h",
                                     plugin_version="1")])
    t0 = time.perf_counter()
    for i in range(n):
        store.append("job-a", [JobProgress(job_id="a", step=i, total=n)])
    rate = n / (time.perf_counter() - t0)
    store.close()
    return rate


def bench_rebuild(root: Path, *, n: int) -> tuple[float, int]:
    """Fill a log with `n` events (1 job per 1,000 metric batches) directly, then rebuild."""
    path = root / "rebuild.sqlite"
    SqliteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    rows = []
    versions: dict[str, int] = {}
    for pos in range(1, n + 1):
        job = f"j{(pos - 1) // 1000}"
        stream = f"job-{job}"
        v = versions[stream] = versions.get(stream, 0) + 1
        ev = (JobQueued(job_id=job, plugin="p", operation="o", params={"lr": 1e-4}, code_hash="h",
                        plugin_version="1") if v == 1 else metric(job, v))
        rows.append((pos, stream, v, ev.tag, 1, 0.0, encode_payload(ev).decode(), None, None, None))
        if len(rows) == 50_000:
            conn.executemany(_INSERT, rows)
            rows.clear()
    conn.executemany(_INSERT, rows)
    conn.execute("COMMIT")
    conn.close()
    store = SqliteStore(path)
    t0 = time.perf_counter()
    folded = store.rebuild()
    seconds = time.perf_counter() - t0
    store.close()
    return folded / seconds, folded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the rebuild benchmark")
    ap.add_argument("--batches", type=int, default=300, help="batches of 100 in the append benchmark")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        ratios, ours_all, raw_all = [], [], []
        for i in range(args.repeat):
            sub = Path(d) / f"b{i}"
            sub.mkdir()
            ours, raw = bench_batches(sub, batches=args.batches)
            ratios.append(ours / raw)
            ours_all.append(ours)
            raw_all.append(raw)
        print(f"append, batches of 100: store {statistics.median(ours_all):,.0f} ev/s, "
              f"raw executemany {statistics.median(raw_all):,.0f} ev/s, "
              f"ratio {statistics.median(ratios):.2f} (goal >= 0.5)")
        print(f"append, single events: store {bench_single(Path(d), n=3000):,.0f} ev/s")
        rate, folded = bench_rebuild(Path(d), n=args.events)
        print(f"rebuild: {folded:,} events at {rate:,.0f} ev/s (goal >= 500,000)")


if __name__ == "__main__":
    main()
