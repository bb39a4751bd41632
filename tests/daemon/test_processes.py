"""Worker processes seen from outside (daemon/jobs/processes.py), with real processes and real
files: signal names, signalling a process group, the tail of a worker log that is long, binary or
missing, the OOM killer's count in a cgroup, and recognising a worker a dead daemon left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tunelog.daemon.jobs.processes import (
    LAST_LINES,
    WORKER_FILE,
    is_worker_of,
    kill_leftover,
    killpg,
    oom_kills,
    record_worker,
    signal_name,
    start_time,
    tail_lines,
)

JOB = "0193a5b2c4d5e6f7a8b9"


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait until `pid` has ended (gone, or a zombie no one reaped yet); False if it still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.01)
    return False


@contextmanager
def process(*argv: str, session: bool = True, job_id: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A real process (its own session and group unless `session` is False), killed afterwards."""
    env = {k: v for k, v in os.environ.items() if k != "TUNELOG_JOB_ID"}
    if job_id is not None:
        env["TUNELOG_JOB_ID"] = job_id
    args = list(argv or ("sleep", "60"))
    proc = subprocess.Popen(args, start_new_session=session, env=env)
    try:
        # Popen returns once the exec has begun; /proc shows the new command line, name and
        # environment a moment later
        expected = "\0".join(args).encode() + b"\0"
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/cmdline").read_bytes() != expected and time.monotonic() < deadline:
            time.sleep(0.001)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_signals_are_named_as_the_signal_module_names_them() -> None:
    assert [signal_name(n) for n in (9, 11, 15, 2)] == ["SIGKILL", "SIGSEGV", "SIGTERM", "SIGINT"]
    assert signal_name(32) == "signal 32" and signal_name(99) == "signal 99"


def test_killpg_signals_the_whole_group_and_a_group_that_is_gone_is_fine() -> None:
    with process("sh", "-c", "sleep 60 & wait") as leader:
        deadline = time.monotonic() + 10
        children: list[str] = []
        while not children and time.monotonic() < deadline:
            children = Path(f"/proc/{leader.pid}/task/{leader.pid}/children").read_text().split()
            time.sleep(0.01)
        assert children, "the shell started no child"
        killpg(leader.pid, signal.SIGTERM)
        assert leader.wait(timeout=10) == -signal.SIGTERM
        assert gone(int(children[0]))
    killpg(leader.pid, signal.SIGKILL)  # gone: no error


def test_a_log_tail_is_its_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("".join(f"line {i}\n" for i in range(1, 31)))
    assert tail_lines(log) == [f"line {i}" for i in range(11, 31)] and LAST_LINES == 20
    assert tail_lines(log, 3) == ["line 28", "line 29", "line 30"]
    log.write_text("first\nsecond")  # no newline at the end, and the very first byte kept
    assert tail_lines(log) == ["first", "second"]


