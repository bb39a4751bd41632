"""Event-store benchmarks, each printed as a ratio against a baseline measured in the same run.

    python bench/store_bench.py [--events 1000000]

1. Batched append (100 events per commit) through SqliteStore ÷ raw sqlite3 executemany of the
   same rows into the same schema (goal ≥ 0.5).
2. Single appends: events/s through SqliteStore (and raw, for scale).
3. Projection rebuild from N events (default 1 M) ÷ a raw fetch + decode of the same events in
   the same run: `SELECT position, time, schema_version, payload ... ORDER BY position` through
   sqlite3 `fetchmany` and msgspec decoding of the payloads, nothing folded or written (goal ≥ 0.8;
   moonshot ≥ 1 M events/s). Wall time and this process's CPU time, medians of `--repeat`,
   interleaved. The rebuild must give the same rows every time (checked).
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tunelog.events.base import decode_stored, encode_payload
from tunelog.events.jobs import JobMetrics, JobProgress, JobQueued
from tunelog.store.sqlite import _BATCH, _INSERT, SqliteStore


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


def fill_log(path: Path, *, n: int) -> None:
    """A log of `n` events (1 job per 1,000 metric batches), written directly."""
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


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall s, CPU s of this process, result) of one call, the cycle collector paused as the rebuild pauses it."""
    gc.disable()
    try:
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        return time.perf_counter() - w, time.process_time() - c, out
    finally:
        gc.enable()


def raw_read(path: Path) -> int:
    """The baseline: fetch what a fold reads of every event, and decode the payloads."""
    conn = sqlite3.connect(path)
    cur = conn.execute("SELECT position, time, schema_version, payload FROM events ORDER BY position")
    n = 0
    while rows := cur.fetchmany(_BATCH):
        positions, times, versions, payloads = zip(*rows, strict=True)
        n += len(decode_stored(versions, payloads))
    conn.close()
    return n


def bench_rebuild(root: Path, *, n: int, repeat: int) -> None:
    path = root / "rebuild.sqlite"
    fill_log(path, n=n)
    store = SqliteStore(path)
    dump = "SELECT key, data FROM jobs ORDER BY key"
    rebuilt, raw, dumps = [], [], []
    for _ in range(repeat):
        raw.append(timed(lambda: raw_read(path)))
        rebuilt.append(timed(store.rebuild))
        dumps.append(store.conn.execute(dump).fetchall())
    store.close()
    if any(d != dumps[0] for d in dumps):
        raise SystemExit("rebuilds gave different rows")
    folded = rebuilt[0][2]
    for i, what in ((0, "wall"), (1, "CPU")):
        r, b = statistics.median(t[i] for t in rebuilt), statistics.median(t[i] for t in raw)
        print(f"rebuild, {what}: {folded:,} events in {r:.2f} s = {folded / r:,.0f} ev/s; raw fetch + decode "
              f"{b:.2f} s; ratio {b / r:.2f} (goal >= 0.8; moonshot >= 1,000,000 ev/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the rebuild benchmark")
    ap.add_argument("--batches", type=int, default=300, help="batches of 100 in the append benchmark")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rebuild-only", action="store_true", help="skip the append benchmarks")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        if args.rebuild_only:
            bench_rebuild(Path(d), n=args.events, repeat=args.repeat)
            return
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
        bench_rebuild(Path(d), n=args.events, repeat=args.repeat)


if __name__ == "__main__":
    main()
