"""The real daemon (uvicorn on its Unix socket) under hostile requests: malformed numbers, ids and
bodies, oversized request lines, headers and bodies, clients that hang up, and a property-based
walk over every route and method. No 5xx, no dropped connection, the daemon stays up, and a 4xx
never moves the log head."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon.daemon_proc import Daemon, running
from tunelog.daemon.api import events, jobs, plugins, reproduce, runs, system, timetravel

ROUTES = [(r.path, sorted(r.methods or ())) for mod in (system, events, jobs, plugins, reproduce, runs, timetravel)
          for r in mod.routes]
BIG = [str(1 << 63), "9" * 30, "²", "--5", "-1", "+5", " 5", "1_0", "0x10", "", "٣"]


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running(tmp_path_factory.mktemp("home")) as daemon:
        assert daemon.post("/v1/workflows", json={"name": "w", "graph": {
            "nodes": {"a": {"op": "testops.outputs"}}}}).status_code == 201
        yield daemon
        assert daemon.proc is not None and daemon.proc.poll() is None, "the daemon died"
        log = daemon.paths.log_file.read_text()
        assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def head(d: Daemon) -> int:
    return int(d.get("/v1/status").json()["head"])


def raw(d: Daemon, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes on the daemon's socket and read until it closes (or `timeout`)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(d.paths.socket))
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and b"connection: close" not in data.lower():
                break
        return data


HEADER_VALUES = [b for b in BIG if b.isascii() and b == b.strip()]
"""A header value is ASCII without surrounding blanks; the other values go in the query string only."""


@pytest.mark.parametrize(("where", "value"), [(w, v) for w in ("after", "limit") for v in BIG]
                         + [("Last-Event-ID", v) for v in HEADER_VALUES])
def test_a_malformed_or_out_of_range_position_is_a_4xx_naming_the_field(d: Daemon, where: str, value: str) -> None:
    kw: dict[str, Any] = ({"headers": {"Last-Event-ID": value}} if where == "Last-Event-ID"
                          else {"params": {where: value}})
    for follow in ("0", "1"):
        r = d.get("/v1/events", params={**kw.get("params", {}), "follow": follow}, headers=kw.get("headers"))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["problems"][0]["where"] == where


def test_a_position_past_the_head_is_an_empty_page_and_a_quiet_stream(d: Daemon) -> None:
    top = str((1 << 63) - 1)
    r = d.get("/v1/events", params={"after": top})
    assert r.status_code == 200 and r.json()["events"] == []
    with d.client() as c, c.stream("GET", "/v1/events", params={"after": top, "follow": "1"}) as stream:
        assert stream.status_code == 200
        first = next(stream.iter_bytes())
        assert first.startswith(b": following")
        d.post("/v1/models", json={"name": "nudge", "ref": "/nowhere"})  # wakes the stream: it reads past the head
    assert d.get("/v1/status").status_code == 200  # the module fixture checks the log for errors at the end


@pytest.mark.parametrize("version", ["²", "0", "2", "-1", "9" * 30, "1.0", "x"])
def test_a_bad_workflow_version_is_a_4xx(d: Daemon, version: str) -> None:
    r = d.get("/v1/workflows/w", params={"version": version})
    assert r.status_code in (404, 422), r.text
    assert d.post("/v1/runs", json={"workflow": f"w@{version}"}).status_code in (404, 422)


@pytest.mark.parametrize("body", [b"\xff\xfe\x00", b'{"name": "\xff"}', b"[" * 100_000, b'{"a":' * 65 + b"1" + b"}" * 65,
                                  b"not json", b"{"])
def test_a_body_that_is_not_utf8_json_or_too_deep_is_a_4xx_and_appends_nothing(d: Daemon, body: bytes) -> None:
    before = head(d)
    for path in ("/v1/models", "/v1/jobs", "/v1/runs", "/v1/workflows"):
        r = d.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
    assert head(d) == before


def test_oversized_request_lines_headers_and_bodies_get_a_clear_4xx(d: Daemon) -> None:
    before = head(d)
    r = d.get("/v1/runs/" + "a" * 9000)
    assert r.status_code == 414 and "request target" in r.json()["error"]["message"]
    r = d.get("/v1/status", headers={f"x-pad-{i}": "p" * 1000 for i in range(40)})
    assert r.status_code == 431 and "headers" in r.json()["error"]["message"]
    r = d.post("/v1/models", content=b'{"name": "' + b"x" * (2 << 20) + b'"}')
    assert r.status_code == 413
    chunked = d.post("/v1/models", content=iter([b'{"name": "', b"x" * (2 << 20), b'"}']))
    assert chunked.status_code == 413
    assert head(d) == before


def test_a_client_that_hangs_up_is_logged_at_info_without_a_traceback(d: Daemon) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:  # mid-request: half a body, then gone
        s.connect(str(d.paths.socket))
        s.sendall(b"POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"name\": ")
    with d.client() as c, c.stream("GET", "/v1/events", params={"follow": "1"}) as stream:  # mid-stream
        next(stream.iter_bytes())
    d.post("/v1/models", json={"name": "after-hangup", "ref": "/nowhere"})  # gives the stream something to send
    deadline = time.monotonic() + 10
    while "the client went away" not in d.paths.log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = d.paths.log_file.read_text()
    assert " INFO tunelog.api: the client went away during POST '/v1/models'" in log
    assert "Traceback" not in log and " ERROR " not in log


def test_control_characters_and_non_latin1_in_the_path_are_a_4xx(d: Daemon) -> None:
    for target in (b"/v1/runs/%0d%0aX", b"/v1/runs/%00", b"/v1/runs/\xc3\xa9", b"/v1/jobs/%E6%A8%A1",
                   b"/v1/workflows/%ff", b"/v1/runs/a\tb"):
        answer = raw(d, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer[:12] in (b"HTTP/1.1 400", b"HTTP/1.1 404", b"HTTP/1.1 422"), (target, answer[:200])


# -- the property-based walk -------------------------------------------------------------------

QUERY_NAMES = ["after", "limit", "follow", "type", "stream", "state", "version", "at", "tables", "a", "b",
               "against", "rtol", "atol", "token"]
texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(BIG + ["1", "0", "r", "testops"])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                           max_leaves=8)
bodies = (st.none() | st.binary(max_size=40) | json_values.map(lambda v: httpx.Request("POST", "/", json=v).content)
          | st.fixed_dictionaries({}, optional={k: json_values for k in (
              "name", "ref", "graph", "workflow", "plugin", "operation", "params", "inputs", "command_id", "node",
              "step", "set", "reason", "verify", "label", "force")}).map(lambda v: httpx.Request("POST", "/", json=v).content))
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], dict[str, str], bytes | None]:
    # Not /v1/daemon/stop: a valid body stops the daemon (its retries are walked in test_api_idempotency).
    path, methods = draw(st.sampled_from([r for r in ROUTES if r[0] != "/v1/daemon/stop"]))
    method = draw(st.sampled_from(methods) | st.sampled_from(METHODS))
    for name in ("run_id", "job_id", "name"):
        path = path.replace("{" + name + "}", quote(draw(texts) or "x", safe=""))
    query = draw(st.dictionaries(st.sampled_from(QUERY_NAMES), texts, max_size=3))
    headers = draw(st.dictionaries(st.just("last-event-id"),
                                   st.sampled_from([*HEADER_VALUES, "3"]),
                                   max_size=1))
    return method, path, query, headers, draw(bodies)


@settings(max_examples=100, deadline=timedelta(seconds=10), suppress_health_check=[HealthCheck.too_slow])
@given(request=requests())
def test_no_route_and_method_answers_5xx_or_drops_the_connection(d: Daemon, request: tuple[Any, ...]) -> None:
    method, path, query, headers, body = request
    before = head(d)
    with d.client(timeout=10) as c, c.stream(method, path, params=query, headers=headers, content=body) as r:
        assert r.status_code < 500, (method, path, query, r.read())
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            next(r.iter_bytes())  # a live stream: its first frame came; hang up
        else:
            r.read()
        if r.status_code >= 400:
            assert head(d) == before, (method, path, query, body)
