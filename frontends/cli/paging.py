"""`--limit` for list commands: the newest N rows, shown oldest first, with a note when more exist."""

from __future__ import annotations

from typing import Any

import click

from tunelog.frontends.cli.client import Client

MOST = 1000
"""The most rows the daemon gives in one page."""

limit_option = click.option("--limit", "-n", type=click.IntRange(1), default=50, show_default=True,
                            help="Show the newest N (the daemon is asked page by page).")


def newest(c: Client, path: str, name: str, *, limit: int, **query: Any) -> tuple[list[dict[str, Any]], bool]:
    """(the newest `limit` rows of a list, oldest first; whether older rows were left out)."""
    rows: list[dict[str, Any]] = []
    after = None
    while len(rows) < limit:
        page = c.get(path, order="desc", limit=min(MOST, limit - len(rows)), after=after, **query)
        rows += page[name]
        after = page["next"]
        if after is None:
            break
    return rows[::-1], after is not None


def more_note(shown: int, more: bool, what: str) -> str | None:
    """The line that says older rows exist, or None."""
    return f"(the newest {shown} {what}; older ones exist: raise --limit)" if more else None
