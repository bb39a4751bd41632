"""The scale table: `tunectl runs list` and `tunectl status` on a large log against an empty one.

    python bench/scale_bench.py [--runs 10000] [--events 1000000] [--repeat 15]

Writes the history with the real append path (SqliteStore.append, projections updated in each
append's transaction): each run is RunSubmitted, a job (queued, started, metrics in appends of
10 events, as a worker flushes them, succeeded), NodeCompleted and RunFinished, so the log holds
`--runs` runs, as many jobs and about `--events` events. Then a real daemon serves the CLI, each
command timed as a subprocess, median of `--repeat`, interleaved with the empty log's daemon.
Goal: each ≤ 2× its time on the empty log. Also prints the log's bytes per event.

10 M events take about ten times as long to write as 1 M; the CLI's reads go through indexes and
the status counters, so their times do not grow with the log (check with `--events 10000000`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tunelog.daemon.paths import Paths
from tunelog.events import jobs as J
from tunelog.events import runs as R
from tunelog.store.sqlite import SqliteStore

GOAL = 2.0
CLI = [str(Path(sys.executable).parent / "tunectl")]


def write_history(db: Path, *, runs: int, events: int) -> int:
    """Append the synthetic history; returns the events written."""
    store = SqliteStore(db)
    metrics_per_run = max(1, events // runs - 7)
    graph = {"nodes": {"train": {"op": "testops.env", "params": {}}}}
    for i in range(runs):
        run_id, job_id = f"run{i:07d}", f"job{i:07d}"
        store.append(f"run-{run_id}", [R.RunSubmitted(run_id=run_id, graph=graph, order=["train"], code={},
                                                      label=f"synthetic {i}")])
        store.append(f"job-{job_id}", [J.JobQueued(job_id=job_id, plugin="testops", operation="env", params={},
                                                   code_hash="h", plugin_version="0.1.0", run_id=run_id)])
        store.append(f"job-{job_id}", [J.JobStarted(job_id=job_id, pid=1, slot="cpu0", log_path="log")])
        for start in range(0, metrics_per_run, 10):
            store.append(f"job-{job_id}", [J.JobMetrics(job_id=job_id, points=[{"step": s, "loss": 1 / (s + 1)}])
                                           for s in range(start, min(start + 10, metrics_per_run))])
        store.append(f"job-{job_id}", [J.JobSucceeded(job_id=job_id, outputs={}, duration_s=1.0)])
        store.append(f"run-{run_id}", [R.NodeCompleted(run_id=run_id, node="train", job_id=job_id, cache_key=f"k{i}",
                                                       outputs={}, output_types={})])
        store.append(f"run-{run_id}", [R.RunFinished(run_id=run_id, state="succeeded")])
    head = store.head()
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return head


class Daemon:
    def __init__(self, home: Path):
        self.env = {**os.environ, "TUNELOG_HOME": str(home), "TUNELOG_NO_BUILTINS": "1", "TUNELOG_UI_PORT": "off"}
        self.proc = subprocess.Popen([sys.executable, "-m", "tunelog.daemon"], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while subprocess.run([*CLI, "status"], env=self.env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit(f"the daemon on {home} did not answer")
            time.sleep(0.2)

    def ms(self, *args: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([*CLI, *args], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return (time.perf_counter() - t0) * 1000

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = Paths.from_env(Path(tmp) / "big")
        big.ensure()
        t0 = time.perf_counter()
        written = write_history(big.db, runs=args.runs, events=args.events)
        took = time.perf_counter() - t0
        size = big.db.stat().st_size
        print(f"wrote {args.runs:,} runs, {written:,} events with SqliteStore.append in {took:.0f} s "
              f"({written / took:,.0f} events/s); log {size / 1e6:.0f} MB = {size / written:.0f} bytes per event")
        empty, full = Daemon(Path(tmp) / "empty"), Daemon(Path(tmp) / "big")
        try:
            for command in (["runs", "list"], ["status"]):
                times: dict[str, list[float]] = {"empty": [], "full": []}
                for _ in range(args.repeat):
                    times["empty"].append(empty.ms(*command))
                    times["full"].append(full.ms(*command))
                e, f = statistics.median(times["empty"]), statistics.median(times["full"])
                print(f"tunectl {' '.join(command)}: empty log {e:.0f} ms, {args.runs:,} runs / {written:,} events "
                      f"{f:.0f} ms; ratio {f / e:.2f} (goal <= {GOAL:.0f})")
        finally:
            empty.stop()
            full.stop()


if __name__ == "__main__":
    main()
