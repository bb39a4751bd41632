"""The SQLite event log: WAL mode, one writer, projections updated in the append's transaction."""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import groupby, takewhile
from pathlib import Path
from typing import Any

import msgspec

from tunelog.events.base import (
    Envelope,
    Event,
    StampedEvent,
    current_version,
    decode_current,
    decode_payload,
    decode_stored,
    encode_payload,
)
from tunelog.events.errors import ConflictError, TunelogError, ValidationError
from tunelog.events.state import Fold, all_folds
from tunelog.store.base import CommandRecord, check_fields
from tunelog.store.schema import field_sql, migrate

_COLUMNS = "position, stream, version, type, schema_version, time, payload, command_id, causation_id, correlation_id"
_INSERT = (f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_BATCH = 20_000
"""Events a rebuild fetches and decodes at once (sizes from 4 k to 200 k measured alike)."""


@contextlib.contextmanager
def sqlite_errors(what: str) -> Iterator[None]:
    """Map sqlite3 errors to tunelog errors: the one place that knows sqlite3's exceptions."""
    try:
        yield
    except OverflowError as exc:  # a Python int past SQLite's 64 bits, e.g. a position from a client
        raise ValidationError(f"{what}: a number is out of range ({exc})",
                              hint=f"positions and versions are at most {(1 << 63) - 1}") from exc
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"{what}: {exc}", hint="re-read the stream and retry") from exc
    except sqlite3.OperationalError as exc:
        hint = ("is another tunelog daemon using this data directory?" if "locked" in str(exc)
                else "check that the folder exists and that you may write to it" if "unable to open" in str(exc)
                else None)
        raise TunelogError(f"{what}: {exc}", hint=hint) from exc
    except sqlite3.DatabaseError as exc:
        raise TunelogError(f"{what}: the database is damaged ({exc})",
                           hint="restore a backup of the data directory") from exc


