"""The API's strict readers and its one error envelope at their exact edges: integers from query
strings and headers, request bodies (size, JSON, depth, types, the decoded body kept for the
route), and the answers to Starlette's own HTTP errors and to an error no route caught.
The readers run behind a small Starlette app with the daemon's error handlers (as the daemon's
routes use them); test_api.py pins the envelope through the daemon's own app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tunelog.daemon.api import errors
from tunelog.daemon.api.errors import MAX_BODY, MAX_DEPTH, MAX_POSITION, int_field, parse_int, read_body
from tunelog.events.errors import ConflictError


class Inner(msgspec.Struct):
    count: int


class Body(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    inner: Inner | None = None
    params: dict[str, int] = {}
    nested: Any = None


async def echo(request: Request) -> Response:
    first = await read_body(request, Body)
    again = await read_body(request, Body)  # the idempotency check and the route both read it
    return JSONResponse({"name": first.name, "params": first.params, "same": first is again})


async def raise_http(request: Request) -> Response:
    raise HTTPException(int(request.path_params["status"]), "teapot trouble")


async def conflict(request: Request) -> Response:
    raise ConflictError("already there", hint="pick another")


async def bug(request: Request) -> Response:
    raise KeyError("lost")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/http/{status}", raise_http),
                            Route("/conflict", conflict), Route("/bug", bug)], exception_handlers=errors.HANDLERS)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("raw", "value"), [
    ("0", 0), ("7", 7), ("-0", 0), (str(MAX_POSITION), MAX_POSITION), ("0009", 9), ("9" * 19, None),
    ("", None), ("-", None), ("+5", None), (" 5", None), ("5 ", None), ("1_0", None), ("\u00b2", None),
    ("\u0663", None), ("--5", None), ("5-", None), ("1e3", None), ("-1", None), (str(MAX_POSITION + 1), None),
])
def test_parse_int_takes_ascii_digits_in_range_only(raw: str, value: int | None) -> None:
    assert parse_int(raw) == value


def test_parse_int_bounds_are_inclusive_and_a_minus_sign_reaches_negative_bounds() -> None:
    assert [parse_int(str(v), low=3, high=5) for v in (2, 3, 4, 5, 6)] == [None, 3, 4, 5, None]
    assert parse_int("-4", low=-5, high=0) == -4 and parse_int("-6", low=-5, high=0) is None
    assert parse_int("1" * 19, high=MAX_POSITION) == int("1" * 19)  # 19 digits are allowed, 20 are not
    assert parse_int("1" + "0" * 19, high=10**30) is None
    assert parse_int("-" + "1" * 19, low=-(10**20)) == -int("1" * 19)


def test_int_field_gives_the_default_for_nothing_and_a_problem_naming_the_field() -> None:
    problems: list[tuple[str, str]] = []
    assert int_field(None, "after", problems, default=11) == 11 and problems == []
    assert int_field("12", "after", problems, default=11) == 12 and problems == []
    assert int_field("x" * 50, "after", problems, default=11, low=2, high=9) == 11
    assert int_field("10", "limit", problems, default=3, low=2, high=9) == 3
    assert problems == [("after", f"must be an integer from 2 to 9, got {'x' * 40!r}"),
                        ("limit", "must be an integer from 2 to 9, got '10'")]
    problems.clear()
    assert int_field("-1", "after", problems, default=0) == 0
    assert problems == [("after", f"must be an integer from 0 to {MAX_POSITION}, got '-1'")]


def test_a_body_is_decoded_once_and_kept_for_the_route(client: TestClient) -> None:
    r = client.post("/echo", json={"name": "a", "params": {"x": 1}})
    assert r.status_code == 200 and r.json() == {"name": "a", "params": {"x": 1}, "same": True}


def test_an_empty_body_is_an_empty_object(client: TestClient) -> None:
    assert error(client.post("/echo", content=b""), 422)["problems"] == [
        {"where": "body", "message": "Object missing required field `name`"}]


def test_a_mistyped_field_is_named_by_its_path(client: TestClient) -> None:
    err = error(client.post("/echo", json={"name": "a", "inner": {"count": "high"}}), 422)
    assert err == {"code": "invalid", "message": "the request body is invalid",
                   "problems": [{"where": "inner.count", "message": "Expected `int`, got `str`"}]}
    assert error(client.post("/echo", json=[1]), 422)["problems"] == [
        {"where": "body", "message": "Expected `object`, got `array`"}]
    assert error(client.post("/echo", json={"name": "a", "extra": 1}), 422)["problems"] == [
        {"where": "body", "message": "Object contains unknown field `extra`"}]


def test_malformed_json_or_utf8_is_refused(client: TestClient) -> None:
    err = error(client.post("/echo", content=b"{not json"), 422)
    assert err["code"] == "invalid" and err["message"].startswith("the request body is not valid UTF-8 JSON: ")
    assert "problems" not in err
    err = error(client.post("/echo", content=b'{"name": "\xff"}'), 422)
    assert err["message"].startswith("the request body is not valid UTF-8 JSON: ")


def nested(depth: int) -> bytes:
    """A body whose `nested` field holds arrays so that the whole body nests `depth` levels."""
    return b'{"name": "a", "nested": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_the_deepest_body_accepted_and_one_level_more(client: TestClient) -> None:
    assert client.post("/echo", content=nested(MAX_DEPTH)).status_code == 200
    err = error(client.post("/echo", content=nested(MAX_DEPTH + 1)), 422)
    assert err == {"code": "invalid", "message": f"the request body is nested deeper than {MAX_DEPTH} levels"}
    err = error(client.post("/echo", content=b"[" * 100_000 + b"]" * 100_000), 422)  # past the JSON parser's limit
    assert err == {"code": "invalid", "message": f"the request body is nested deeper than {MAX_DEPTH} levels"}


def test_depth_counts_objects_and_arrays_alike() -> None:
    assert [errors._depth(v) for v in (1, "x", None, [], {}, [[]], {"a": {"b": []}}, [1, {"a": [[2]]}])] == [
        0, 0, 0, 1, 1, 2, 3, 4]
    deep: Any = []
    for _ in range(500):
        deep = [deep, {"k": 1}]
    assert errors._depth(deep) == MAX_DEPTH + 1  # stops counting past the limit, without recursion


def test_the_largest_body_passes_and_one_byte_more_is_a_413(client: TestClient) -> None:
    head = b'{"name": "'
    tail = b'"}'
    largest = head + b"a" * (MAX_BODY - len(head) - len(tail)) + tail
    assert client.post("/echo", content=largest).status_code == 200
    too_large = head + b"a" * (MAX_BODY + 1 - len(head) - len(tail)) + tail
    assert error(client.post("/echo", content=too_large), 413) == {
        "code": "too_large", "message": f"request body is larger than {MAX_BODY} bytes"}


def test_a_body_without_a_length_is_counted_as_it_arrives(client: TestClient) -> None:
    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"name": "'
        sent = 10
        while sent < total - 2:
            piece = min(64 << 10, total - 2 - sent)
            yield b"a" * piece
            sent += piece
        yield b'"}'

    def post(total: int) -> Any:
        return client.post("/echo", content=chunks(total))  # sent chunked: no content-length

    assert post(MAX_BODY).status_code == 200
    assert error(post(MAX_BODY + 1), 413)["message"] == f"request body is larger than {MAX_BODY} bytes"


@pytest.mark.parametrize("length", ["abc", "-1", str(MAX_BODY + 1), "1" * 30])
def test_a_content_length_that_is_no_size_or_too_large_is_a_413(client: TestClient, length: str) -> None:
    r = client.post("/echo", content=b'{"name": "a"}', headers={"content-length": length})
    assert error(r, 413)["code"] == "too_large"


def test_starlette_errors_get_the_envelope_with_their_code(client: TestClient) -> None:
    assert error(client.get("/nowhere"), 404) == {"code": "not_found", "message": "no route GET /nowhere"}
    assert error(client.delete("/echo"), 405) == {"code": "method_not_allowed", "message": "DELETE is not allowed on /echo"}
    assert error(client.get("/http/400"), 400) == {"code": "bad_request", "message": "teapot trouble"}
    assert error(client.get("/http/413"), 413) == {"code": "too_large", "message": "teapot trouble"}
    assert error(client.get("/http/418"), 418) == {"code": "error", "message": "teapot trouble"}
    assert error(client.get("/http/404"), 404)["message"] == "no route GET /http/404"


def test_our_errors_answer_with_their_status_and_dict(client: TestClient) -> None:
    assert error(client.get("/conflict"), 409) == {"code": "conflict", "message": "already there", "hint": "pick another"}


def test_an_error_no_route_caught_is_a_500_naming_it(client: TestClient) -> None:
    assert error(client.get("/bug"), 500) == {
        "code": "internal", "message": "internal error: KeyError: 'lost'",
        "hint": "see the daemon log (tunectl daemon status shows where it is)"}
