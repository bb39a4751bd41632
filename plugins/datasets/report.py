"""What `prepare` tells about the rows: how many were read and used, why any were left out, and
rows that look unfinished (a template placeholder such as `{{name}}` still in the text).

The report is the `report` output of `prepare` (so it is in the log, in `job-succeeded`) and is
kept in the artifact's meta.json, where the trainer adds what tokenization did to the rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z_][\w.\-]*\s*\}\}")
"""A mustache / jinja placeholder left unfilled: `{{name}}`, `{{ user.first_name }}`."""
PLACEHOLDER_WARN_AT = 2
"""Rows with a placeholder before `prepare` warns: one may be data about templates, several are a
template that was never filled in."""
FIRST_ROWS = 5
"""How many row names a warning lists."""


def placeholders(records: list[dict[str, Any]], numbers: list[str]) -> dict[str, Any]:
    """`{"placeholder": {count, example, rows}}` when records still hold template placeholders, else {}."""
    hits: list[tuple[str, str]] = []
    for record, where in zip(records, numbers, strict=True):
        found = placeholder_in(record)
        if found:
            hits.append((where, found))
    if not hits:
        return {}
    return {"placeholder": {"count": len(hits), "example": hits[0][1], "rows": [w for w, _ in hits[:FIRST_ROWS]],
                            "warn": len(hits) >= PLACEHOLDER_WARN_AT}}


def placeholder_in(record: dict[str, Any]) -> str | None:
    """The first template placeholder in any text of a record, or None."""
    return next((m.group(0) for text in _strings(record) for m in [PLACEHOLDER.search(text)] if m), None)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def summary(report: dict[str, Any]) -> list[str]:
    """Log lines for a report: the counts, then one line per warning."""
    dropped = report.get("dropped") or {}
    line = f"{report['rows']:,} rows: {report['used']:,} used"
    if dropped.get("max_rows"):
        line += f" · {dropped['max_rows']:,} left out (max_rows)"
    lines = [line + f" ({report['format']})"]
    hit = (report.get("warnings") or {}).get("placeholder")
    if hit and hit["warn"]:
        more = ", ..." if hit["count"] > len(hit["rows"]) else ""
        lines.append(f"warning: {hit['count']:,} rows still hold a template placeholder such as {hit['example']} "
                     f"({', '.join(hit['rows'])}{more}); fill the template in before training, or ignore this "
                     "if the placeholders are meant to be learned")
    return lines
