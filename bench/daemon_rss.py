"""Daemon idle memory: start a real daemon (built-in plugins loaded), let it settle, read its RSS.

    python bench/daemon_rss.py

Goal: at most 80 MB idle, at the first start too. Prints the first start (creates the schema) and a restart on the same
data dir (the usual case), plus a bare Python interpreter's RSS as the baseline of the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tunelog.daemon.paths import Paths

GOAL_MB = 80.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure(home: Path, settle_s: float = 5.0) -> float:
    env = {**os.environ, "TUNELOG_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "tunelog.frontends.cli.main", "daemon", "run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    sock = Paths.from_env(home).socket
    deadline = time.monotonic() + 60
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(settle_s)  # plugin checks run in throwaway processes; let the daemon go idle
    value = rss_mb(proc.pid)
    proc.terminate()
    proc.wait(30)
    return value


def main() -> None:
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    time.sleep(1)
    base = rss_mb(bare.pid)
    bare.wait()
    with tempfile.TemporaryDirectory() as d:
        first = measure(Path(d) / "home")
        again = measure(Path(d) / "home")
    print(f"bare python: {base:.1f} MB")
    for name, value in (("first start", first), ("restart", again)):
        print(f"daemon idle, {name}: {value:.1f} MB = {value / GOAL_MB:.2f} of the goal (<= {GOAL_MB:.0f} MB)")


if __name__ == "__main__":
    main()
