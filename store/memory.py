"""In-memory event store with the same contract as the SQLite one, for fast tests."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any

from tunelog.events.base import Envelope, Event, decode_payload, encode_payload
from tunelog.events.errors import ConflictError
from tunelog.events.state import Fold, all_folds
from tunelog.store.base import CommandRecord, check_fields


class MemoryStore:
    """Lists and dicts behind the EventStore contract; projections are the same folds."""

    def __init__(self, *, folds: tuple[Fold, ...] | None = None, clock: Callable[[], float] = time.time):
        self._log: list[Envelope] = []
        self._versions: dict[str, int] = {}
        self._by_command: dict[str, list[Envelope]] = {}
        self._commands: dict[str, CommandRecord] = {}
        self._folds = folds if folds is not None else all_folds()
        self._tables: dict[str, dict[str, Any]] = {f.table: {} for f in self._folds}
        self._positions = {f.table: 0 for f in self._folds}
        self._clock = clock
        self._subscribers: list[Callable[[int], None]] = []

    def append(self, stream: str, events: Sequence[Event], *, expected_version: int | None = None,
               command_id: str | None = None, causation_id: str | None = None,
               correlation_id: str | None = None) -> list[Envelope]:
        if command_id is not None and command_id in self._by_command:
            return list(self._by_command[command_id])
        current = self._versions.get(stream, 0)
        if expected_version is not None and expected_version != current:
            raise ConflictError(f"stream {stream!r} is at version {current}, not {expected_version}",
                                hint="re-read the stream and retry the command")
        now = self._clock()
        out = []
        for i, ev in enumerate(events):
            # Round-trip through the stored encoding so both stores hand out equal envelopes.
            decoded = decode_payload(ev.tag, type(ev).schema_version, encode_payload(ev))
            out.append(Envelope(position=len(self._log) + i + 1, stream=stream, version=current + i + 1,
                                type=ev.tag, schema_version=type(ev).schema_version, time=now, event=decoded,
                                command_id=command_id, causation_id=causation_id,
                                correlation_id=correlation_id))
        if not out:
            return []
        self._log.extend(out)
        self._versions[stream] = current + len(out)
        if command_id is not None:
            self._by_command[command_id] = out
        for env in out:
            self._apply(env, self._tables)
        for f in self._folds:
            self._positions[f.table] = len(self._log)
        for cb in list(self._subscribers):
            cb(len(self._log))
        return out

    def command(self, command_id: str) -> CommandRecord | None:
        return self._commands.get(command_id)

    def record_command(self, record: CommandRecord) -> CommandRecord:
        held = self._commands.get(record.command_id)
        if held is None or (held.status == 0 and held.fingerprint == record.fingerprint):
            self._commands[record.command_id] = record
        return self._commands[record.command_id]

    def forget_command(self, command_id: str) -> None:
        held = self._commands.get(command_id)
        if held is not None and held.status == 0:
            del self._commands[command_id]

    def _apply(self, env: Envelope, tables: dict[str, dict[str, Any]]) -> None:
        for f in self._folds:
            if env.type in f.tags:
                key = f.key(env)
                if key is None:
                    continue
                new = f.evolve(tables[f.table].get(key), env)
                if new is None:
                    tables[f.table].pop(key, None)
                else:
                    tables[f.table][key] = new

    def read(self, *, after: int = 0, limit: int | None = None, stream: str | None = None,
             types: Iterable[str] | None = None) -> list[Envelope]:
        wanted = set(types) if types else None
        out = []
        for env in self._log[after:]:
            if stream is not None and env.stream != stream:
                continue
            if wanted is not None and env.type not in wanted:
                continue
            out.append(env)
            if limit is not None and len(out) >= limit:
                break
        return out

    def head(self) -> int:
        return len(self._log)

    def stream_version(self, stream: str) -> int:
        return self._versions.get(stream, 0)

    def get(self, table: str, key: str) -> Any | None:
        return self._tables[table].get(key)

    def rows(self, table: str) -> list[Any]:
        return [v for _, v in sorted(self._tables[table].items())]

    def select(self, table: str, *, order: str, where: Mapping[str, Any] | None = None, after: Any = None,
               limit: int | None = None, descending: bool = False) -> list[Any]:
        fold = next(f for f in self._folds if f.table == table)
        check_fields(fold, [*(where or {}), order])
        rows = [r for r in self._tables[table].values()
                if all(getattr(r, k) == v for k, v in (where or {}).items())
                and (after is None or (getattr(r, order) < after if descending else getattr(r, order) > after))]
        rows.sort(key=attrgetter(order), reverse=descending)
        return rows if limit is None else rows[:limit]

    def with_prefix(self, table: str, prefix: str, *, limit: int) -> list[Any]:
        return [v for k, v in sorted(self._tables[table].items()) if k.startswith(prefix)][:limit]

    def count_by(self, table: str, field: str) -> dict[Any, int]:
        check_fields(next(f for f in self._folds if f.table == table), [field])
        return dict(Counter(getattr(r, field) for r in self._tables[table].values()))

    def projection_position(self, table: str) -> int:
        return self._positions[table]

    def rebuild(self) -> int:
        tables: dict[str, dict[str, Any]] = {f.table: {} for f in self._folds}
        for env in self._log:
            self._apply(env, tables)
        self._tables = tables
        return len(self._log)

    def subscribe(self, callback: Callable[[int], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def close(self) -> None:
        self._subscribers.clear()
