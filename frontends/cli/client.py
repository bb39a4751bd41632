"""A tiny HTTP/1.1 client over the daemon's Unix socket, standard library only.

httpx costs ~110 ms per CLI call (~72 ms to import, ~21 ms to create a client: it loads the TLS
bundle even for a Unix socket); a raw AF_UNIX socket costs a few. One connection per request (`Connection: close`). Bodies come either with
Content-Length or chunked (uvicorn streams server-sent events chunked).

Commands (POST) carry a fresh `command_id` and are retried once with the same id after a
connection error: the daemon answers a repeated command from its log instead of appending twice.
"""

from __future__ import annotations

import json
import socket
import time
from collections import namedtuple

TYPE_CHECKING = False  # typing itself costs ~3 ms: imported for type checkers only
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

TIMEOUT_S = 60.0
"""Longest wait for one reply (a plugin reload imports plugins in throwaway processes)."""
SSE_IDLE_S = 45.0
"""The daemon sends a keepalive every 15 s; this much silence means the stream is dead."""


class DaemonDown(Exception):
    """Nothing answers on the socket: the daemon is not running (or its socket is stale)."""

    def __init__(self, socket_path: str, reason: str):
        super().__init__(f"{reason} ({socket_path})")
        self.socket_path = socket_path
        self.reason = reason


class ConnectionLost(Exception):
    """The connection broke after it was made (reset, early close, truncated reply, timeout)."""


class ApiError(Exception):
    """The daemon answered with its JSON error envelope `{"error": {code, message, hint?, problems?}}`."""

    def __init__(self, status: int, error: dict[str, Any]):
        super().__init__(error.get("message", f"HTTP {status}"))
        self.status = status
        self.error = error
        self.code: str = error.get("code", "error")


Response = namedtuple("Response", "status headers body")
"""One HTTP reply: status (int), headers (dict, lower-case names), body (bytes)."""

SseEvent = namedtuple("SseEvent", "id event data")
"""One server-sent event: id (the log position, int or None), event (the event type), data (JSON text)."""