class SqliteStore:
    """Event log in one SQLite file. Only one process may write (the daemon holds a lock)."""

    def __init__(self, path: str | Path, *, folds: tuple[Fold, ...] | None = None,
                 clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self._folds = folds if folds is not None else all_folds()
        self._by_tag: dict[str, list[Fold]] = {}
        for f in self._folds:
            for tag in f.tags:
                self._by_tag.setdefault(tag, []).append(f)
        self._row_decoders = {f.table: msgspec.json.Decoder(f.row_type) for f in self._folds}
        self._encoder = msgspec.json.Encoder()
        self._clock = clock
        self._lock = threading.RLock()
        self._counts: dict[tuple[str, str], Counter[Any]] = {}
        """(table, field) -> rows per value, for counted fields once asked (see `count_by`)."""
        self._subscribers: list[Callable[[int], None]] = []
        with sqlite_errors(f"opening {self.path}"):
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=5000")
            migrate(self.conn, self._folds)
        self._head = self._query_head()

    # -- writing -----------------------------------------------------------------------------

    def append(self, stream: str, events: Sequence[Event], *, expected_version: int | None = None,
               command_id: str | None = None, causation_id: str | None = None,
               correlation_id: str | None = None) -> list[Envelope]:
        with self._lock, sqlite_errors(f"appending to {stream!r}"):
            if command_id is not None:
                done = self._read_where("command_id = ?", (command_id,))
                if done:
                    return done
            if not events:
                return []
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT max(version) FROM events WHERE stream = ?", (stream,)).fetchone()
                current = row[0] or 0
                if expected_version is not None and expected_version != current:
                    raise ConflictError(f"stream {stream!r} is at version {current}, not {expected_version}",
                                        hint="re-read the stream and retry the command")
                now = self._clock()
                head = self._head
                rows, out = [], []
                for i, ev in enumerate(events):
                    payload = encode_payload(ev)
                    tag, sv = ev.tag, type(ev).schema_version
                    rows.append((head + i + 1, stream, current + i + 1, tag, sv, now, payload.decode(),
                                 command_id, causation_id, correlation_id))
                    out.append(Envelope(position=head + i + 1, stream=stream, version=current + i + 1, type=tag,
                                        schema_version=sv, time=now, event=decode_payload(tag, sv, payload),
                                        command_id=command_id, causation_id=causation_id,
                                        correlation_id=correlation_id))
                conn.executemany(_INSERT, rows)
                changes = self._apply(out, out[-1].position)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._head = out[-1].position
            self._count_changes(changes)
        for cb in list(self._subscribers):
            cb(self._head)
        return out

    def _apply(self, envs: Sequence[Envelope], position: int) -> list[tuple[str, Any, Any]]:
        """Fold envelopes into the projection tables (inside the caller's transaction); returns
        each changed row's (table, row before, row after)."""
        cache: dict[tuple[str, str], Any] = {}
        before: dict[tuple[str, str], Any] = {}
        for env in envs:
            for f in self._by_tag.get(env.type, ()):
                key = f.key(env)
                if key is None:
                    continue
                ck = (f.table, key)
                if ck not in cache:
                    cache[ck] = before[ck] = self._load_row(f.table, key)
                cache[ck] = f.evolve(cache[ck], env)
        encode = self._encoder.encode
        for (table, key), row in cache.items():
            if row is None:
                self.conn.execute(f"DELETE FROM [{table}] WHERE key = ?", (key,))
            else:
                self.conn.execute(f"INSERT OR REPLACE INTO [{table}] (key, data) VALUES (?, ?)",
                                  (key, encode(row).decode()))
        self.conn.executemany("UPDATE projection_positions SET position = ? WHERE name = ?",
                              [(position, f.table) for f in self._folds])
        return [(table, before[table, key], row) for (table, key), row in cache.items()]

    def _count_changes(self, changes: list[tuple[str, Any, Any]]) -> None:
        """Move committed rows between the counts of their counted fields' values."""
        for (table, field), counts in self._counts.items():
            for t, old, new in changes:
                if t == table:
                    if old is not None:
                        counts[getattr(old, field)] -= 1
                    if new is not None:
                        counts[getattr(new, field)] += 1

    def _load_row(self, table: str, key: str) -> Any | None:
        got = self.conn.execute(f"SELECT data FROM [{table}] WHERE key = ?", (key,)).fetchone()
        return None if got is None else self._row_decoders[table].decode(got[0])

    def rebuild(self) -> int:
        """Recreate every projection from the log in one transaction (reads included, so they see
        one snapshot); returns events folded.

        A row depends only on its own key's events, in log order, so each projection is folded on
        its own from just the events it reads (`_fold_table`)."""
        with self._lock, sqlite_errors("rebuilding projections"), _gc_paused():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                counts: Counter[str] = Counter()
                stale = set()  # types with payloads stored at another schema version than today's
                for tag, version, n in self.conn.execute("SELECT type, schema_version, count(*) FROM events "
                                                         "GROUP BY type, schema_version"):
                    counts[tag] += n
                    if version != current_version(tag):
                        stale.add(tag)
                tables = {f.table: self._fold_table(f, counts, current=not f.tags & stale) for f in self._folds}
                self._replace_tables(tables)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self._counts.clear()
            return sum(counts.get(tag, 0) for tag in self._by_tag)

    def _fold_table(self, fold: Fold, counts: Mapping[str, int], *, current: bool) -> dict[str, Any]:
        """One projection folded from the log, each run of consecutive events of a key at once;
        `current`: every event it reads is stored at its type's current schema version."""
        rows: dict[str, Any] = {}
        reads = sum(counts.get(tag, 0) for tag in fold.tags)
        if not reads:
            return rows
        # The type index pays off for a projection that reads a small part of the log; for one that
        # reads most of it SQLite would sort everything the index found, so scan in position order.
        for batch in self._stamped(fold.tags, scan=reads * 4 > sum(counts.values()), current=current):
            for key, run in groupby(batch, fold.key):
                if key is not None:
                    _put(rows, key, fold.fold_many(rows.get(key), run))
        return rows

    def _stamped(self, tags: frozenset[str], *, scan: bool, current: bool) -> Iterator[list[StampedEvent]]:
        """The events with these tags in log order, decoded a batch at a time with one msgspec call.
        Only the columns folds read (`Stamped`) and decoding needs are fetched: each costs per row,
        and a row's schema version is needed only when some payloads may need upcasting."""
        marks = ",".join("?" * len(tags))
        where = f"{'+type' if scan else 'type'} IN ({marks})"  # `+type`: SQLite may not use the index
        columns = "position, time, payload" if current else "position, time, schema_version, payload"
        cur = self.conn.execute(f"SELECT {columns} FROM events WHERE {where} ORDER BY position", sorted(tags))
        while rows := cur.fetchmany(_BATCH):
            if current:
                positions, times, payloads = zip(*rows, strict=True)
                events = decode_current(payloads)
            else:
                positions, times, versions, payloads = zip(*rows, strict=True)
                events = decode_stored(versions, payloads)
            yield list(map(StampedEvent, positions, times, events))

    def _replace_tables(self, tables: dict[str, dict[str, Any]]) -> None:
        """Swap every projection table's rows for the rebuilt ones (inside the caller's transaction)."""
        encode = self._encoder.encode
        for f in self._folds:
            self.conn.execute(f"DELETE FROM [{f.table}]")
            self.conn.executemany(f"INSERT INTO [{f.table}] (key, data) VALUES (?, ?)",
                                  [(k, encode(v).decode()) for k, v in tables[f.table].items()])
        self.conn.executemany("UPDATE projection_positions SET position = ? WHERE name = ?",
                              [(self._head, f.table) for f in self._folds])

    # -- reading -----------------------------------------------------------------------------

    def read(self, *, after: int = 0, limit: int | None = None, stream: str | None = None,
             types: Iterable[str] | None = None) -> list[Envelope]:
        where, args = ["position > ?"], [after]
        if stream is not None:
            where.append("stream = ?")
            args.append(stream)  # type: ignore[arg-type]
        if types:
            tl = list(types)
            # With a stream, its index finds the few rows to check; SQLite would otherwise pick the
            # type index and walk every event of that type in the log (seconds on millions).
            where.append(f"{'+type' if stream is not None else 'type'} IN ({','.join('?' * len(tl))})")
            args.extend(tl)  # type: ignore[arg-type]
        sql = " AND ".join(where) + " ORDER BY position"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock, sqlite_errors("reading events"):
            return self._read_where(sql, args)

    def _read_where(self, where: str, args: Sequence[Any]) -> list[Envelope]:
        if " ORDER BY " not in where:
            where += " ORDER BY position"
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM events WHERE {where}", args).fetchall()
        if not rows:
            return []
        events = decode_stored([r[4] for r in rows], [r[6] for r in rows])  # one msgspec call for the page
        return [Envelope(r[0], r[1], r[2], r[3], r[4], r[5], e, r[7], r[8], r[9]) for r, e in zip(rows, events, strict=True)]

    def head(self) -> int:
        return self._head

    def _query_head(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])

    def stream_version(self, stream: str) -> int:
        with self._lock, sqlite_errors(f"reading the version of {stream!r}"):
            row = self.conn.execute("SELECT max(version) FROM events WHERE stream = ?", (stream,)).fetchone()
        return int(row[0] or 0)

    def get(self, table: str, key: str) -> Any | None:
        with self._lock, sqlite_errors(f"reading {table}"):
            return self._load_row(table, key)

    def rows(self, table: str) -> list[Any]:
        dec = self._row_decoders[table]
        with self._lock, sqlite_errors(f"reading {table}"):
            return [dec.decode(d) for (d,) in self.conn.execute(f"SELECT data FROM [{table}] ORDER BY key")]

    def select(self, table: str, *, order: str, where: Mapping[str, Any] | None = None, after: Any = None,
               limit: int | None = None, descending: bool = False) -> list[Any]:
        fields = [*(where or {}), order]
        check_fields(self._fold(table), fields)
        clauses = [f"{field_sql(f)} = ?" for f in where or {}]
        args = list((where or {}).values())
        if after is not None:
            clauses.append(f"{field_sql(order)} {'<' if descending else '>'} ?")
            args.append(after)
        sql = (f"SELECT data FROM [{table}] {'WHERE ' + ' AND '.join(clauses) if clauses else ''} "
               f"ORDER BY {field_sql(order)} {'DESC' if descending else 'ASC'}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        dec = self._row_decoders[table]
        with self._lock, sqlite_errors(f"reading {table}"):
            return [dec.decode(d) for (d,) in self.conn.execute(sql, args)]

    def with_prefix(self, table: str, prefix: str, *, limit: int) -> list[Any]:
        # Keys with the prefix sort right after it: read from there and stop at the first without.
        dec = self._row_decoders[table]
        with self._lock, sqlite_errors(f"reading {table}"):
            found = self.conn.execute(f"SELECT key, data FROM [{table}] WHERE key >= ? ORDER BY key LIMIT ?",
                                      (prefix, int(limit))).fetchall()
        return [dec.decode(d) for _, d in takewhile(lambda r: str(r[0]).startswith(prefix), found)]

    def count_by(self, table: str, field: str) -> dict[Any, int]:
        """A counted field (`Fold.counted`) is counted once, then kept up to date by each append:
        counting through an index still reads every row on SQLite before 3.41, which evaluates
        an indexed expression again instead of reading it from the index."""
        fold = self._fold(table)
        check_fields(fold, [field])
        with self._lock, sqlite_errors(f"counting {table}"):
            counts = self._counts.get((table, field))
            if counts is None:
                counts = Counter(dict(self.conn.execute(f"SELECT {field_sql(field)}, count(*) FROM [{table}] "
                                                        f"GROUP BY {field_sql(field)}").fetchall()))
                if field in fold.counted:
                    self._counts[table, field] = counts
            return {value: n for value, n in counts.items() if n}

    def _fold(self, table: str) -> Fold:
        return next(f for f in self._folds if f.table == table)

    def projection_position(self, table: str) -> int:
        with self._lock, sqlite_errors(f"reading the position of {table}"):
            row = self.conn.execute("SELECT position FROM projection_positions WHERE name = ?", (table,)).fetchone()
        return int(row[0]) if row else 0

    def command(self, command_id: str) -> CommandRecord | None:
        with self._lock, sqlite_errors("looking up a command"):
            row = self.conn.execute("SELECT command_id, kind, fingerprint, status, answer FROM commands "
                                    "WHERE command_id = ?", (command_id,)).fetchone()
        return None if row is None else CommandRecord(*row)

    def record_command(self, record: CommandRecord) -> CommandRecord:
        with self._lock, sqlite_errors("recording a command"):
            self.conn.execute("INSERT INTO commands (command_id, kind, fingerprint, status, answer, time) "
                              "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (command_id) DO UPDATE SET "
                              "status = excluded.status, answer = excluded.answer, time = excluded.time "
                              "WHERE commands.status = 0 AND commands.fingerprint = excluded.fingerprint",
                              (*msgspec.structs.astuple(record), self._clock()))
        return self.command(record.command_id) or record

    def forget_command(self, command_id: str) -> None:
        with self._lock, sqlite_errors("forgetting a command"):
            self.conn.execute("DELETE FROM commands WHERE command_id = ? AND status = 0", (command_id,))

    def subscribe(self, callback: Callable[[int], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def integrity_check(self) -> str:
        """`ok`, or SQLite's description of the damage."""
        with self._lock:
            return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self._subscribers.clear()
        with self._lock:
            self.conn.close()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Folding millions of events allocates only acyclic objects; the cycle collector would
    rescan them all again and again (it halves rebuild speed)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _put(rows: dict[str, Any], key: str, row: Any | None) -> None:
    """Store a folded row; a fold returns None to delete it."""
    if row is None:
        rows.pop(key, None)
    else:
        rows[key] = row
