"""How much `tunectl status` costs over starting Python at all.

Starts a real daemon on a temp TUNELOG_HOME, then times (median of N runs each, interleaved,
one subprocess per run) `python -c pass` and the `tunectl` console script's `status`. Prints both,
the difference (goal: ≤ 60 ms) and the ratio.

    .venv/bin/python bench/cli_status.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_MS = 60.0


def tunectl_command() -> list[str]:
    """The installed console script (what users run), else `python -m`."""
    script = Path(sys.executable).parent / "tunectl"
    if script.is_file():
        return [str(script)]
    found = shutil.which("tunectl")
    return [found] if found else [sys.executable, "-m", "tunelog.frontends.cli.main"]


def wall_ms(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - started) * 1000


def start_daemon(env: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    """A real daemon, waited for until `status` answers."""
    log = open(home / "bench-daemon.out", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "tunelog.frontends.cli.main", "daemon", "run"],
                            env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}; see {home / 'bench-daemon.out'}")
        if subprocess.run([*tunectl_command(), "status"], env=env, capture_output=True).returncode == 0:
            return proc
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the daemon did not answer within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="tunelog-bench-"))
    env = {**os.environ, "TUNELOG_HOME": str(home)}
    proc = start_daemon(env, home)
    try:
        status = [*tunectl_command(), "status"]
        for _ in range(3):  # warm the page cache and the daemon
            wall_ms([sys.executable, "-c", "pass"], env)
            wall_ms(status, env)
        bare, cli = [], []
        for _ in range(args.runs):
            bare.append(wall_ms([sys.executable, "-c", "pass"], env))
            cli.append(wall_ms(status, env))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    b, c = statistics.median(bare), statistics.median(cli)
    print(f"python -c pass   median {b:6.1f} ms  (min {min(bare):.1f})")
    print(f"tunectl status   median {c:6.1f} ms  (min {min(cli):.1f})")
    print(f"difference       {c - b:6.1f} ms  (goal <= {GOAL_MS:.0f} ms: {'ok' if c - b <= GOAL_MS else 'MISSED'})")
    print(f"ratio            {c / b:6.2f}x")


if __name__ == "__main__":
    main()
