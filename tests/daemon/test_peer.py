"""Who may talk to the daemon, in process: the daemon's socket and its uvicorn protocol with the
peer check, serving on a real Unix socket, and clients of this user and of another one. (The
daemon tests cross the same check in a daemon subprocess, which mutation testing cannot credit.)

A client of another user is a forked child that drops to that user before it connects: only root
can do that, so those checks need root (the kernel reports the uid a peer had when it connected)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import uvicorn

from tunelog.daemon.main import _http_protocol, _Server
from tunelog.daemon.peer import bind_unix_socket, checked_protocol, peer_allowed, peer_uid

pytestmark = pytest.mark.anyio

NOBODY = 65534
REQUEST = b"GET / HTTP/1.1\r\nHost: tunelog\r\n\r\n"
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="connecting as another user needs root")


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


@contextmanager
def shared_folder() -> Iterator[Path]:
    """A folder other users may enter (pytest's tmp_path is owner-only), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="tunelog-peer-"))
    try:
        folder.chmod(0o711)
        yield folder
    finally:
        shutil.rmtree(folder)


@asynccontextmanager
async def serving(sock: socket.socket) -> AsyncIterator[None]:
    """The daemon's uvicorn server with the peer-checked protocol on `sock` while the block runs."""
    server = _Server(uvicorn.Config(hello, http=checked_protocol(_http_protocol()), lifespan="off",
                                    log_config=None, access_log=False))
    with sock:  # the listening socket is the caller's to close (as the daemon does), once served
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(20):
                while not server.started:
                    await anyio.sleep(0.01)
            try:
                yield
            finally:
                server.should_exit = True


@pytest.fixture
def forked() -> Iterator[list[int]]:
    """Pids of the children a test forks: each is reaped, killed first if it still runs, even when the
    test fails early (a test runner that waits for any child of its own must not find them)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def connect_as(uid: int, path: Path, forked: list[int]) -> int:
    """Fork a child that becomes user `uid`, connects to `path` and sends a request; returns the read
    end of a pipe that gets what it read back (`closed` when the server closed unanswered) or its
    error."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; it leaves through os._exit only
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(20)
                s.connect(str(path))
                try:
                    s.sendall(REQUEST)
                    answer = s.recv(100)
                except (BrokenPipeError, ConnectionResetError):  # closed before or with the request unread
                    answer = b""
                os.write(write_end, repr(answer).encode() if answer else b"closed")
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(write_end, f"{type(e).__name__}".encode())
        finally:
            os._exit(0)
    forked.append(pid)
    os.close(write_end)
    return read_end


async def child_said(read_end: int) -> str:
    """What the child wrote, once it has ended."""

    def read_all() -> bytes:
        chunks = []
        while chunk := os.read(read_end, 1000):
            chunks.append(chunk)
        os.close(read_end)
        return b"".join(chunks)

    with anyio.fail_after(30):
        return (await anyio.to_thread.run_sync(read_all)).decode()


async def fetch(path: Path) -> bytes:
    with anyio.fail_after(20):
        async with await anyio.connect_unix(path) as stream:
            await stream.send(REQUEST)
            answer = b""
            while b"hello" not in answer:
                answer += await stream.receive()
            return answer


def test_the_socket_replaces_a_stale_file_is_owner_only_listening_and_non_blocking(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sock"
    path.write_text("left by a daemon that crashed")
    old = os.umask(0)
    try:
        sock = bind_unix_socket(path)
        assert os.umask(old) == 0  # the umask it set for the bind is put back
    finally:
        os.umask(old)
    with sock:
        assert stat.S_ISSOCK(path.lstat().st_mode) and stat.S_IMODE(path.lstat().st_mode) == 0o600
        assert sock.getblocking() is False
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
            conn, _ = sock.accept()
            with conn:
                assert peer_uid(conn) == os.getuid() and peer_allowed(conn)
                assert not peer_allowed(conn, own_uid=os.getuid() + 1)


def test_a_tcp_connection_is_left_to_the_web_ui_s_own_guards() -> None:
    with socket.socket(socket.AF_INET) as tcp:
        assert peer_allowed(tcp, own_uid=os.getuid() + 1)


async def test_a_client_of_this_user_is_served(tmp_path: Path) -> None:
    path = tmp_path / "daemon.sock"
    sock = bind_unix_socket(path)
    async with serving(sock):
        assert (await fetch(path)).startswith(b"HTTP/1.1 200 ")


@needs_root
async def test_a_client_of_another_user_cannot_open_the_socket_and_is_closed_at_once_if_it_can(
        caplog: pytest.LogCaptureFixture, forked: list[int]) -> None:
    with shared_folder() as folder, caplog.at_level(logging.WARNING, logger="tunelog.peer"):
        path = folder / "daemon.sock"
        sock = bind_unix_socket(path)
        assert await child_said(connect_as(NOBODY, path, forked)) == "PermissionError"  # the file is 0600

        path.chmod(0o666)  # a permissive socket (or a copy of its path): the peer check still refuses
        refused = connect_as(NOBODY, path, forked)  # queued in the backlog until the server accepts it
        async with serving(sock):
            assert await child_said(refused) == "closed"
            assert (await fetch(path)).startswith(b"HTTP/1.1 200 ")  # while this user is served
    assert [r.getMessage() for r in caplog.records] == [f"refused a connection from uid {NOBODY}"]


@needs_root
async def test_a_peer_whose_uid_is_past_2_31_is_told_by_its_uid(forked: list[int]) -> None:
    """uid_t is unsigned: a uid from 2**31 up must not read back negative, or a user with such a uid
    would be refused by their own daemon."""
    big = 3_000_000_000
    with shared_folder() as folder:
        path = folder / "daemon.sock"
        with bind_unix_socket(path) as sock:
            path.chmod(0o666)
            child = connect_as(big, path, forked)
            with anyio.fail_after(20):
                await anyio.wait_readable(sock)
            conn, _ = sock.accept()
            with conn:
                assert peer_uid(conn) == big
                assert peer_allowed(conn, own_uid=big) and not peer_allowed(conn)
        assert await child_said(child) == "closed"
