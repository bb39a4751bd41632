"""The store contract shared by the SQLite and in-memory implementations."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from tunelog.events.base import Envelope, Event
from tunelog.events.state import Fold


class CommandRecord(msgspec.Struct, frozen=True):
    """What a command answered the first time, kept under its command id so a retry gets the same."""

    command_id: str
    """The client's idempotency key."""
    kind: str
    """The command, e.g. `POST /v1/models`: named in the conflict when the id is reused."""
    fingerprint: str
    """sha256 of the kind, the path parameters and the canonical body: a reuse is a different value."""
    status: int
    """The HTTP status of the first answer; 0 while the command is being carried out (pending)."""
    answer: bytes
    """The first answer's body."""


class EventStore(Protocol):
    """An append-only event log with projections kept in step with it.

    Contract (tests/store/test_contract.py runs it against every implementation):
    - positions are 1-based, gap-free, in commit order; stream versions likewise per stream;
    - one `append` is atomic: all of its events or none;
    - `expected_version` other than None must equal the stream's current version, else
      ConflictError and nothing is written (0 means "the stream must not exist yet");
    - an `append` whose `command_id` is already in the log returns the stored envelopes and
      writes nothing;
    - projections reflect exactly the events up to `head()`;
    - `record_command` keeps the first record of a command id: a second one returns the first.
    """

    def append(self, stream: str, events: Sequence[Event], *, expected_version: int | None = None,
               command_id: str | None = None, causation_id: str | None = None,
               correlation_id: str | None = None) -> list[Envelope]:
        """Append events to one stream atomically and return their envelopes."""
        ...

    def read(self, *, after: int = 0, limit: int | None = None, stream: str | None = None,
             types: Iterable[str] | None = None) -> list[Envelope]:
        """Events with position > `after`, oldest first, optionally filtered."""
        ...

    def head(self) -> int:
        """Position of the newest event (0 when empty)."""
        ...

    def stream_version(self, stream: str) -> int:
        """Current version of a stream (0 when it has no events)."""
        ...

    def get(self, table: str, key: str) -> Any | None:
        """One projection row, or None."""
        ...

    def rows(self, table: str) -> list[Any]:
        """Every row of a projection, ordered by key."""
        ...

    def select(self, table: str, *, order: str, where: Mapping[str, Any] | None = None, after: Any = None,
               limit: int | None = None, descending: bool = False) -> list[Any]:
        """Rows whose fields equal `where`, ordered by the field `order`, those past `after` in that
        order (a page's cursor: the last row's `order` value), at most `limit`.

        Fields are top-level fields of the projection's row type; a fold's `indexes` make this
        cost the page, not the table."""
        ...

    def with_prefix(self, table: str, prefix: str, *, limit: int) -> list[Any]:
        """At most `limit` rows whose key starts with `prefix`, ordered by key (through the key's
        index: an id prefix costs the matches, not the table)."""
        ...

    def count_by(self, table: str, field: str) -> dict[Any, int]:
        """Number of rows for each value of one field."""
        ...

    def projection_position(self, table: str) -> int:
        """The log position a projection has applied up to."""
        ...

    def rebuild(self) -> int:
        """Recreate every projection from the log; returns the number of events folded."""
        ...

    def command(self, command_id: str) -> CommandRecord | None:
        """The record of a command answered before, or None."""
        ...

    def record_command(self, record: CommandRecord) -> CommandRecord:
        """Keep a command's first answer; returns the record now stored. An answered record wins; a
        pending one (status 0) is answered by a record with the same fingerprint."""
        ...

    def forget_command(self, command_id: str) -> None:
        """Drop a pending record (a command refused before it changed anything); answered ones stay."""
        ...

    def subscribe(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call `callback(head)` after each commit; returns a function that unsubscribes."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


def check_fields(fold: Fold, fields: Iterable[str]) -> None:
    """Refuse a field its rows do not have (names also go into SQL, so only declared ones pass)."""
    known = fold.row_type.__struct_fields__
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise ValueError(f"{fold.table} rows have no field {', '.join(map(repr, unknown))}")