class Client:
    """Talks to one daemon socket."""

    def __init__(self, socket_path: str, *, timeout: float = TIMEOUT_S):
        self.socket_path = str(socket_path)
        self.timeout = timeout

    # -- plumbing -------------------------------------------------------------------------

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
        except FileNotFoundError:
            sock.close()
            raise DaemonDown(self.socket_path, "no socket") from None
        except ConnectionRefusedError:
            sock.close()
            raise DaemonDown(self.socket_path, "nothing listens on the socket (stale socket file)") from None
        except OSError as exc:
            sock.close()
            raise DaemonDown(self.socket_path, f"cannot connect: {exc.strerror or exc}") from None
        return sock

    def _open(self, method: str, target: str, body: bytes | None, headers: dict[str, str],
              timeout: float) -> tuple[socket.socket, BinaryIO, int, dict[str, str]]:
        """Send a request and read the status line and headers; the body is left to read."""
        sock = self._connect(timeout)
        try:
            lines = [f"{method} {target} HTTP/1.1", "Host: tunelog", "Connection: close",
                     *(f"{k}: {v}" for k, v in headers.items())]
            if body is not None:
                lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
            f: BinaryIO = sock.makefile("rb")
            status = _status_line(f.readline())
            return sock, f, status, _headers(f)
        except (OSError, ValueError) as exc:
            sock.close()
            raise ConnectionLost(f"{method} {target}: {exc or type(exc).__name__}") from exc

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                body: Any = None) -> Response:
        """One attempt: send, read the whole reply. Raises DaemonDown or ConnectionLost."""
        data = None if body is None else json.dumps(body).encode()
        sock, f, status, headers = self._open(method, _target(path, query), data,
                                              {"Accept": "application/json"}, self.timeout)
        try:
            return Response(status, headers, b"".join(_body(f, headers)))
        except (OSError, ValueError) as exc:
            raise ConnectionLost(f"{method} {path}: reply cut short ({exc or type(exc).__name__})") from exc
        finally:
            f.close()
            sock.close()

    # -- the calls the commands make ------------------------------------------------------

    def get(self, path: str, **query: Any) -> Any:
        """GET a JSON resource; raises ApiError on an error envelope."""
        return _decoded(self.request("GET", path, query=query))

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send a command with a fresh `command_id`; retried once, same id, if the connection breaks."""
        import uuid  # not on the light status path

        body = {**(body or {}), "command_id": uuid.uuid4().hex}
        try:
            return _decoded(self.request("POST", path, body=body))
        except ConnectionLost:
            time.sleep(0.2)
            return _decoded(self.request("POST", path, body=body))

    def ask(self, path: str, body: dict[str, Any]) -> Any:
        """POST a request that changes nothing (e.g. a validation): no `command_id`, no retry."""
        return _decoded(self.request("POST", path, body=body))

    def events(self, *, query: dict[str, Any], last_id: int | None = None, reconnect_s: float = 10.0,
               until: float | None = None) -> Iterator[SseEvent]:
        """Follow `GET /v1/events?follow=1` live, reconnecting with Last-Event-ID after a drop.

        Stops (returns) when the monotonic clock passes `until`. Gives up with DaemonDown or
        ConnectionLost when no connection can be made for `reconnect_s` seconds after a drop.
        """
        lost_since: float | None = None
        connected = False
        while until is None or time.monotonic() < until:
            try:
                for ev in self._sse_once(query, last_id, until):
                    connected, lost_since = True, None
                    if ev.id is not None:
                        last_id = ev.id
                    yield ev
                if until is not None and time.monotonic() >= until:
                    return
                raise ConnectionLost("the event stream ended")
            except (DaemonDown, ConnectionLost):
                if not connected:
                    raise
                now = time.monotonic()
                lost_since = lost_since or now
                if now - lost_since >= reconnect_s:
                    raise
                time.sleep(0.25)

    def _sse_once(self, query: dict[str, Any], last_id: int | None, until: float | None) -> Iterator[SseEvent]:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        sock, f, status, head = self._open("GET", _target("/v1/events", {**query, "follow": 1}), None,
                                           headers, _idle_timeout(until))
        try:
            if status >= 300:
                _decoded(Response(status, head, b"".join(_body(f, head))))
            yield from _sse_frames(_lines(_body(f, head, before=lambda: sock.settimeout(_idle_timeout(until)))))
        except TimeoutError:
            if until is None or time.monotonic() < until:
                raise ConnectionLost("no data or keepalive from the daemon") from None
        except (OSError, ValueError) as exc:
            raise ConnectionLost(f"event stream broken: {exc or type(exc).__name__}") from exc
        finally:
            f.close()
            sock.close()


def _idle_timeout(until: float | None) -> float:
    if until is None:
        return SSE_IDLE_S
    return max(0.01, min(SSE_IDLE_S, until - time.monotonic()))


def _target(path: str, query: dict[str, Any] | None) -> str:
    """Path plus query string; list values repeat the key, None values are left out."""
    items = [(k, v) for k, v in (query or {}).items() if v is not None and v != [] and v != ()]
    if not items:
        return path
    from urllib.parse import urlencode  # only paths with a query pay for it

    return path + "?" + urlencode(items, doseq=True)


def _status_line(line: bytes) -> int:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP reply: {line[:80]!r}")
    return int(parts[1])


def _headers(f: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    while True:
        line = f.readline()
        if not line:
            raise ValueError("connection closed inside the headers")
        if line in (b"\r\n", b"\n"):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


def _body(f: BinaryIO, headers: dict[str, str], before: Any = None) -> Iterator[bytes]:
    """The body as it arrives: chunked, Content-Length, or until the server closes."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            if before is not None:
                before()
            size_line = f.readline()
            if not size_line:
                raise ValueError("connection closed inside a chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return
            chunk = f.read(size)
            if len(chunk) < size or f.readline() not in (b"\r\n", b"\n"):
                raise ValueError("truncated chunk")
            yield chunk
    elif "content-length" in headers:
        size = int(headers["content-length"])
        data = f.read(size)
        if len(data) < size:
            raise ValueError(f"got {len(data)} of {size} bytes")
        yield data
    else:
        yield f.read()


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Split a byte stream into text lines (LF or CRLF), across chunk boundaries."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.rstrip(b"\r").decode("utf-8")
    if pending:
        yield pending.rstrip(b"\r").decode("utf-8")


def _sse_frames(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Parse the event-stream format: `id:`, `event:`, `data:` fields; comments start with `:`."""
    ev_id: int | None = None
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield SseEvent(ev_id, name, "\n".join(data))
            name, data = "message", list[str]()
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id" and value.isdigit():
            ev_id = int(value)


def _decoded(resp: Response) -> Any:
    """The JSON body of a success, or ApiError carrying the daemon's error envelope."""
    try:
        payload = json.loads(resp.body) if resp.body else None
    except ValueError:
        payload = None
    if resp.status >= 400:
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            error = {"code": "error", "message": f"HTTP {resp.status}: {resp.body[:200].decode('utf-8', 'replace')}"}
        raise ApiError(resp.status, error)
    if payload is None and resp.body:
        raise ApiError(resp.status, {"code": "error", "message": "the daemon sent a reply that is not JSON"})
    return payload