def test_only_the_last_32_kib_of_a_huge_log_are_read(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with open(log, "w") as f:  # 1000 lines of 1001 bytes: ~1 MB
        f.writelines(f"{i:04d} {'x' * 995}\n" for i in range(1000))
    lines = tail_lines(log, 100)
    # 32 whole lines (32,032 bytes) and, before them, the last 735 characters of line 967
    assert len(lines) == 33 and lines[0] == "x" * 735 and lines[1].startswith("0968 ")
    assert sum(len(line) + 1 for line in lines) == 32_768 and lines[-1].startswith("0999 ")


def test_a_binary_log_is_decoded_with_replacement_characters(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_bytes(b"\xff\xfe ok\n\x00core\x80\n")
    assert tail_lines(log) == ["\ufffd\ufffd ok", "\x00core\ufffd"]


def test_a_log_that_cannot_be_read_has_no_tail(tmp_path: Path) -> None:
    assert tail_lines(tmp_path / "missing.log") == []
    assert tail_lines(tmp_path) == []  # a folder


def write_cgroup(tmp_path: Path, line: str, events: str | None) -> dict[str, Path]:
    cgroup = tmp_path / "cgroup"
    cgroup.write_text(f"1:name=systemd:/\n{line}\n")
    mount = tmp_path / "fs"
    (mount / "user.slice" / "job").mkdir(parents=True, exist_ok=True)
    if events is not None:
        (mount / "user.slice" / "job" / "memory.events").write_text(events)
    return {"cgroup": cgroup, "mount": mount}


def test_oom_kills_are_read_from_the_cgroup_v2_memory_events(tmp_path: Path) -> None:
    events = "low 0\nhigh 0\nmax 7\noom 3\noom_kill 2\noom_group_kill 1\n"
    assert oom_kills(**write_cgroup(tmp_path, "0::/user.slice/job", events)) == 2
    root = write_cgroup(tmp_path, "0::/", events)
    (root["mount"] / "memory.events").write_text("oom 9\noom_kill 4\n")
    assert oom_kills(**root) == 4  # the root cgroup


@pytest.mark.parametrize("line,events", [
    ("0::/user.slice/job", None),  # no memory controller there
    ("4:memory:/user.slice/job", "oom_kill 2\n"),  # cgroup v1 only
    ("0::/user.slice/job", "oom 3\n"),  # no count
    ("0::/user.slice/job", "oom_kill many\n"),
])
def test_oom_kills_are_0_where_the_count_is_unknown(tmp_path: Path, line: str, events: str | None) -> None:
    assert oom_kills(**write_cgroup(tmp_path, line, events)) == 0


def test_oom_kills_on_this_machine_are_its_cgroup_v2_count_or_0() -> None:
    """Only a cgroup v2 machine with a memory controller tells a count (this one may not)."""
    v2 = [x[3:] for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::")]
    events = Path("/sys/fs/cgroup", v2[0].lstrip("/"), "memory.events") if v2 else None
    if events is None or not events.exists():
        assert oom_kills() == 0
    else:
        assert oom_kills() == int(dict(row.split() for row in events.read_text().splitlines())["oom_kill"])


def boot_ticks() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")


def test_a_start_time_is_in_clock_ticks_after_boot_even_with_a_parenthesis_in_the_name(tmp_path: Path) -> None:
    odd = tmp_path / "a) b (c"
    odd.symlink_to("/bin/sleep")
    before = int(boot_ticks())
    with process(str(odd), "60") as proc:
        after = boot_ticks()
        assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == "a) b (c"
        started = start_time(proc.pid)
        assert started is not None and before <= started <= after + 1
    assert start_time(proc.pid) is None  # reaped: gone


def test_a_worker_is_recorded_by_pid_and_start_time_in_a_private_file(tmp_path: Path) -> None:
    with process() as proc:
        record_worker(tmp_path, proc.pid)
        assert (tmp_path / WORKER_FILE).stat().st_mode & 0o777 == 0o600
        (tmp_path / WORKER_FILE).write_text("1234567 89012345678901234567890\n")  # a longer, older record
        record_worker(tmp_path, proc.pid)
        assert (tmp_path / WORKER_FILE).read_text() == f"{proc.pid} {start_time(proc.pid)}\n"
    record_worker(tmp_path, proc.pid)  # ended before it was recorded: no start time
    assert (tmp_path / WORKER_FILE).read_text() == f"{proc.pid} 0\n"


def test_a_leftover_worker_is_known_by_its_job_id_in_its_environment() -> None:
    with process(job_id=JOB) as proc:
        assert is_worker_of(proc.pid, JOB)
        for other in (JOB[:-1], JOB + "0", "0193a5b2c4d5e6f7a8b8"):
            assert not is_worker_of(proc.pid, other)
    assert not is_worker_of(proc.pid, JOB)  # gone


def test_a_process_that_does_not_lead_its_group_is_not_a_worker() -> None:
    with process(session=False, job_id=JOB) as proc:
        assert not is_worker_of(proc.pid, JOB)
        assert not kill_leftover(proc.pid, JOB)
        assert proc.poll() is None


def test_a_forked_worker_is_known_by_its_worker_pid_file(tmp_path: Path) -> None:
    with process() as proc, process() as other:
        assert not is_worker_of(proc.pid, JOB) and not is_worker_of(proc.pid, JOB, tmp_path)  # no file
        record_worker(tmp_path, proc.pid)
        assert is_worker_of(proc.pid, JOB, tmp_path)
        assert not is_worker_of(other.pid, JOB, tmp_path)  # another process
        began = start_time(proc.pid)
        for text in (f"{proc.pid} {began + 1}", f"{proc.pid} 0", f"{proc.pid}", f"{proc.pid} {began} 1", "x y"):
            (tmp_path / WORKER_FILE).write_text(text)  # a reused pid, not recorded in time, damaged
            assert not is_worker_of(proc.pid, JOB, tmp_path), text


def test_a_leftover_worker_is_killed_with_its_group_and_anything_else_is_left_alone(tmp_path: Path) -> None:
    with process(job_id="someone-else") as bystander, process(sys.executable, "-c", "import time; time.sleep(60)",
                                                             job_id=JOB) as worker:
        assert not kill_leftover(bystander.pid, JOB)
        assert kill_leftover(worker.pid, JOB)
        assert worker.wait(timeout=10) == -signal.SIGKILL and bystander.poll() is None
    with process() as forked:
        record_worker(tmp_path, forked.pid)
        assert kill_leftover(forked.pid, JOB, tmp_path) and forked.wait(timeout=10) == -signal.SIGKILL
