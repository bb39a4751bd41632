"""Job runner timings with real worker processes (the `testops` fixture plugin), medians of N.

    python bench/jobs_bench.py [--repeat 5]

1. Submit -> JobStarted (scheduler latency) and JobStarted -> JobSucceeded for an operation that
   does nothing (worker start, imports, exit).
2. Cancel -> JobCancelled for a cooperative job (it polls should_stop every 10 ms) and for one
   that ignores SIGTERM (grace period 1 s, then SIGKILL).
3. Metrics: seconds and JobMetrics events for 20,000 points sent as fast as the worker can.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from tunelog.daemon.jobs.runner import JobRunner
from tunelog.daemon.paths import Paths
from tunelog.daemon.plugin_host.snapshots import snapshot
from tunelog.events.state import JobRow
from tunelog.store.artifacts import ArtifactStore
from tunelog.store.sqlite import SqliteStore

TESTOPS = Path(__file__).parents[1] / "tests" / "plugins_fixtures" / "testops"
DEFAULTS: dict[str, dict[str, Any]] = {"sleep": {"seconds": 60.0}, "hang": {"seconds": 60.0}}


class Bench:
    def __init__(self, root: Path):
        paths = Paths.from_env(root)
        paths.ensure()
        self.store = SqliteStore(paths.db)
        self.code_hash, _ = snapshot(TESTOPS, paths.plugin_code)
        self.runner = JobRunner(self.store, paths, ArtifactStore(paths.artifacts), slots=["cpu0"], grace_s=1.0)

    def submit(self, op: str, **params: Any) -> JobRow:
        return self.runner.submit(plugin="testops", operation=op, params={**DEFAULTS.get(op, {}), **params},
                                  inputs={}, code_hash=self.code_hash, plugin_version="0.1.0", resource="cpu")

    async def until(self, job_id: str, check: Callable[[JobRow], bool]) -> float:
        while not check(self.store.get("jobs", job_id)):
            await anyio.sleep(0.002)
        return time.monotonic()

    def at(self, job_id: str, tag: str) -> float:
        return float(next(e.time for e in self.store.read(stream=f"job-{job_id}") if e.type == tag))


async def start_and_noop(b: Bench) -> tuple[float, float]:
    row = b.submit("env")
    await b.until(row.job_id, lambda r: r.state == "succeeded")
    return b.at(row.job_id, "job-started") - row.queued_at, b.at(row.job_id, "job-succeeded") - b.at(
        row.job_id, "job-started")


async def cancel_latency(b: Bench, op: str) -> float:
    row = b.submit(op)
    await b.until(row.job_id, lambda r: r.message in ("sleeping", "hanging"))  # the operation runs
    t0 = time.monotonic()
    b.runner.cancel(row.job_id)
    return await b.until(row.job_id, lambda r: r.state == "cancelled") - t0


async def metrics(b: Bench) -> tuple[float, int]:
    row = b.submit("progress", n=20_000)
    await b.until(row.job_id, lambda r: r.state == "succeeded")
    events = b.store.read(stream=f"job-{row.job_id}", types=["job-metrics"])
    return b.at(row.job_id, "job-succeeded") - b.at(row.job_id, "job-started"), len(events)


async def main(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(Path(tmp))
        async with anyio.create_task_group() as tg:
            await tg.start(b.runner.run)
            runs = [await start_and_noop(b) for _ in range(repeat)]
            print(f"submit -> started: {statistics.median(r[0] for r in runs) * 1000:.1f} ms; "
                  f"started -> succeeded (no-op operation): {statistics.median(r[1] for r in runs):.2f} s")
            for op in ("sleep", "hang"):
                took = [await cancel_latency(b, op) for _ in range(repeat)]
                print(f"cancel -> cancelled ({op}): {statistics.median(took) * 1000:.0f} ms")
            seconds, count = await metrics(b)
            print(f"20,000 metric points: {seconds:.2f} s in the worker's life, {count} JobMetrics events")
            await b.runner.shutdown()
            tg.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    anyio.run(main, parser.parse_args().repeat)
