"""History must not slow the daemon: a real daemon on a Unix socket, with N jobs already in its log.

    python bench/history_bench.py [--jobs 1500 10000] [--clients 32] [--seconds 45]

1. Idle `GET /v1/status`: median and p99 of sequential requests on an empty log, then on logs
   holding each N finished jobs (each written with the real append path: queued, started, three
   metrics, succeeded). Goal: ≤ 2× the empty log's median.
2. Load, on the first N: `--clients` threads for `--seconds`, each looping status, a page of
   jobs, submit a job and cancel it (one long job holds the only slot, so every submitted job is
   queued, then cancelled: the history grows all through). Goals: requests/s over the last 5 s
   ≥ 0.8× the first 5 s, status p99 ≤ 100 ms. Also the daemon's CPU time per request in both
   windows: on a machine shared with other work, requests/s moves with that work; CPU per
   request moves far less.

Traffic stays on the Unix socket; every loop ends at its deadline and every request has a timeout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tunelog.daemon.paths import Paths
from tunelog.events import jobs as J
from tunelog.frontends.cli.client import Client
from tunelog.store.sqlite import SqliteStore

TESTOPS = Path(__file__).resolve().parents[1] / "tests" / "plugins_fixtures"
IDLE_GOAL, FLAT_GOAL, P99_GOAL_MS = 2.0, 0.8, 100.0


def write_history(db: Path, jobs: int) -> None:
    """`jobs` finished jobs, six appends each, through SqliteStore.append (projections included)."""
    store = SqliteStore(db)
    for i in range(jobs):
        job, stream = f"hist{i:06d}", f"job-hist{i:06d}"
        store.append(stream, [J.JobQueued(job_id=job, plugin="testops", operation="env", params={"n": i},
                                          code_hash="h", plugin_version="0.1.0")])
        store.append(stream, [J.JobStarted(job_id=job, pid=1, slot="cpu0", log_path="log")])
        for step in range(3):
            store.append(stream, [J.JobMetrics(job_id=job, points=[{"step": step, "loss": 1.0 / (step + 1)}])])
        store.append(stream, [J.JobSucceeded(job_id=job, outputs={}, duration_s=1.0)])
    store.close()


class Daemon:
    def __init__(self, home: Path):
        self.paths = Paths.from_env(home)
        env = {**os.environ, "TUNELOG_HOME": str(home), "TUNELOG_PLUGIN_DIRS": str(TESTOPS),
               "TUNELOG_NO_BUILTINS": "1", "TUNELOG_UI_PORT": "off", "TUNELOG_SLOTS": "cpu0"}
        self.proc = subprocess.Popen([sys.executable, "-m", "tunelog.daemon"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if any(p["name"] == "testops" for p in self.client().get("/v1/plugins")["plugins"]):
                    return
            except Exception:  # not listening yet
                time.sleep(0.1)
        self.stop()
        raise SystemExit("the daemon did not answer within 60 s")

    def client(self) -> Client:
        return Client(str(self.paths.socket), timeout=30.0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def status_ms(d: Daemon, n: int = 300) -> list[float]:
    c, out = d.client(), []
    for _ in range(n):
        t0 = time.perf_counter()
        c.get("/v1/status")
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(d: Daemon, *, clients: int, seconds: float) -> tuple[list[tuple[float, int, float]], list[float], int]:
    """(one sample a second: (time, requests done, daemon CPU s); status latencies in ms; jobs submitted)."""
    blocker = d.client().post("/v1/jobs", {"plugin": "testops", "operation": "sleep",
                                           "params": {"seconds": seconds + 60}})["job"]
    end = time.monotonic() + seconds
    latencies: list[float] = []
    done = [0]
    lock = threading.Lock()

    def client_loop() -> None:
        c = d.client()
        while time.monotonic() < end:
            t0 = time.perf_counter()
            c.get("/v1/status")
            took = (time.perf_counter() - t0) * 1000
            c.get("/v1/jobs", limit=20, order="desc")
            job = c.post("/v1/jobs", {"plugin": "testops", "operation": "sleep", "params": {"seconds": 1.0}})["job"]
            c.post(f"/v1/jobs/{job['job_id']}/cancel", {})
            with lock:
                latencies.append(took)
                done[0] += 4

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    samples = []
    while (now := time.monotonic()) < end:
        samples.append((now, done[0], cpu_s(d.proc.pid)))
        time.sleep(1.0)
    for t in threads:
        t.join(60)
    d.client().post(f"/v1/jobs/{blocker['job_id']}/cancel", {})
    return samples, latencies, done[0] // 4


def window(samples: list[tuple[float, int, float]], lo: int, hi: int) -> tuple[float, float]:
    """(requests/s, daemon CPU ms per request) between two samples."""
    (t0, n0, c0), (t1, n1, c1) = samples[lo], samples[hi]
    return (n1 - n0) / (t1 - t0), (c1 - c0) * 1000 / max(1, n1 - n0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1500, 10_000])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=45.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty = Daemon(Path(tmp) / "empty")
        base = status_ms(empty)
        empty.stop()
        print(f"idle status, empty log: median {statistics.median(base):.2f} ms, p99 {p99(base):.2f} ms")
        for i, n in enumerate(args.jobs):
            home = Path(tmp) / f"h{n}"
            paths = Paths.from_env(home)
            paths.ensure()
            t0 = time.perf_counter()
            write_history(paths.db, n)
            wrote = time.perf_counter() - t0
            d = Daemon(home)
            try:
                idle = status_ms(d)
                ratio = statistics.median(idle) / statistics.median(base)
                print(f"idle status, {n:,} jobs ({6 * n:,} events written in {wrote:.1f} s): median "
                      f"{statistics.median(idle):.2f} ms, p99 {p99(idle):.2f} ms; {ratio:.2f}x the empty log "
                      f"(goal <= {IDLE_GOAL:.0f}x)")
                if i == 0:
                    samples, lat, submitted = load(d, clients=args.clients, seconds=args.seconds)
                    (first, first_cpu), (last, last_cpu) = window(samples, 0, 5), window(samples, -6, -1)
                    print(f"load, {args.clients} clients for {args.seconds:.0f} s on {n:,} jobs (+{submitted:,} "
                          f"submitted and cancelled): {first:.0f} req/s first 5 s, {last:.0f} req/s last 5 s, "
                          f"ratio {last / first:.2f} (goal >= {FLAT_GOAL}); daemon CPU per request "
                          f"{first_cpu:.2f} ms first 5 s, {last_cpu:.2f} ms last 5 s (ratio {first_cpu / last_cpu:.2f}, "
                          f"the figure the machine's other load moves least); status p99 {p99(lat):.1f} ms "
                          f"(goal <= {P99_GOAL_MS:.0f} ms), median {statistics.median(lat):.1f} ms")
                    print("  req/s each second: " + " ".join(f"{window(samples, j, j + 1)[0]:.0f}"
                                                          for j in range(len(samples) - 1)))
            finally:
                d.stop()


if __name__ == "__main__":
    main()
