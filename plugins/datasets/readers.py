"""Reading raw rows from where the data lives: a local file, a folder of files, a folder written
by `datasets.save_to_disk`, or a dataset on the Hugging Face hub (`datasets.load_dataset`).

Every reader returns plain dict rows numbered from 1 (for JSON Lines the number is the line
number), so later problems can name the file and row. pyarrow and datasets load lazily.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelog.events.errors import NotFoundError, ValidationError

from .problems import Problems
from .problems import kind_of as _kind

SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet")
"""File types read directly."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SAVE_TO_DISK_MARKERS = ("dataset_dict.json", "state.json")


@dataclass
class Table:
    """The rows of one file (or one split of a saved/hub dataset)."""

    name: str
    """How problems name it, e.g. `data.jsonl`."""
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """(row number, row) pairs; rows that could not be parsed are left out and reported."""

    def columns(self) -> list[str]:
        """Column names in order of first appearance."""
        seen: dict[str, None] = {}
        for _, row in self.rows:
            seen.update(dict.fromkeys(row))
        return list(seen)


@dataclass
class Source:
    """What was read, and the identity of the raw bytes it came from."""

    name: str
    kind: str
    """`file`, `folder`, `save_to_disk` or `hub`."""
    tables: list[Table]
    files: list[dict[str, Any]]
    """{path, sha256, size} of each raw file read."""
    sha256: str
    """The raw file's sha256 for one file; for several, a digest of their names and hashes."""


def load_source(source: str, *, split: str, problems: Problems) -> Source:
    """Read `source` (a local path or a hub id); row parse errors go to `problems`."""
    path = Path(source).expanduser()
    if path.is_file():
        return _from_files(path.name, "file", [(path, path.name)], problems)
    if path.is_dir():
        if any((path / m).exists() for m in _SAVE_TO_DISK_MARKERS):
            return _from_saved(path, split)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise ValidationError(f"folder {path} holds no data files and is not a datasets.save_to_disk folder",
                                  hint=f"put {', '.join(SUFFIXES)} files in it")
        return _from_files(path.name, "folder", [(p, p.relative_to(path).as_posix()) for p in files], problems)
    if _HUB_ID.match(source) and Path(source).suffix.lower() not in SUFFIXES:
        return _from_hub(source, split)
    raise NotFoundError(f"no file or folder at {path}", hint="give a local path or a Hugging Face hub dataset id")


def _from_files(name: str, kind: str, files: list[tuple[Path, str]], problems: Problems) -> Source:
    tables: list[Table] = []
    infos: list[dict[str, Any]] = []
    for path, display in files:
        tables.append(read_file(path, display, problems))
        infos.append({"path": display, "sha256": sha256_file(path), "size": path.stat().st_size})
    digest = str(infos[0]["sha256"]) if kind == "file" else _digest(infos)
    return Source(name=name, kind=kind, tables=tables, files=infos, sha256=digest)


