"""The warm worker host's own side (daemon/jobs/zygote.py), in this process over a real socket
pair: which modules it imports, the requests it refuses and why, a worker it forks reported as
started and then with its exit status, and its handshake. A forked child here is a fork of the
test process that fails at once (its job folder has no job.json); a warm worker that runs a job
is tested through the runner in test_warm_workers.py."""

from __future__ import annotations

import io
import json
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy
import pytest

from tests.daemon.jobs_support import make_env
from tunelog.daemon.jobs import zygote
from tunelog.daemon.jobs.protocol import Message, WorkerSpec
from tunelog.daemon.jobs.zygote import WARM_MODULES, Host, warm_modules

WORKER = ["tunelog.daemon.jobs.worker", "job.json"]


def stderr_is_fd_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the host process `sys.stderr` writes to fd 2, which a forked worker points at its log;
    pytest's capture gives the test another one (set while the test runs, so set here)."""
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, Host]]:
    """The daemon's end and a host on the other end."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.settimeout(30)
    host = Host(theirs)
    yield ours, host
    ours.close()
    host.selector.close()
    theirs.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def ask(ours: socket.socket, body: bytes, fds: list[int]) -> None:
    socket.send_fds(ours, [body], fds)


def answer(ours: socket.socket) -> dict[str, Any]:
    return dict(json.loads(ours.recv(1 << 16)))


def request(req_id: int, cwd: Path, **kw: Any) -> bytes:
    return json.dumps({"id": req_id, "cwd": str(cwd), "env": {"TUNELOG_X": "1"}, "umask": 0o077, "argv": WORKER}
                      | kw).encode()


def test_the_modules_to_import_are_the_default_list_or_the_environments() -> None:
    assert warm_modules({}) == list(WARM_MODULES) and WARM_MODULES[0] == "torch"
    assert warm_modules({"TUNELOG_WARM_MODULES": ""}) == []
    assert warm_modules({"TUNELOG_WARM_MODULES": " numpy, ,torch "}) == ["numpy", "torch"]


@pytest.mark.parametrize("body,fds,error", [
    (b"{not json", 2, "JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (b'{"id": 3}', 1, "ValueError: expected 2 descriptors, got 1"),
    (b'{"id": 4, "cwd": "/", "env": {}, "umask": 63}', 2, "KeyError: 'argv'"),
    (b'{"id": 5, "cwd": "/", "env": {}, "umask": "x", "argv": []}', 2, "ValueError: invalid literal for int() "
                                                                        "with base 10: 'x'"),
])
def test_a_bad_request_is_refused_with_its_error_and_its_descriptors_closed(
        pair: tuple[socket.socket, Host], tmp_path: Path, body: bytes, fds: int, error: str) -> None:
    ours, host = pair
    files = [os.open(tmp_path / f"f{i}", os.O_WRONLY | os.O_CREAT) for i in range(fds)]
    before = open_fds()
    ask(ours, body, files)
    assert host.serve(timeout=5)
    reply = answer(ours)
    assert reply == {"refused": json.loads(body)["id"] if body.startswith(b'{"') else None, "error": error}
    assert open_fds() == before  # the host's copies are closed
    for fd in files:
        os.close(fd)


def test_the_host_stops_when_the_daemon_closes_its_end(pair: tuple[socket.socket, Host], tmp_path: Path) -> None:
    ours, host = pair
    assert host.serve(timeout=0)  # nothing waiting
    extra = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    before = open_fds()
    ask(ours, b"", [extra])  # an empty message: the end, whatever comes with it
    assert not host.serve(timeout=5) and open_fds() == before
    os.close(extra)
    ours.shutdown(socket.SHUT_RDWR)
    assert not host.serve(timeout=5)


def ended(pid: int, timeout: float = 30) -> None:
    pidfd = os.pidfd_open(pid)
    try:
        assert select.select([pidfd], [], [], timeout)[0], f"worker {pid} did not end"
    finally:
        os.close(pidfd)


def test_a_forked_worker_is_reported_started_then_with_its_exit_status(pair: tuple[socket.socket, Host],
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    stderr_is_fd_2(monkeypatch)
    ours, host = pair
    channel, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    log = tmp_path / "worker.log"
    with open(log, "wb") as stderr:
        ask(ours, request(7, tmp_path), [child_end.fileno(), stderr.fileno()])
        child_end.close()
    assert host.serve(timeout=5)
    started = answer(ours)
    assert started == {"started": 7, "pid": started["pid"]} and started["pid"] != os.getpid()
    # started: it leads its own session and process group already (a signal to the group reaches it)
    assert os.getsid(started["pid"]) == os.getpgid(started["pid"]) == started["pid"]
    deadline = time.monotonic() + 30
    while host.serve(timeout=1) and time.monotonic() < deadline:
        ready, _, _ = select.select([ours], [], [], 0)
        if ready:
            break
    exited = answer(ours)
    assert exited == {"exited": started["pid"], "status": exited["status"]}
    assert os.waitstatus_to_exitcode(exited["status"]) == 70  # no job.json: the child failed before the worker ran
    assert list(host.selector.get_map()) == [host.control.fileno()]  # its pidfd closed
    text = log.read_text()
    assert f"tunelog: worker forked from the warm worker host {os.getpid()}" in text
    assert "FileNotFoundError" in text and "job.json" in text
    channel.settimeout(5)
    assert channel.recv(10) == b""  # its message channel ends with it
    channel.close()


def test_workers_that_ended_are_reaped_on_the_way_out(pair: tuple[socket.socket, Host], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    stderr_is_fd_2(monkeypatch)
    ours, host = pair
    with open(tmp_path / "worker.log", "wb") as stderr:
        for req_id in (1, 2):
            channel, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            ask(ours, request(req_id, tmp_path / "missing"), [child_end.fileno(), stderr.fileno()])
            child_end.close()
            channel.close()
            assert host.serve(timeout=5)
    pids = [answer(ours)["pid"] for _ in (1, 2)]
    for pid in pids:
        ended(pid)
    host.reap_ended()
    assert list(host.selector.get_map()) == [host.control.fileno()]
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped
    assert (tmp_path / "worker.log").read_text().count("FileNotFoundError") == 2  # chdir to a missing folder


def test_the_host_says_hello_imports_its_modules_between_requests_and_ends_with_the_daemons_end(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUNELOG_WARM_MODULES", "json,no_such_module_for_tunelog")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.settimeout(30)
    result: list[int] = []
    host = threading.Thread(target=lambda: result.append(zygote.main([str(theirs.detach())])))
    host.start()
    try:
        assert answer(ours) == {"hello": os.getpid()}
        warm = answer(ours)
        assert warm == {"warm": ["json"], "seconds": warm["seconds"],
                        "failed": {"no_such_module_for_tunelog": "ModuleNotFoundError: No module named "
                                                                 "'no_such_module_for_tunelog'"}}
        assert 0 <= warm["seconds"] < 30 and warm["seconds"] == round(warm["seconds"], 3)
        ask(ours, b'{"id": 9}', [])  # served after the imports
        assert answer(ours) == {"refused": 9, "error": "ValueError: expected 2 descriptors, got 0"}
    finally:
        ours.close()
        host.join(timeout=30)
    assert result == [0]


def messages(channel: socket.socket) -> list[Message]:
    """Every frame a worker sent on its channel (4-byte big-endian length, then msgpack)."""
    channel.settimeout(60)
    data = b""
    while chunk := channel.recv(1 << 16):
        data += chunk
    found = []
    while data:
        size = int.from_bytes(data[:4], "big")
        found.append(msgspec.msgpack.decode(data[4:4 + size], type=Message))
        data = data[4 + size:]
    return found


def test_a_forked_child_becomes_the_jobs_worker_in_its_folder_session_and_environment(
        pair: tuple[socket.socket, Host], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stderr_is_fd_2(monkeypatch)
    ours, host = pair
    env = make_env(tmp_path)
    folder = env.paths.jobs / "j1"
    folder.mkdir(parents=True)
    spec = WorkerSpec(job_id="j1", plugin="testops", operation="process", params={}, inputs={},
                      code_dir=str(env.paths.plugin_code / env.code_hash), artifacts=str(env.paths.artifacts),
                      workdir=str(folder / "work"))
    (folder / "job.json").write_bytes(msgspec.json.encode(spec))
    numpy.random.randint(2)  # numpy seeds its global generator at first use: the host's is in use
    seen = []
    for req_id in (1, 2):
        channel, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with open(folder / "worker.log", "ab") as stderr:
            ask(ours, request(req_id, folder, env={**os.environ, "TUNELOG_JOB_ID": "j1"}),  # as a job's
                [child_end.fileno(), stderr.fileno()])
            child_end.close()
        assert host.serve(timeout=5)
        pid = answer(ours)["pid"]
        sent = messages(channel)
        channel.close()
        deadline = time.monotonic() + 30
        while host.serve(timeout=1) and not select.select([ours], [], [], 0)[0] and time.monotonic() < deadline:
            pass
        assert answer(ours) == {"exited": pid, "status": 0}
        result = [m.body for m in sent if m.kind == "result"]
        assert result, (sent, (folder / "worker.log").read_text())
        seen.append(result[0]["outputs"]["seen"])
    for one in seen:
        assert (one["ppid"], one["job_id"], one["cwd"], one["pgid_is_pid"]) == (os.getpid(), "j1", str(folder), True)
    assert seen[0]["numpy_draw"] != seen[1]["numpy_draw"]  # reseeded in each child
    assert (folder / "worker.log").read_text().count(f"worker forked from the warm worker host {os.getpid()}") == 2
