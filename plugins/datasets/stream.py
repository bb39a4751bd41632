"""Preparing a JSON Lines file larger than memory: the same rows, checks, split and artifact as
`backend.prepare` gives, read in passes over the file instead of held in lists.

Pass 1 parses every line (the columns in order of first appearance and the first row choose the
format; parse problems are counted), pass 2 normalises each row into a scratch file of records
(row problems are counted; placeholders noted), then the split (the same seeded shuffle of row
indices `split_records` makes, kept in an int64 array and a byte map) writes train.jsonl and
validation.jsonl from the scratch file, and the content hash is read back from them. Memory
holds one row at a time plus 9 bytes per record.
"""

from __future__ import annotations

import hashlib
import json
import random
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunelog.events.errors import ValidationError

from .formats import Row, normalise
from .problems import Problems
from .problems import kind_of as _kind
from .report import FIRST_ROWS, PLACEHOLDER_WARN_AT, placeholder_in

STREAM_FROM_BYTES = 64 << 20
"""JSON Lines files at least this big are prepared in passes (smaller ones in memory)."""
SUFFIXES = (".jsonl", ".ndjson")
_BUFFER = 1 << 20


class Scan:
    """What pass 1 learns: rows, columns (of all rows, and of the first `max_rows`), the first
    row, the file's sha256 and size."""

    def __init__(self) -> None:
        self.rows = 0
        self.columns: dict[str, None] = {}
        self.head: dict[str, None] = {}
        self.first: dict[str, Any] = {}
        self.sha256 = ""
        self.size = 0


def lines(path: Path, display: str, *, digest: Any = None) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line, numbered as `str.splitlines` numbers them."""
    number, offset = 0, 0
    with open(path, "rb", buffering=_BUFFER) as f:
        for raw in f:
            if digest is not None:
                digest.update(raw)
            try:
                text = raw.decode("utf-8-sig" if offset == 0 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValidationError(f"cannot read {display}: it is not UTF-8 text ({e.reason} at byte "
                                      f"{offset + e.start})") from e
            offset += len(raw)
            for line in text.splitlines():
                number += 1
                if line.strip():
                    yield number, line


def rows(path: Path, display: str, problems: Problems | None, *, digest: Any = None
         ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parsed object rows; a line that is not a JSON object goes to `problems` (if given)."""
    for number, line in lines(path, display, digest=digest):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if problems is not None:
                problems.add(f"{display} row {number}", f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        if isinstance(row, dict):
            yield number, row
        elif problems is not None:
            problems.add(f"{display} row {number}", f"expected a JSON object, got {_kind(row)}")


def scan(path: Path, display: str, problems: Problems, *, max_rows: int | None) -> Scan:
    """Pass 1."""
    found, digest = Scan(), hashlib.sha256()
    for _, row in rows(path, display, problems, digest=digest):
        if not found.rows:
            found.first = row
        found.rows += 1
        found.columns.update(dict.fromkeys(row))
        if max_rows is None or found.rows <= max_rows:
            found.head.update(dict.fromkeys(row))
    found.sha256, found.size = digest.hexdigest(), path.stat().st_size
    if not found.rows and not problems:
        raise ValidationError(f"{display} is empty: there are no rows to prepare")
    return found


def normalise_to(records: Path, path: Path, display: str, *, fmt: str, mapping: dict[str, str],
                 tags: dict[str, str], max_rows: int | None, problems: Problems) -> tuple[int, dict[str, Any]]:
    """Pass 2: write one normalised record a line to `records`; (records written, placeholder warning)."""
    n, hits, example, where = 0, 0, "", []
    with open(records, "w", encoding="utf-8", buffering=_BUFFER) as out:
        for seen, (number, raw) in enumerate(rows(path, display, None), start=1):
            if max_rows is not None and seen > max_rows:
                break
            row = Row(raw, mapping, tags)
            record = normalise(fmt, row)
            for error in row.errors:
                problems.add(f"{display} row {number}", error)
            if record is None:
                continue
            n += 1
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            found = placeholder_in(record)
            if found:
                hits += 1
                example = example or found
                where += [f"{display} row {number}"][:FIRST_ROWS - len(where)]
    warning = {"placeholder": {"count": hits, "example": example, "rows": where,
                               "warn": hits >= PLACEHOLDER_WARN_AT}} if hits else {}
    return n, warning


def held_out(n: int, *, val_fraction: float, seed: int) -> bytearray:
    """A byte per record, 1 for the validation rows: `split_records`' choice without a list of n ints."""
    marks = bytearray(n)
    if val_fraction <= 0:
        return marks
    if n < 2:
        raise ValidationError(f"val_fraction {val_fraction} needs at least 2 rows, the source has {n}")
    held = max(1, min(n - 1, round(n * val_fraction)))
    order = array("q", range(n))
    randbelow = random.Random(seed)._randbelow  # random.shuffle's own loop, on an int64 array
    for i in reversed(range(1, n)):
        j = randbelow(i + 1)
        order[i], order[j] = order[j], order[i]
    for index in order[:held]:
        marks[index] = 1
    return marks


def write_split(records: Path, folder: Path, marks: bytearray) -> tuple[int, int, str]:
    """Write train.jsonl (and validation.jsonl if any row is held out); (train, validation, content sha256)."""
    folder.mkdir(parents=True)
    held = sum(marks)
    names = ["train"] + (["validation"] if held else [])
    with open(records, "rb", buffering=_BUFFER) as src:
        outs = [open(folder / f"{name}.jsonl", "wb", buffering=_BUFFER) for name in names]  # noqa: SIM115
        try:
            for i, line in enumerate(src):
                outs[marks[i]].write(line)
        finally:
            for f in outs:
                f.close()
    content = hashlib.sha256(b"tunelog-dataset-content-v1\n")
    for name in names:
        file = folder / f"{name}.jsonl"
        content.update(f"{name}\0{file.stat().st_size}\0".encode())
        with open(file, "rb") as f:
            while chunk := f.read(_BUFFER):
                content.update(chunk)
    return len(marks) - held, held, content.hexdigest()