def _digest(infos: list[dict[str, Any]]) -> str:
    h = hashlib.sha256(b"tunelog-dataset-source-v1\n")
    for info in sorted(infos, key=lambda i: i["path"]):
        h.update(f"{info['path']}\0{info['sha256']}\0{info['size']}\n".encode())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """Hash of one file's bytes (tunelog.store is not imported: it would slow the plugin's import check)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_file(path: Path, display: str, problems: Problems) -> Table:
    """One local file, by its suffix. Raises on a file that cannot be read at all or has no rows."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValidationError(f"{display}: unknown file type {suffix or '(none)'}",
                              hint=f"supported: {', '.join(SUFFIXES)}, or a datasets.save_to_disk folder")
    if path.stat().st_size == 0:
        raise ValidationError(f"{display} is empty: there are no rows to prepare")
    try:
        if suffix == ".parquet":
            table = _read_parquet(path, display)
        else:
            text = path.read_text(encoding="utf-8-sig")
            if suffix in (".csv", ".tsv"):
                table = _read_csv(text, display, "\t" if suffix == ".tsv" else ",", problems)
            elif suffix == ".json":
                table = _read_json(text, display, problems)
            else:
                table = _read_jsonl(text, display, problems)
    except UnicodeDecodeError as e:
        raise ValidationError(f"cannot read {display}: it is not UTF-8 text ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise ValidationError(f"cannot read {display}: {e.strerror or e}") from e
    if not table.rows and not problems:
        raise ValidationError(f"{display} is empty: there are no rows to prepare")
    return table


def _read_jsonl(text: str, display: str, problems: Problems) -> Table:
    table = Table(display)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            _add_json_row(table, number, line, problems)
    return table


def _add_json_row(table: Table, number: int, line: str, problems: Problems) -> None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        problems.add(f"{table.name} row {number}", f"not valid JSON ({e.msg} at column {e.colno})")
        return
    if isinstance(row, dict):
        table.rows.append((number, row))
    else:
        problems.add(f"{table.name} row {number}", f"expected a JSON object, got {_kind(row)}")


def _read_json(text: str, display: str, problems: Problems) -> Table:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # JSON Lines under a .json name, as datasets accepts too
            return _read_jsonl(text, display, problems)
        raise ValidationError(f"{display} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    if not isinstance(data, list):
        keys = f" with keys {', '.join(map(str, list(data)[:8]))}" if isinstance(data, dict) else ""
        raise ValidationError(f"{display}: expected a JSON array of objects (or JSON Lines), got {_kind(data)}{keys}")
    table = Table(display)
    for number, row in enumerate(data, start=1):
        if isinstance(row, dict):
            table.rows.append((number, row))
        else:
            problems.add(f"{display} row {number}", f"expected a JSON object, got {_kind(row)}")
    return table


def _read_csv(text: str, display: str, delimiter: str, problems: Problems) -> Table:
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # long documents in one cell
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ValidationError(f"{display} is empty: it has no header row")
    header = [h.strip() for h in header]
    table = Table(display)
    for number, cells in enumerate(reader, start=1):
        if not cells:
            continue
        if len(cells) != len(header):
            problems.add(f"{display} row {number}", f"has {len(cells)} fields but the header has {len(header)}")
            continue
        # An empty cell is an absent value: CSV cannot tell the two apart.
        table.rows.append((number, {h: (c if c != "" else None) for h, c in zip(header, cells, strict=True)}))
    return table


def _read_parquet(path: Path, display: str) -> Table:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except pyarrow.ArrowException as e:
        raise ValidationError(f"cannot read {display}: not a valid Parquet file ({e})") from e
    return Table(display, list(enumerate(rows, start=1)))


def _from_saved(path: Path, split: str) -> Source:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises several unrelated types for a damaged folder
        raise ValidationError(f"cannot read the saved dataset in {path}: {e}") from e
    ds = _pick_split(loaded, split, path.name)
    infos = [{"path": f"{path.name}/{p.relative_to(path).as_posix()}", "sha256": sha256_file(p), "size": p.stat().st_size}
             for p in sorted(path.rglob("*")) if p.is_file()]
    table = Table(f"{path.name}[{split}]", list(enumerate(ds.to_list(), start=1)))
    if not table.rows:
        raise ValidationError(f"{table.name} is empty: there are no rows to prepare")
    return Source(name=path.name, kind="save_to_disk", tables=[table], files=infos, sha256=_digest(infos))


def _pick_split(loaded: Any, split: str, name: str) -> Any:
    if not hasattr(loaded, "keys"):  # a single Dataset
        return loaded
    if split not in loaded:
        raise ValidationError(f"{name} has no split {split!r}", hint=f"its splits: {', '.join(loaded.keys())}")
    return loaded[split]


def _from_hub(hub_id: str, split: str) -> Source:
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, split=split)
    except Exception as e:  # offline, unknown id, missing split: all end the same way for the user
        raise NotFoundError(
            f"cannot load dataset {hub_id!r} from the Hugging Face hub: {type(e).__name__}: {e}",
            hint="without network, run datasets.load_dataset(...).save_to_disk(folder) on a connected machine "
                 "and give that folder (or a local JSON/JSONL/CSV/Parquet file) as the source") from e
    files = [Path(f["filename"]) for f in ds.cache_files]
    infos = [{"path": f.name, "sha256": sha256_file(f), "size": f.stat().st_size} for f in files]
    table = Table(f"{hub_id}[{split}]", list(enumerate(ds.to_list(), start=1)))
    if not table.rows:
        raise ValidationError(f"{table.name} is empty: there are no rows to prepare")
    return Source(name=hub_id, kind="hub", tables=[table], files=infos, sha256=_digest(infos))

