"""The raw-socket HTTP client: body framing, SSE parsing, retry and reconnect.

Dropped connections cannot be provoked on demand from the real daemon, so the retry and
reconnect tests talk to a scripted peer on a real Unix socket (the transport boundary); the
idempotency the retry relies on is checked against the real daemon.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Daemon, needs_testops
from tunelog.frontends.cli.client import Client, ConnectionLost, DaemonDown, _body, _lines, _sse_frames

Handler = Callable[[socket.socket, bytes], None]


def test_chunked_and_content_length_bodies() -> None:
    chunked = io.BytesIO(b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n")
    assert b"".join(_body(chunked, {"transfer-encoding": "chunked"})) == b"hello world"
    assert b"".join(_body(io.BytesIO(b"abcdef"), {"content-length": "3"})) == b"abc"
    with pytest.raises(ValueError):
        b"".join(_body(io.BytesIO(b"ab"), {"content-length": "3"}))
    with pytest.raises(ValueError):
        b"".join(_body(io.BytesIO(b"5\r\nhel"), {"transfer-encoding": "chunked"}))


def test_sse_frames_across_chunk_boundaries() -> None:
    chunks = [b": following\n\nid: 7\nevent: job-lo", b"g\ndata: {\"a\":", b" 1}\n\n: keepalive\n\n",
              b"id: 8\r\nevent: x\r\ndata: one\r\ndata: two\r\n\r\n"]
    frames = list(_sse_frames(_lines(iter(chunks))))
    assert frames == [(7, "job-log", '{"a": 1}'), (8, "x", "one\ntwo")]


def test_missing_socket_is_daemon_down(tmp_path: Path) -> None:
    with pytest.raises(DaemonDown) as info:
        Client(str(tmp_path / "none.sock")).get("/v1/status")
    assert info.value.reason == "no socket"


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Callable[[list[Handler]], tuple[str, list[bytes]]]]:
    """A scripted server: the n-th connection is answered by the n-th handler; requests are recorded."""
    sock_path = str(tmp_path / "peer.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(8)
    seen: list[bytes] = []
    threads: list[threading.Thread] = []

    def start(handlers: list[Handler]) -> tuple[str, list[bytes]]:
        def serve() -> None:
            for handle in handlers:
                conn, _ = server.accept()
                with conn:
                    request = _read_request(conn)
                    seen.append(request)
                    handle(conn, request)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        threads.append(t)
        return sock_path, seen

    yield start
    server.close()
    for t in threads:
        t.join(timeout=5)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
                  0)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def hang_up(conn: socket.socket, request: bytes) -> None:
    """Close without a reply, as a daemon killed after its commit would."""


def reply_json(status: int, body: object) -> Handler:
    def handle(conn: socket.socket, request: bytes) -> None:
        data = json.dumps(body).encode()
        conn.sendall(b"HTTP/1.1 %d X\r\ncontent-length: %d\r\ncontent-type: application/json\r\n\r\n%s"
                     % (status, len(data), data))
    return handle


def _body_json(request: bytes) -> dict[str, object]:
    return json.loads(request.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


def test_post_retries_once_with_the_same_command_id(peer: Callable[[list[Handler]], tuple[str, list[bytes]]]) -> None:
    sock, seen = peer([hang_up, reply_json(201, {"job": {"job_id": "j1"}})])
    assert Client(sock).post("/v1/jobs", {"plugin": "p"}) == {"job": {"job_id": "j1"}}
    first, second = (_body_json(r) for r in seen)
    assert first == second and first["plugin"] == "p" and len(str(first["command_id"])) == 32


def test_post_gives_up_after_one_retry(peer: Callable[[list[Handler]], tuple[str, list[bytes]]]) -> None:
    sock, seen = peer([hang_up, hang_up])
    with pytest.raises(ConnectionLost):
        Client(sock).post("/v1/jobs", {})
    assert len(seen) == 2


def sse(*frames: bytes) -> Handler:
    def handle(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for frame in frames:
            conn.sendall(b"%x\r\n%s\r\n" % (len(frame), frame))
        # then drop the connection mid-stream, without the final 0-chunk
    return handle


def test_events_reconnect_with_last_event_id(peer: Callable[[list[Handler]], tuple[str, list[bytes]]]) -> None:
    sock, seen = peer([sse(b"id: 1\nevent: a\ndata: {}\n\n", b"id: 2\nevent: b\ndata: {}\n\n"),
                       sse(b"id: 3\nevent: c\ndata: {}\n\n")])
    got = []
    for ev in Client(sock).events(query={"after": 0, "stream": "s"}, reconnect_s=5):
        got.append((ev.id, ev.event))
        if ev.id == 3:
            break
    assert got == [(1, "a"), (2, "b"), (3, "c")]
    assert b"Last-Event-ID" not in seen[0] and b"\r\nLast-Event-ID: 2\r\n" in seen[1]
    assert b"GET /v1/events?after=0&stream=s&follow=1 HTTP/1.1" in seen[1]


@needs_testops
def test_a_repeated_command_is_answered_from_the_log(daemon: Daemon) -> None:
    """What the retry relies on: the same command_id twice gives one job, not two."""
    client = Client(daemon.socket)
    body = {"plugin": "testops", "operation": "sleep", "params": {"seconds": 0}, "command_id": "cli-test-repeat"}
    first = json.loads(client.request("POST", "/v1/jobs", body=body).body)["job"]
    second = json.loads(client.request("POST", "/v1/jobs", body=body).body)["job"]
    assert first["job_id"] == second["job_id"]
    assert sum(j["job_id"] == first["job_id"] for j in daemon.json("jobs", "list")) == 1
