"""Collects every problem found in the input so one error can report them all at once."""

from __future__ import annotations

import re
from typing import Any

from tunelog.events.errors import ValidationError

MAX_REPORTED = 50
"""How many problems one error lists; the message still gives the total."""


class Problems:
    """(where, message) pairs, capped at `MAX_REPORTED`, with a count of all of them."""

    def __init__(self, cap: int = MAX_REPORTED):
        self.cap = cap
        self.items: list[tuple[str, str]] = []
        self.total = 0

    def add(self, where: str, message: str) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append((where, message))

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self, what: str) -> None:
        """Raise one ValidationError listing the problems (nothing has been stored yet)."""
        if not self.total:
            return
        self.items.sort(key=lambda item: _natural(item[0]))
        shown = "" if self.total <= len(self.items) else f", first {len(self.items)} shown"
        noun = "problem" if self.total == 1 else "problems"
        raise ValidationError.collect(
            f"{what}: {self.total} {noun}{shown}; nothing was stored", self.items,
            hint="fix the rows named below, or map your column names with `tunectl train --columns "
                 "FIELD=COLUMN` (the datasets.prepare `columns` parameter)")


def kind_of(value: Any) -> str:
    """What a JSON value is, for messages: `a string`, `a list`, `null`..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _natural(where: str) -> list[Any]:
    """Sort key that puts `row 9` before `row 10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", where)]
