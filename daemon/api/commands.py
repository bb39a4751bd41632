"""Commands with an idempotency key: a retried `command_id` gets the first answer, exactly.

Every mutating route is declared with `command(...)`. Before the route runs, the command id is
looked up (so a retry after a lost reply never meets the route's preconditions: the model it
removed is gone, the run it cancelled has ended). A record holds a fingerprint of the command
(the route, its path parameters and the body with its defaults filled in, canonical JSON): the
same id with another fingerprint is a different command and is refused with 409, naming the one
that used the id. The first 2xx answer is kept with the record, so a retry answers what the first
attempt answered even after later changes (a newer workflow version, a removed model), and a
`daemon stop` retried against a restarted daemon does not stop it again.

The record is written (pending) before the command runs and answered after it. A daemon killed in
between leaves it pending; the retry carries the command out again, and since every event a
command appends is tagged with its id, the store answers those appends from the log instead of
writing them twice. A command refused (4xx) or broken drops its pending record: nothing changed,
so the id is free for a corrected retry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tunelog.daemon.api.errors import read_body
from tunelog.daemon.services import Services
from tunelog.events.errors import ConflictError, ValidationError
from tunelog.store.base import CommandRecord

Handler = Callable[[Request], Awaitable[Response]]
MAX_COMMAND_ID = 200
"""Longest command id accepted (characters)."""
PENDING = 0
"""Status of a record whose command is being carried out (written before it runs)."""


def command(path: str, handler: Handler, body: type[msgspec.Struct]) -> Route:
    """A POST route whose `command_id` makes retries safe (see the module docstring)."""
    kind = f"POST {path}"

    async def idempotent(request: Request) -> Response:
        cmd = await read_body(request, body)
        command_id = getattr(cmd, "command_id", None)
        if command_id is None:
            return await handler(request)
        if not isinstance(command_id, str) or not 0 < len(command_id) <= MAX_COMMAND_ID:
            raise ValidationError.collect("invalid command id", [
                ("command_id", f"a non-empty string of at most {MAX_COMMAND_ID} characters")])
        s: Services = request.app.state.services
        mine = fingerprint(kind, request.path_params, cmd)
        done = s.store.command(command_id)
        if done is None:
            _refuse_a_foreign_id(s, command_id)
            done = s.store.record_command(CommandRecord(command_id=command_id, kind=kind, fingerprint=mine,
                                                        status=PENDING, answer=b""))
        if done.status == PENDING and done.fingerprint == mine:
            # First attempt, or one the daemon stopped in before it answered (its appends carry the
            # command id, so carrying it out again is answered from the log, never appended twice).
            try:
                response = await handler(request)
            except BaseException:
                s.store.forget_command(command_id)
                raise
            if not 200 <= response.status_code < 300:
                s.store.forget_command(command_id)
                return response
            done = s.store.record_command(CommandRecord(command_id=command_id, kind=kind, fingerprint=mine,
                                                        status=response.status_code, answer=bytes(response.body)))
        if done.fingerprint != mine:
            same = "with other parameters" if done.kind == kind else f"for {done.kind}"
            raise ConflictError(f"command id {command_id!r} was already used {same}",
                                hint="use a new command id for a new command")
        return Response(done.answer, status_code=done.status, media_type="application/json")

    idempotent.__name__ = idempotent.__qualname__ = handler.__name__
    idempotent.__doc__ = handler.__doc__
    return Route(path, idempotent, methods=["POST"])


def _refuse_a_foreign_id(s: Services, command_id: str) -> None:
    """An id the log already carries with no record here belongs to another command (an internal
    one such as a run's node attempt, or one from before records were kept): never act twice."""
    used = s.store.append("command-lookup", [], command_id=command_id)  # an empty append only looks the id up
    if used:
        raise ConflictError(f"command id {command_id!r} was already used for the events of {used[0].stream!r}",
                            hint="use a new command id for a new command")


def fingerprint(kind: str, path_params: dict[str, Any], cmd: msgspec.Struct) -> str:
    """sha256 of the command: its route, path parameters and body (defaults included, id left out)."""
    fields = {k: v for k, v in msgspec.structs.asdict(cmd).items() if k != "command_id"}
    canonical = msgspec.json.encode([kind, path_params, fields], order="sorted")
    return hashlib.sha256(canonical).hexdigest()
