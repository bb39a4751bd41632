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


def oom_kills(*, cgroup: Path = Path("/proc/self/cgroup"), mount: Path = Path("/sys/fs/cgroup")) -> int:
    """How many processes the kernel's OOM killer has ended in our cgroup (v2); 0 if unknown.

    `cgroup` lists the process's cgroups (`0::/PATH` is the v2 one) and `mount` is where the v2
    hierarchy is mounted; tests point them at files of their own."""
    try:
        line = next(x for x in cgroup.read_text().splitlines() if x.startswith("0::"))
        events = Path(mount, line[3:].strip().lstrip("/"), "memory.events").read_text()
    except (OSError, StopIteration):
        return 0
    for row in events.splitlines():
        name, _, value = row.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


WORKER_FILE = "worker.pid"
"""In a job's folder: `<pid> <start time>` of its worker, written when it started."""


def kill_leftover(pid: int, job_id: str, folder: Path | None = None) -> bool:
    """SIGKILL the process group of a worker a dead daemon left behind, if it is really that worker."""
    if not is_worker_of(pid, job_id, folder):
        return False
    killpg(pid, signal.SIGKILL)
    return True


def is_worker_of(pid: int, job_id: str, folder: Path | None = None) -> bool:
    """True when `pid` leads its process group and is that job's worker: it carries
    TUNELOG_JOB_ID=<job_id> in the environment it started with, or it is the process recorded in
    the job folder's `worker.pid` (same pid and start time; a worker forked by the warm host
    started with the host's environment). Linux /proc."""
    try:
        if os.getpgid(pid) != pid:
            return False
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"TUNELOG_JOB_ID={job_id}".encode() in environ or (folder is not None and _recorded(folder, pid))


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks after boot (/proc/PID/stat field 22); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after the command name, which may hold spaces
    return int(fields[19]) if len(fields) > 19 else None


def record_worker(folder: Path, pid: int) -> None:
    """Write the worker's identity (pid and start time) into its job folder."""
    fd = os.open(folder / WORKER_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as f:
        f.write(f"{pid} {start_time(pid) or 0}\n")


def _recorded(folder: Path, pid: int) -> bool:
    try:
        recorded_pid, recorded_start = (int(x) for x in (folder / WORKER_FILE).read_text().split())
    except (OSError, ValueError):
        return False
    return recorded_pid == pid and recorded_start != 0 and recorded_start == start_time(pid)
