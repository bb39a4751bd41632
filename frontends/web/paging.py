"""One page of a list, newest first, read through a projection's index: `?before=N` (a log
position) pages to the rows before N; the links to the newest and the older page."""

from __future__ import annotations

from typing import Any

import msgspec
from reactpy import html

from tunelog.frontends.web.widgets import link
from tunelog.store.tables import Table


class NewestPage(msgspec.Struct, frozen=True):
    rows: list[Any]
    """The rows shown, newest first."""
    links: Any
    """`newest …` and `older …` links where they lead somewhere."""
    error: Any = None
    """A bad `before` named (then no rows)."""


def newest_page(table: Table[Any], query: dict[str, str], *, position: str, shown: int, path: str,
                what: str) -> NewestPage:
    """The page `query` asks for of `table`, ordered by the row field `position` (a log position)."""
    before = query.get("before")
    home = link(path, f"newest {what}")
    if before is not None and not before.isdigit():
        return NewestPage(rows=[], links=html.p(home), error=html.p(
            {"className": "error"}, f"before: must be a log position (a whole number), got {before[:40]!r}"))
    found = table.select(order=position, descending=True, after=None if before is None else int(before),
                         limit=shown + 1)
    rows = found[:shown]
    older = link(f"{path}?before={getattr(rows[-1], position)}", f"older {what}") if len(found) > shown else ""
    return NewestPage(rows=rows, links=html.p({"className": "pages"}, home if before is not None else "", older))
