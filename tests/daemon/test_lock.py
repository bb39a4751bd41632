"""The single-instance lock in process, against a second holder in this process and in another
real process: what it records, whom it refuses and with which message, and that a release lets
the next daemon in. (The daemon tests take the same lock in a daemon subprocess, which mutation
testing cannot credit.)"""

from __future__ import annotations

import os
import select
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tunelog.daemon.lock import InstanceLock
from tunelog.events.errors import ConflictError

HINT = "stop it with `tunectl daemon stop`, or set TUNELOG_HOME for another one"
# A process that holds the lock file until its stdin closes: through InstanceLock (a daemon), or
# with a bare flock and nothing written (a daemon between taking the lock and recording itself).
HOLD_AS_DAEMON = """import sys
from pathlib import Path
from tunelog.daemon.lock import InstanceLock
lock = InstanceLock(Path(sys.argv[1]), socket=Path(sys.argv[2]))
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""
HOLD_BARE = """import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.flock(f.fileno(), fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def held_elsewhere(script: str, lock: Path, sock: Path) -> Iterator[int]:
    """Another process holding the lock while the block runs; yields its pid."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(lock), str(sock)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready and proc.stdout.readline() == "held\n", "the holder did not take the lock in 30 s"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_the_lock_records_its_owner_in_an_owner_only_file_and_a_second_holder_is_refused_naming_it(
        tmp_path: Path) -> None:
    path, sock = tmp_path / "daemon.lock", tmp_path / "run" / "daemon.sock"
    first = InstanceLock(path, socket=sock)
    assert (first.path, first.socket) == (path, sock)
    with umask(0):  # the file's mode must not depend on the caller's umask
        first.acquire()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"pid {os.getpid()}, socket {sock}\n"  # readable by others while held

    second = InstanceLock(path, socket=tmp_path / "other.sock")
    with pytest.raises(ConflictError) as refused:
        second.acquire()
    assert refused.value.message == f"a tunelog daemon is already running for {tmp_path} (pid {os.getpid()}, socket {sock})"
    assert refused.value.hint == HINT
    assert refused.value.__suppress_context__  # the BlockingIOError behind it is no part of the message
    assert path.read_text() == f"pid {os.getpid()}, socket {sock}\n"  # the refused one wrote nothing
    second.release()  # holds nothing: a no-op, and the first still holds the lock
    with pytest.raises(ConflictError):
        InstanceLock(path, socket=sock).acquire()

    first.release()
    first.release()  # a second release is a no-op
    second.acquire()
    assert path.read_text() == f"pid {os.getpid()}, socket {tmp_path / 'other.sock'}\n"
    second.release()


def test_a_daemon_in_another_process_is_named_by_its_pid_and_released_when_it_ends(tmp_path: Path) -> None:
    path, sock = tmp_path / "daemon.lock", tmp_path / "daemon.sock"
    with held_elsewhere(HOLD_AS_DAEMON, path, sock) as pid:
        with pytest.raises(ConflictError, match=rf"^a tunelog daemon is already running for .+ \(pid {pid}, socket "):
            InstanceLock(path, socket=sock).acquire()
    lock = InstanceLock(path, socket=sock)
    lock.acquire()  # the holder ended: its lock went with it, though its record stayed in the file
    assert path.read_text() == f"pid {os.getpid()}, socket {sock}\n"
    lock.release()


def test_a_released_lock_lets_another_process_take_it(tmp_path: Path) -> None:
    path, sock = tmp_path / "daemon.lock", tmp_path / "daemon.sock"
    lock = InstanceLock(path, socket=sock)
    lock.acquire()
    lock.release()
    with held_elsewhere(HOLD_AS_DAEMON, path, sock) as pid:
        assert path.read_text() == f"pid {pid}, socket {sock}\n"


def test_a_holder_that_recorded_nothing_is_named_unknown_pid(tmp_path: Path) -> None:
    path, sock = tmp_path / "daemon.lock", tmp_path / "daemon.sock"
    with held_elsewhere(HOLD_BARE, path, sock):
        with pytest.raises(ConflictError) as refused:
            InstanceLock(path, socket=sock).acquire()
    assert refused.value.message == f"a tunelog daemon is already running for {tmp_path} (unknown pid)"


def test_a_longer_record_left_by_a_dead_daemon_is_replaced_whole(tmp_path: Path) -> None:
    path, sock = tmp_path / "daemon.lock", tmp_path / "s"
    path.write_text("pid 4194304, socket /a/much/longer/runtime/folder/than/this/one/daemon.sock\n")
    lock = InstanceLock(path, socket=sock)
    lock.acquire()
    assert path.read_text() == f"pid {os.getpid()}, socket {sock}\n"
    lock.release()
