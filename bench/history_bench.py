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
3. Status latency seen from outside the load: a probe in its own process sends `status` at a
   fixed rate (`--probe-rate`, one connection), first on the idle daemon, then while the load
   runs. Each latency counts from the moment the request was due, so a probe held up by a slow
   answer counts the wait too. Printed: the loaded p99 and median, their ratio to the same
   probe's on the idle daemon in this run, and the loaded p99 against the goal. The load's own
   status latencies (item 2) are measured from threads that share one process and its GIL with
   31 other clients; on a 2-core machine they mostly measure waiting for a core.

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

ROOT = Path(__file__).resolve().parents[1]
TESTOPS = ROOT / "tests" / "plugins_fixtures"
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
    def __init__(self, home: Path, *, profile: Path | None = None):
        self.paths = Paths.from_env(home)
        env = {**os.environ, "TUNELOG_HOME": str(home), "TUNELOG_PLUGIN_DIRS": str(TESTOPS),
               "TUNELOG_NO_BUILTINS": "1", "TUNELOG_UI_PORT": "off", "TUNELOG_SLOTS": "cpu0"}
        profiled = ["-m", "cProfile", "-o", str(profile)] if profile else []
        self.proc = subprocess.Popen([sys.executable, *profiled, "-m", "tunelog.daemon"], env=env,
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


def probe(socket: str, *, rate: float, seconds: float, delay: float) -> None:
    """The probe process: after `delay` s, `status` due every 1/rate s for `seconds`; prints each
    request's latency (ms) from the moment it was due and from the moment it was sent, one pair a line
    (a gap between the two is time the probe itself waited: for a core, or behind a slow answer)."""
    c = Client(socket, timeout=30.0)
    c.get("/v1/status")  # connect outside the measurement
    time.sleep(delay)
    start = time.perf_counter()
    out = []
    for k in range(int(rate * seconds)):
        due = start + k / rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        sent = time.perf_counter()
        c.get("/v1/status")
        done = time.perf_counter()
        out.append(((done - due) * 1000, (done - sent) * 1000))
    print("\n".join(f"{a:.3f} {b:.3f}" for a, b in out))


def start_probe(d: Daemon, *, rate: float, seconds: float, delay: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "--probe", str(d.paths.socket), "--probe-rate", str(rate),
                             "--probe-seconds", str(seconds), "--probe-delay", str(delay)],
                            stdout=subprocess.PIPE, text=True)


def probe_result(proc: subprocess.Popen[str]) -> tuple[list[float], list[float]]:
    """(latencies from when each request was due, from when it was sent), ms."""
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"the probe failed (exit {proc.returncode})")
    pairs = [line.split() for line in out.splitlines()]
    return [float(a) for a, _ in pairs], [float(b) for _, b in pairs]


def print_profile(path: Path) -> None:
    """Where the profiled daemon's time went: this checkout's functions (the request handlers among
    them), and the time its event loop waited for requests."""
    import pstats

    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    items = stats.stats.items()  # type: ignore[attr-defined]
    rows = [(f"{Path(file).relative_to(ROOT)}:{name}", cum, calls) for (file, _, name), (_, calls, _, cum, _) in items
            if file.startswith(str(ROOT)) and ".venv" not in file and cum > 0.01 * total]
    idle = sum(tt for (file, _, name), (_, _, tt, _, _) in items if name == "<method 'poll' of 'select.epoll' objects>")
    print(f"daemon profile ({path}): {total:.1f} s in all, {idle:.1f} s of it waiting for requests (epoll); "
          "this checkout's functions over 1 % of it, cumulative:")
    for name, cum, calls in sorted(rows, key=lambda r: -r[1])[:25]:
        print(f"  {cum:7.2f} s {100 * cum / total:5.1f} %  {calls:8d} calls  {name}")


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
    ap.add_argument("--probe-rate", type=float, default=20.0, help="status requests a second from the probe")
    ap.add_argument("--profile", type=Path, metavar="FILE",
                    help="run the first history's daemon under cProfile, write its stats to FILE and print the "
                         "status handler's share")
    ap.add_argument("--probe", metavar="SOCKET", help=argparse.SUPPRESS)  # run as the probe process
    ap.add_argument("--probe-seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    ap.add_argument("--probe-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        probe(args.probe, rate=args.probe_rate, seconds=args.probe_seconds, delay=args.probe_delay)
        return
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
            d = Daemon(home, profile=args.profile if i == 0 else None)
            try:
                idle = status_ms(d)
                ratio = statistics.median(idle) / statistics.median(base)
                print(f"idle status, {n:,} jobs ({6 * n:,} events written in {wrote:.1f} s): median "
                      f"{statistics.median(idle):.2f} ms, p99 {p99(idle):.2f} ms; {ratio:.2f}x the empty log "
                      f"(goal <= {IDLE_GOAL:.0f}x)")
                if i == 0:
                    quiet, quiet_sent = probe_result(start_probe(d, rate=args.probe_rate, seconds=args.seconds - 10))
                    prober = start_probe(d, rate=args.probe_rate, seconds=args.seconds - 10, delay=5.0)
                    samples, lat, submitted = load(d, clients=args.clients, seconds=args.seconds)
                    loaded, loaded_sent = probe_result(prober)
                    (first, first_cpu), (last, last_cpu) = window(samples, 0, 5), window(samples, -6, -1)
                    print(f"load, {args.clients} clients for {args.seconds:.0f} s on {n:,} jobs (+{submitted:,} "
                          f"submitted and cancelled): {first:.0f} req/s first 5 s, {last:.0f} req/s last 5 s, "
                          f"ratio {last / first:.2f} (goal >= {FLAT_GOAL}); daemon CPU per request "
                          f"{first_cpu:.2f} ms first 5 s, {last_cpu:.2f} ms last 5 s (ratio {first_cpu / last_cpu:.2f}, "
                          f"the figure the machine's other load moves least); status p99 in the load's own threads {p99(lat):.1f} ms "
                          f"(goal <= {P99_GOAL_MS:.0f} ms), median {statistics.median(lat):.1f} ms")
                    print(f"status from a probe process at {args.probe_rate:g}/s ({len(loaded)} requests, each "
                          f"timed from when it was due): under load p99 {p99(loaded):.1f} ms (goal <= "
                          f"{P99_GOAL_MS:.0f} ms), median {statistics.median(loaded):.1f} ms; idle daemon p99 "
                          f"{p99(quiet):.1f} ms, median {statistics.median(quiet):.1f} ms; loaded / idle: p99 "
                          f"{p99(loaded) / p99(quiet):.1f}x, median {statistics.median(loaded) / statistics.median(quiet):.1f}x")
                    print(f"  the same requests timed from when each was sent: under load p99 {p99(loaded_sent):.1f} ms, "
                          f"median {statistics.median(loaded_sent):.1f} ms; idle p99 {p99(quiet_sent):.1f} ms, "
                          f"median {statistics.median(quiet_sent):.1f} ms")
                    print("  req/s each second: " + " ".join(f"{window(samples, j, j + 1)[0]:.0f}"
                                                          for j in range(len(samples) - 1)))
            finally:
                d.stop()
            if i == 0 and args.profile:
                print_profile(args.profile)


if __name__ == "__main__":
    main()
