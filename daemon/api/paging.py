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

from tunelog.daemon.api.errors import int_field

PAGE = 100
MOST = 1000


class Page(msgspec.Struct, frozen=True):
    limit: int
    after: int | None
    descending: bool


def parse_page(request: Request, problems: list[tuple[str, str]]) -> Page:
    """The page a query asks for; a bad parameter is added to `problems` (named by its field)."""
    q = request.query_params
    order = q.get("order", "asc")
    if order not in ("asc", "desc"):
        problems.append(("order", f"must be asc (oldest first) or desc (newest first), got {order[:40]!r}"))
    after = q.get("after")
    return Page(limit=int_field(q.get("limit"), "limit", problems, default=PAGE, low=1, high=MOST),
                after=None if after is None else int_field(after, "after", problems, default=0),
                descending=order == "desc")


def page_body(name: str, rows: list[Any], page: Page, position: str) -> dict[str, Any]:
    """The answer for `rows` fetched with `limit + 1`: the page, and the cursor when more follow."""
    more = len(rows) > page.limit
    rows = rows[:page.limit]
    return {name: rows, "next": getattr(rows[-1], position) if more else None}
