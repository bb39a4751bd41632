"""Small view helpers every page uses: links, state badges, tables, JSON, notices.

A notice is how an error reaches the user in the UI (the CLI prints `Error: ...`, the API sends
the JSON envelope): `act(...)` runs a command and turns a TunelogError into one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from reactpy import hooks, html

from tunelog.events.errors import TunelogError

Notice = dict[str, Any] | None
"""`{"kind": "error"|"ok", "message", "problems", "hint"}`, or None for no notice."""


def use_notice() -> tuple[Notice, Callable[[Notice], None]]:
    """A component's notice state (None: nothing to say)."""
    notice, set_notice = hooks.use_state(cast(Notice, None))
    return notice, set_notice


def link(href: str, text: Any, **attrs: Any) -> Any:
    """A plain link: pages are real URLs, so a link is a page load and can be bookmarked."""
    return html.a({"href": href, **attrs}, text)


def run_link(run_id: str | None) -> Any:
    return link(f"/runs/{run_id}", run_id, className="mono") if run_id else "-"


def short(sha: str | None, n: int = 12) -> str:
    """The first `n` characters of a hash."""
    return sha[:n] if sha else "-"


def when(ts: float | None) -> str:
    """Local time of a Unix timestamp."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def badge(state: str) -> Any:
    """A coloured state label."""
    return html.span({"className": f"state state-{state or 'none'}"}, state or "-")


def compact(value: Any, limit: int = 120) -> str:
    """Compact JSON, cut to `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_block(value: Any, **attrs: Any) -> Any:
    """Pretty JSON in a <pre>."""
    return html.pre({"className": "json", **attrs}, json.dumps(value, indent=2, default=str, sort_keys=False))


def table(head: Sequence[str], rows: Sequence[tuple[str, Sequence[Any]]], **attrs: Any) -> Any:
    """A table; each row is (key, cells)."""
    return html.table(
        {"className": "grid", **attrs},
        html.thead(html.tr([html.th({"key": h}, h) for h in head])),
        html.tbody([html.tr({"key": key}, [html.td({"key": str(i)}, c) for i, c in enumerate(cells)])
                    for key, cells in rows]),
    )


def error_notice(exc: TunelogError) -> dict[str, Any]:
    """A TunelogError as a notice: message, every problem, and the hint."""
    return {"kind": "error", "message": exc.message, "problems": list(exc.problems), "hint": exc.hint or ""}


def ok_notice(message: str) -> dict[str, Any]:
    return {"kind": "ok", "message": message, "problems": [], "hint": ""}


def notice_view(notice: Notice) -> Any:
    """Render a notice (nothing when None)."""
    if not notice:
        return html.div({"className": "notice-empty"})
    problems = [html.li({"key": str(i)}, f"{p.get('where', '')}: {p.get('message', '')}".lstrip(": "))
                for i, p in enumerate(notice.get("problems") or [])]
    return html.div(
        {"className": f"notice notice-{notice['kind']}", "role": "alert" if notice["kind"] == "error" else "status"},
        html.b("Error: " if notice["kind"] == "error" else ""), notice["message"],
        html.ul(problems) if problems else "",
        html.div({"className": "hint"}, f"Hint: {notice['hint']}") if notice.get("hint") else "",
    )


def act(command: Callable[[], Any], set_notice: Callable[[Notice], None], *, ok: str = "") -> Any:
    """Run a command; show its TunelogError as a notice (or `ok` when given). Returns its result or None."""
    try:
        result = command()
    except TunelogError as exc:
        set_notice(error_notice(exc))
        return None
    set_notice(ok_notice(ok) if ok else None)
    return result


async def act_async(command: Callable[[], Awaitable[Any]], set_notice: Callable[[Notice], None], *,
                    ok: str = "") -> Any:
    """`act` for a command that is awaited (e.g. a checked submit)."""
    try:
        result = await command()
    except TunelogError as exc:
        set_notice(error_notice(exc))
        return None
    set_notice(ok_notice(ok) if ok else None)
    return result


def warnings_notice(warnings: Sequence[tuple[str, str]], message: str) -> Notice:
    """The submit-time checks' warnings as a notice (None when there are none)."""
    if not warnings:
        return None
    return {"kind": "ok", "message": message, "problems": [{"where": w, "message": m} for w, m in warnings],
            "hint": ""}


def field(label: str, control: Any, *, hint: str = "") -> Any:
    """A labelled form control, with an optional one-line explanation."""
    return html.label({"className": "field"}, html.span({"className": "label"}, label), control,
                      html.small(hint) if hint else "")


def text_input(value: str, on_value: Callable[[str], None], **attrs: Any) -> Any:
    """A controlled text input that reports its value."""
    return html.input({"type": "text", "value": value, "onChange": lambda e: on_value(e["target"]["value"]), **attrs})


def select(value: str, options: Sequence[tuple[str, str]], on_value: Callable[[str], None], **attrs: Any) -> Any:
    """A <select> of (value, label) pairs."""
    return html.select({"value": value, "onChange": lambda e: on_value(e["target"]["value"]), **attrs},
                       [html.option({"key": v, "value": v}, text) for v, text in options])


def button(text: str, on_click: Callable[[Any], Any], **attrs: Any) -> Any:
    return html.button({"type": "button", "onClick": on_click, **attrs}, text)
