"""Daemon idle memory: start a real daemon (built-in plugins loaded), let it settle, read its RSS.

    python bench/daemon_rss.py

Goal: under 150 MB idle. Prints the first start (creates the schema) and a restart on the same
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
    print(f"daemon idle, first start: {first:.1f} MB; restart: {again:.1f} MB (goal <= 150 MB; "
          f"{again / 150:.2f} of the goal)")


if __name__ == "__main__":
    main()
