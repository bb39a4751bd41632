"""Pages of a projection listing: `?limit=&after=&order=`.

A list is ordered by its rows' log position (jobs: queued, runs: submitted). A page answers
`{"<name>": rows, "next": cursor}`; `next` is the position of its last row, to pass back as
`after`, or null on the last page. The store reads the page through an index, so a page costs
the same with 10 rows in the table or 10 k.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request

PAGE = 100
MOST = 1000


class Page(msgspec.Struct, frozen=True):
    limit: int
    after: int | None
    descending: bool


def parse_page(request: Request, problems: list[tuple[str, str]]) -> Page:
    """The page a query asks for; a bad parameter is added to `problems` (named by its field)."""
    q = request.query_params

    def number(name: str, default: int | None, low: int, high: int | None = None) -> int | None:
        raw = q.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
            bound = f" and at most {high}" if high is not None else ""
            problems.append((name, f"must be an integer at least {low}{bound}, got {raw!r}"))
            return default
        return int(raw)

    order = q.get("order", "asc")
    if order not in ("asc", "desc"):
        problems.append(("order", f"must be asc (oldest first) or desc (newest first), got {order!r}"))
    return Page(limit=number("limit", PAGE, 1, MOST) or PAGE, after=number("after", None, 0),
                descending=order == "desc")


def page_body(name: str, rows: list[Any], page: Page, position: str) -> dict[str, Any]:
    """The answer for `rows` fetched with `limit + 1`: the page, and the cursor when more follow."""
    more = len(rows) > page.limit
    rows = rows[:page.limit]
    return {name: rows, "next": getattr(rows[-1], position) if more else None}
