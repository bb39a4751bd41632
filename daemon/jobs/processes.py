"""Worker processes seen from outside: signal a process group, recognise a worker a dead daemon
left behind, read its log's tail, and tell whether the kernel's OOM killer struck."""

from __future__ import annotations

import os
import signal
from pathlib import Path

LAST_LINES = 20
"""Lines of worker.log a JobFailed carries."""


def signal_name(number: int) -> str:
    """`SIGSEGV` for 11, and so on."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def killpg(pgid: int, sig: int) -> None:
    """Signal a worker's process group; a group that is gone already is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail_lines(path: Path, n: int = LAST_LINES) -> list[str]:
    """The last `n` lines of a log file (empty if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 32_768))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-n:]


def oom_kills() -> int:
    """How many processes the kernel's OOM killer has ended in our cgroup (v2); 0 if unknown."""
    try:
        line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::"))
        events = Path("/sys/fs/cgroup", line[3:].strip().lstrip("/"), "memory.events").read_text()
    except (OSError, StopIteration):
        return 0
    for row in events.splitlines():
        name, _, value = row.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def kill_leftover(pid: int, job_id: str) -> bool:
    """SIGKILL the process group of a worker a dead daemon left behind, if it is really that worker."""
    if not is_worker_of(pid, job_id):
        return False
    killpg(pid, signal.SIGKILL)
    return True


def is_worker_of(pid: int, job_id: str) -> bool:
    """True when `pid` leads its process group and carries TUNELOG_JOB_ID=<job_id> (Linux /proc)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return os.getpgid(pid) == pid and f"TUNELOG_JOB_ID={job_id}".encode() in environ
    except OSError:
        return False
