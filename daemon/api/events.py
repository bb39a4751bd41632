"""Reading the log: a page of events, or a server-sent-event stream that follows it live.

Following has no gap: the stream reads history from the requested position, then waits for the
writer's notification and reads again from the last position it sent. A reconnecting client
passes `Last-Event-ID` (the last position it saw) and continues exactly after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tunelog.daemon.api.errors import int_field
from tunelog.daemon.services import Services
from tunelog.events.base import event_types
from tunelog.events.errors import ValidationError

PAGE = 500
KEEPALIVE_S = 15.0
_json = msgspec.json.Encoder()


class Query(msgspec.Struct, frozen=True):
    after: int
    limit: int
    stream: str | None
    types: tuple[str, ...]
    follow: bool


def parse_query(request: Request) -> Query:
    """Validate the query string; every problem at once. A position past the head is no error
    (nothing comes after it yet); one past what SQLite can store is."""
    q = request.query_params
    problems: list[tuple[str, str]] = []
    after = int_field(q.get("after"), "after", problems, default=0)
    after = int_field(request.headers.get("last-event-id"), "Last-Event-ID", problems, default=after)
    limit = int_field(q.get("limit"), "limit", problems, default=PAGE, low=1, high=10_000)
    types = tuple(t for raw in q.getlist("type") for t in raw.split(",") if t)
    known = event_types()
    problems += [("type", f"unknown event type {t[:40]!r}") for t in types if t not in known]
    follow = q.get("follow", "0")
    if follow not in ("0", "1", "true", "false"):
        problems.append(("follow", f"must be 0 or 1, got {follow[:40]!r}"))
    if problems:
        raise ValidationError.collect("invalid event query", problems,
                                      hint="types are listed by GET /v1/event-types")
    return Query(after=after, limit=limit, stream=q.get("stream"), types=types, follow=follow in ("1", "true"))


async def list_events(request: Request) -> Response:
    s: Services = request.app.state.services
    query = parse_query(request)
    if query.follow:
        return StreamingResponse(follow(s, query), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    envs = s.store.read(after=query.after, limit=query.limit, stream=query.stream, types=query.types or None)
    body = {"events": envs, "head": s.store.head(),
            "next_after": envs[-1].position if len(envs) == query.limit else s.store.head()}
    return Response(_json.encode(body), media_type="application/json")


async def follow(s: Services, query: Query) -> AsyncIterator[bytes]:
    """History from `query.after`, then live events, as SSE frames."""
    position = query.after
    yield b": following\n\n"
    while True:
        head = s.store.head()
        envs = s.store.read(after=position, limit=PAGE, stream=query.stream, types=query.types or None)
        if envs:
            yield b"".join(b"id: %d\nevent: %s\ndata: %s\n\n" % (e.position, e.type.encode(), _json.encode(e))
                           for e in envs)
        # A full page may have more behind it; otherwise everything up to `head` was seen
        # (reads and appends share one thread, so nothing commits between the two calls).
        position = envs[-1].position if len(envs) == PAGE else max(head, position)
        if len(envs) < PAGE:
            if s.notifier.closed:  # the daemon stops: all it had is sent; the client resumes from its last id
                return
            await s.notifier.wait(KEEPALIVE_S)
            if s.store.head() == position and not s.notifier.closed:
                yield b": keepalive\n\n"


async def list_event_types(request: Request) -> Response:
    types = event_types()
    return Response(_json.encode({"types": {tag: (cls.__doc__ or "").strip().splitlines()[0]
                                            for tag, cls in sorted(types.items())}}),
                    media_type="application/json")


routes = [
    Route("/v1/events", list_events, methods=["GET"]),
    Route("/v1/event-types", list_event_types, methods=["GET"]),
]
