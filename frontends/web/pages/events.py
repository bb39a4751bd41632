"""The event log, raw: filter by type and stream, follow live or page back through history."""

from __future__ import annotations

from typing import Any

import msgspec
from reactpy import component, hooks, html

from tunelog.events.base import Envelope, event_types
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import button, compact, field, select, table, text_input, when

SHOWN = 200


def latest(ui: Ui, *, upto: int, limit: int, stream: str | None, types: list[str] | None) -> list[Envelope]:
    """The last `limit` events at or before position `upto` that match the filters, oldest first.

    The store reads forwards only, so this reads growing windows back from `upto`."""
    window = max(limit * 2, 500)
    while True:
        after = max(0, upto - window)
        found = [e for e in ui.services.store.read(after=after, stream=stream or None, types=types or None)
                 if e.position <= upto]
        if len(found) >= limit or after == 0:
            return found[-limit:]
        window *= 4


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
    follow, set_follow = hooks.use_state(True)
    upto, set_upto = hooks.use_state(0)
    head = use_head(ui, enabled=follow)
    end = head if follow else upto
    envs = latest(ui, upto=end, limit=SHOWN, stream=stream.strip(), types=[kind] if kind else None)

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
                 field("stream", text_input(stream, set_stream, id="events-stream", size=30,
                                            placeholder="e.g. run-r…, job-…, plugin-name")),
                 html.label(html.input({"type": "checkbox", "checked": follow, "id": "events-follow",
                                        "onChange": toggle}), " follow"),
                 button("Older", older, id="events-older")),
        html.p({"className": "muted", "id": "events-range", "data-follow": str(follow).lower()},
               f"{len(envs)} events" + (f", positions {envs[0].position}–{envs[-1].position}" if envs else "")
               + (" (following)" if follow else f" (up to {end})")),
        table(("POS", "TIME", "STREAM", "TYPE", "EVENT"), [event_row(e) for e in reversed(envs)],
              className="grid events", id="events"),
    )
