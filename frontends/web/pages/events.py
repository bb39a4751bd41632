"""The event log, raw: filter by type, by stream (its start, any part, or exactly) and by any text
in the event; follow live or page back through history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from reactpy import component, hooks, html

from tunelog.events.base import Envelope, event_types
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import button, compact, field, select, table, text_input, when

SHOWN = 200
MAX_SCAN = 50_000
"""A filter the store cannot apply looks at most this many events back from the newest shown."""
STREAM_MATCH = (("prefix", "starts with"), ("contains", "contains"), ("exact", "is exactly"))


def matcher(stream: str, how: str, text: str) -> Callable[[Envelope], bool] | None:
    """The test for the filters the store cannot apply (None: there are none): the stream by its
    start or any part of it, and `text` anywhere in the stream, type or event (ignoring case)."""
    needle = text.strip().lower()
    by_stream = stream if stream and how != "exact" else ""
    if not by_stream and not needle:
        return None

    def match(env: Envelope) -> bool:
        if by_stream and not (env.stream.startswith(by_stream) if how == "prefix" else by_stream in env.stream):
            return False
        return not needle or needle in f"{env.stream} {env.type} ".lower() + \
            msgspec.json.encode(env.event).decode().lower()

    return match


def latest(ui: Ui, *, upto: int, limit: int, stream: str | None, types: list[str] | None,
           keep: Callable[[Envelope], bool] | None = None) -> tuple[list[Envelope], int]:
    """The last `limit` events at or before position `upto` that match the filters, oldest first,
    and the position the search went back to (0: the whole log).

    The store reads forwards only, so this reads growing windows back from `upto`; `keep` filters
    in Python, over at most MAX_SCAN events."""
    window = max(limit * 2, 500)
    while True:
        after = max(0, upto - window)
        found = [e for e in ui.services.store.read(after=after, stream=stream or None, types=types or None)
                 if e.position <= upto and (keep is None or keep(e))]
        if len(found) >= limit or after == 0 or (keep is not None and window >= MAX_SCAN):
            return found[-limit:], after
        window = min(window * 4, MAX_SCAN) if keep is not None else window * 4


def event_row(env: Envelope) -> tuple[str, list[Any]]:
    data = msgspec.to_builtins(env.event)
    return str(env.position), [env.position, when(env.time), html.span({"className": "mono"}, env.stream),
                               html.span({"className": "mono"}, env.type),
                               html.details(html.summary({"className": "mono"}, compact(data, 140)),
                                            html.pre({"className": "json"}, msgspec.json.format(
                                                msgspec.json.encode(data)).decode()))]


@component
def EventsPage(ui: Ui, *, query: dict[str, str]) -> Any:
    """The filterable log; in follow mode it shows the newest events as they are appended."""
    kind, set_kind = hooks.use_state(query.get("type", ""))
    stream, set_stream = hooks.use_state(query.get("stream", ""))
    how, set_how = hooks.use_state(query.get("match", "prefix") if query.get("match") in dict(STREAM_MATCH) else "prefix")
    text, set_text = hooks.use_state(query.get("q", ""))
    follow, set_follow = hooks.use_state(True)
    upto, set_upto = hooks.use_state(0)
    head = use_head(ui, enabled=follow)
    end = head if follow else upto
    wanted = stream.strip()
    envs, searched = latest(ui, upto=end, limit=SHOWN, stream=wanted if how == "exact" else None,
                            types=[kind] if kind else None, keep=matcher(wanted, how, text))

    def toggle(_: Any) -> None:
        set_upto(ui.services.store.head())
        set_follow(not follow)

    def older(_: Any) -> None:
        if envs:
            set_follow(False)
            set_upto(max(0, envs[0].position - 1))

    types = [("", "all types")] + [(t, t) for t in sorted(event_types())]
    return html.div(
        html.h1("Events"),
        html.div({"className": "row"},
                 field("type", select(kind, types, set_kind, id="events-type")),
                 field("stream", html.span(
                     select(how, STREAM_MATCH, set_how, id="events-stream-match"),
                     text_input(stream, set_stream, id="events-stream", size=30,
                                placeholder="e.g. run-, job-j01, plugin-name"))),
                 field("text", text_input(text, set_text, id="events-text", size=24,
                                          placeholder="anywhere in the event")),
                 html.label(html.input({"type": "checkbox", "checked": follow, "id": "events-follow",
                                        "onChange": toggle}), " follow"),
                 button("Older", older, id="events-older")),
        html.p({"className": "muted", "id": "events-range", "data-follow": str(follow).lower()},
               f"{len(envs)} events" + (f", positions {envs[0].position}–{envs[-1].position}" if envs else "")
               + (" (following)" if follow else f" (up to {end})")
               + (f"; searched back to position {searched + 1}" if searched and len(envs) < SHOWN else "")),
        table(("POS", "TIME", "STREAM", "TYPE", "EVENT"), [event_row(e) for e in reversed(envs)],
              className="grid events", id="events"),
    )
