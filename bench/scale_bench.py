"""The scale table: a log of 10 k runs and 10 M events against a log of one run of the same shape.

    python bench/scale_bench.py [--runs 10000] [--events 10000000] [--repeat 15] [--home DIR]

Writes the history with the real append path (SqliteStore.append, projections updated in each
append's transaction): each run is RunSubmitted, a job (queued, started, metrics in appends of
10 events, as a worker flushes them, succeeded), NodeCompleted and RunFinished, so the log holds
`--runs` runs, as many jobs and about `--events` events. `--home DIR` keeps the written logs in DIR
and reuses them on the next call (10 M events take a long while to write). Then:

1. The log's bytes per event, and a rebuild of every projection (events/s, wall and CPU).
2. The web runs page (reactpy's real Layout over the daemon's services, no browser): the first
   page, the next two through `older runs`, and one from the middle of the history. Goal: each
   page renders in <= 300 ms (its loss sparklines read each listed job's metrics).
3. A real daemon per log serving the CLI, each command timed as a subprocess, median of
   `--repeat`, interleaved between the two logs: `tunectl runs list`, `tunectl status`,
   `tunectl events --stream job-...` (one job's ~1,000 events, paged 500 at a time) and
   `tunectl events --after N` (the log's last 1,000 events). Goal: each <= 2x its time on the
   one-run log.
4. Each daemon's resident memory after those commands. Goal: <= 80 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelog.daemon.paths import Paths
from tunelog.daemon.services import build_services
from tunelog.events import jobs as J
from tunelog.events import runs as R
from tunelog.store.sqlite import SqliteStore

GOAL, PAGE_GOAL_MS, RSS_GOAL_MB = 2.0, 300.0, 80.0
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


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall s, CPU s of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def rebuild(db: Path) -> None:
    opened = timed(lambda: SqliteStore(db).close())  # a log written before the last migration gets it here
    store = SqliteStore(db)
    folded: list[int] = []
    wall, cpu = timed(lambda: folded.append(store.rebuild()))
    store.close()
    print(f"open (schema check) {opened[0]:.1f} s; rebuild of {folded[0]:,} events: {wall:.1f} s wall = "
          f"{folded[0] / wall:,.0f} ev/s, {cpu:.1f} s CPU = {folded[0] / cpu:,.0f} ev/s")


def runs_pages(paths: Paths, *, runs: int) -> None:
    """Render the web runs page: first, two older pages, one from the middle of the history."""
    from reactpy.core.layout import Layout

    from tunelog.frontends.web.pages.runs import RunsPage
    from tunelog.frontends.web.server import use_task_local_hook_stack
    from tunelog.frontends.web.ui import Ui

    services = build_services(paths, version="bench", builtin_dir=Path("/nonexistent"), slots=["cpu0"])
    ui = Ui(services)

    async def render(query: dict[str, str]) -> Any:
        async with Layout(RunsPage(ui, query=query)) as layout:
            return (await layout.render())["model"]

    def older(model: Any) -> str | None:
        if isinstance(model, str):
            return None
        if model.get("tagName") == "a" and str(model["attributes"]["href"]).startswith("/?before="):
            return str(model["attributes"]["href"]).split("=", 1)[1]
        return next((c for c in map(older, model.get("children", [])) if c), None)

    use_task_local_hook_stack()
    middle = services.tables.runs.get(f"run{runs // 2:07d}")  # write_history's run ids
    assert middle is not None
    query: dict[str, str] | None = {}
    try:
        for name in ("first page", "2nd page", "3rd page", "middle page"):
            if name == "middle page":
                query = {"before": str(middle.submitted_position)}
            if query is None:
                continue  # fewer pages than that
            t0 = time.perf_counter()
            model = asyncio.run(render(query))
            ms = (time.perf_counter() - t0) * 1000
            print(f"web runs page, {name}: {ms:.0f} ms (goal <= {PAGE_GOAL_MS:.0f} ms)")
            cursor = older(model)
            query = None if cursor is None else {"before": cursor}
    finally:
        services.store.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def write(home: Path, *, runs: int, events: int) -> int:
    """The log under `home`, written unless it is there already; returns its events."""
    paths = Paths.from_env(home)
    if paths.db.exists():
        store = SqliteStore(paths.db)
        head = store.head()
        store.close()
        print(f"reusing {paths.db}: {head:,} events")
        return head
    paths.ensure()
    t0 = time.perf_counter()
    written = write_history(paths.db, runs=runs, events=events)
    took = time.perf_counter() - t0
    print(f"wrote {runs:,} runs, {written:,} events with SqliteStore.append in {took:.0f} s "
          f"({written / took:,.0f} events/s)")
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--home", type=Path, help="keep the logs here and reuse them next time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.home or Path(tmp)
        written = write(root / "big", runs=args.runs, events=args.events)
        write(root / "one", runs=1, events=max(8, args.events // args.runs))
        size = Paths.from_env(root / "big").db.stat().st_size
        print(f"log {size / 1e6:,.0f} MB = {size / written:.0f} bytes per event")
        rebuild(Paths.from_env(root / "big").db)
        runs_pages(Paths.from_env(root / "big"), runs=args.runs)
        one, big = Daemon(root / "one"), Daemon(root / "big")
        job = f"job-job{args.runs // 2:07d}"
        try:
            head = int(json.loads(subprocess.run([*CLI, "status", "--json"], env=big.env, capture_output=True,
                                                 check=True).stdout)["head"])
            commands = {"runs list": (["runs", "list"], ["runs", "list"]),
                        "status": (["status"], ["status"]),
                        "events --stream (one job)": (["events", "--stream", "job-job0000000"], ["events", "--stream", job]),
                        "events --after (last 1,000)": (["events"], ["events", "--after", str(head - 1000)])}
            for name, (on_one, on_big) in commands.items():
                times: dict[str, list[float]] = {"one": [], "big": []}
                for _ in range(args.repeat):
                    times["one"].append(one.ms(*on_one))
                    times["big"].append(big.ms(*on_big))
                e, f = statistics.median(times["one"]), statistics.median(times["big"])
                print(f"tunectl {name}: one-run log {e:.0f} ms, {args.runs:,} runs / {written:,} events "
                      f"{f:.0f} ms; ratio {f / e:.2f} (goal <= {GOAL:.0f})")
            for name, d in (("one-run log", one), ("big log", big)):
                print(f"daemon RSS after these, {name}: {rss_mb(d.proc.pid):.0f} MB (goal <= {RSS_GOAL_MB:.0f} MB)")
        finally:
            one.stop()
            big.stop()


if __name__ == "__main__":
    main()
