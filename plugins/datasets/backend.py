"""Operations of the `datasets` plugin. Importing this module stays cheap: pyarrow and datasets load
only when a Parquet file, a saved dataset or a hub id is read."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

from tunelog.events.errors import JobError, ValidationError
from tunelog.plugins.api import JobContext

from . import stream
from .formats import (
    FIELDS,
    FORMATS,
    KIND,
    MAPPABLE,
    STAGES,
    TAGS,
    Row,
    detect,
    expand_columns,
    labelled,
    normalise,
)
from .problems import Problems
from .readers import Source, Table, load_source
from .report import placeholders, summary

SCHEMA = 1
"""Version of the artifact layout and record shapes (see `tunelog.plugins.common.data`)."""


def prepare(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Read `inputs["source"]`, normalise and check every row, split, and store the dataset artifact."""
    source, opts = _check_request(params, inputs)
    big = _big_jsonl(source)
    if big is not None:
        return _prepare_in_passes(ctx, big, opts)
    problems = Problems()
    ctx.progress(0, 3, "reading source")
    src = load_source(source, split=opts["split"], problems=problems)
    columns = list(dict.fromkeys(c for t in src.tables for c in t.columns()))
    name = src.tables[0].name if len(src.tables) == 1 else "the source"
    _check_mapped_columns(name, columns, opts["given_columns"])
    tables = _first_rows(src.tables, opts["max_rows"])
    first = next((row for t in tables for _, row in t.rows), {})
    head = list(dict.fromkeys(c for t in tables for c in t.columns()))  # the columns of the rows used
    fmt, mapping, why = _choose_format(tables[0].name if tables else "the source", head, first, opts["format"],
                                       opts["columns"])
    ctx.log(f"format {fmt}" + (f" (detected from {why})" if why else " (as asked)"))
    _stop_point(ctx)
    ctx.progress(1, 3, "checking rows")
    records, numbers = _normalise_all(tables, fmt, mapping, opts["tags"], problems)
    problems.raise_if_any(f"{src.name} cannot be prepared as {fmt}")
    train, validation = split_records(records, val_fraction=opts["val_fraction"], seed=opts["seed"])
    _stop_point(ctx)
    ctx.progress(2, 3, "writing dataset")
    read = sum(len(t.rows) for t in src.tables)
    report = _report(fmt, read=read, used=len(records), train=len(train), validation=len(validation),
                     warnings=placeholders(records, numbers))
    meta = _meta(report, fmt=fmt, why=why, mapping=mapping, opts=opts, source=_source_meta(src, opts["split"]))
    folder = write_dataset(ctx.workdir / "dataset", train, validation, meta)
    return _store(ctx, folder, report, name=src.name)


def _report(fmt: str, *, read: int, used: int, train: int, validation: int, warnings: dict[str, Any]) -> dict[str, Any]:
    return {"format": fmt, "kind": KIND[fmt], "rows": read, "used": used,
            "dropped": {"max_rows": read - used} if read > used else {},
            "train": train, "validation": validation, "warnings": warnings}


def _meta(report: dict[str, Any], *, fmt: str, why: str, mapping: dict[str, str], opts: dict[str, Any],
          source: dict[str, Any]) -> dict[str, Any]:
    return {"schema": SCHEMA, "format": fmt, "kind": KIND[fmt], "detected_from": why or None, "columns": mapping,
            "tags": opts["tags"], "report": report,
            "counts": {"rows": report["used"], "train": report["train"], "validation": report["validation"]},
            "source": source, "seed": opts["seed"], "max_rows": opts["max_rows"],
            "split": {"val_fraction": opts["val_fraction"], "seed": opts["seed"],
                      "method": "random.Random(seed).shuffle(row indices); the first round(n * val_fraction) "
                                "rows are held out; both files keep source order"}}


def _store(ctx: JobContext, folder: Path, report: dict[str, Any], *, name: str) -> dict[str, Any]:
    for line in summary(report):
        ctx.log(line)
    sha = ctx.store_artifact("dataset", folder)
    ctx.log(f"{report['train']} train / {report['validation']} validation {report['kind']} records from {name} "
            f"-> {sha[:12]}")
    ctx.progress(3, 3, "done")
    return {"dataset": sha, "report": report}


def _big_jsonl(source: str) -> Path | None:
    """A local JSON Lines file big enough to prepare in passes (see `stream.py`), else None."""
    path = Path(source).expanduser()
    try:
        big = path.suffix.lower() in stream.SUFFIXES and path.is_file() and path.stat().st_size >= stream_from()
    except OSError:
        return None
    return path if big else None


def stream_from() -> int:
    """Size from which a JSON Lines file is prepared in passes (`TUNELOG_STREAM_FROM_BYTES`, else 64 MiB)."""
    given = os.environ.get("TUNELOG_STREAM_FROM_BYTES", "")
    return int(given) if given.isdigit() else stream.STREAM_FROM_BYTES


def _prepare_in_passes(ctx: JobContext, path: Path, opts: dict[str, Any]) -> dict[str, Any]:
    """`prepare` for a JSON Lines file bigger than memory: the same artifact, one row in memory at a time."""
    problems, display = Problems(), path.name
    ctx.progress(0, 3, "reading source")
    found = stream.scan(path, display, problems, max_rows=opts["max_rows"])
    _check_mapped_columns(display, list(found.columns), opts["given_columns"])
    fmt, mapping, why = _choose_format(display, list(found.head), found.first, opts["format"], opts["columns"])
    ctx.log(f"format {fmt}" + (f" (detected from {why})" if why else " (as asked)"))
    _stop_point(ctx)
    ctx.progress(1, 3, "checking rows")
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    records = ctx.workdir / "records.jsonl"
    try:
        used, warnings = stream.normalise_to(records, path, display, fmt=fmt, mapping=mapping, tags=opts["tags"],
                                             max_rows=opts["max_rows"], problems=problems)
        problems.raise_if_any(f"{display} cannot be prepared as {fmt}")
        marks = stream.held_out(used, val_fraction=opts["val_fraction"], seed=opts["seed"])
        _stop_point(ctx)
        ctx.progress(2, 3, "writing dataset")
        folder = ctx.workdir / "dataset"
        if folder.exists():
            shutil.rmtree(folder)
        train, validation, content = stream.write_split(records, folder, marks)
    finally:
        records.unlink(missing_ok=True)
    report = _report(fmt, read=found.rows, used=used, train=train, validation=validation, warnings=warnings)
    source = {"name": display, "kind": "file", "sha256": found.sha256,
              "files": [{"path": display, "sha256": found.sha256, "size": found.size}]}
    meta = _meta(report, fmt=fmt, why=why, mapping=mapping, opts=opts, source=source)
    _write_meta(folder, {**meta, "content_sha256": content})
    return _store(ctx, folder, report, name=display)


def _check_request(params: dict[str, Any], inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Every problem with the parameters at once (the daemon checks types; this checks meaning)."""
    opts = {"format": params.get("format", "auto"), "val_fraction": params.get("val_fraction", 0.0),
            "seed": params.get("seed", 0), "max_rows": params.get("max_rows"),
            "columns": params.get("columns") or {}, "tags": params.get("tags") or {},
            "split": params.get("split", "train")}
    bad: list[tuple[str, str]] = []
    source = inputs.get("source")
    if not isinstance(source, str) or not source.strip():
        bad.append(("input source", "give a local file or folder path, or a hub dataset id"))
    if opts["format"] not in ("auto", *FORMATS):
        bad.append(("param format", f"unknown format {opts['format']!r}; choose auto, {', '.join(FORMATS)}"))
    if not isinstance(opts["val_fraction"], int | float) or not 0 <= opts["val_fraction"] < 1:
        bad.append(("param val_fraction", "must be a number from 0 up to (not including) 1"))
    if opts["max_rows"] is not None and (not isinstance(opts["max_rows"], int) or opts["max_rows"] < 1):
        bad.append(("param max_rows", "must be a positive whole number, or empty for all rows"))
    for param, known in (("columns", MAPPABLE), ("tags", tuple(TAGS))):
        if not isinstance(opts[param], dict):
            bad.append((f"param {param}", f"must map names ({', '.join(known)}) to strings"))
            continue
        for key, value in opts[param].items():
            if key not in known:
                bad.append((f"param {param}.{key}", f"unknown name; known: {', '.join(known)}"))
            elif not isinstance(value, str) or not value:
                bad.append((f"param {param}.{key}", "must name a column" if param == "columns" else "must be a string"))
    if bad:
        raise ValidationError.collect("the prepare request is invalid", bad)
    opts["given_columns"] = dict(opts["columns"])
    opts["columns"] = expand_columns(opts["columns"])
    return str(source).strip(), opts


def _check_mapped_columns(name: str, have: list[str], given: dict[str, str]) -> None:
    """A mapped column the source does not have is refused, naming it and the columns there are."""
    bad = [(f"columns.{key}", f"names column {column!r}, which {name} "
                              f"does not have (its columns: {', '.join(have) or 'none'})")
           for key, column in given.items() if column not in have]
    if bad:
        raise ValidationError.collect("the column mapping names columns that are not in the data: "
                                      + "; ".join(f"{where} {message}" for where, message in bad), bad,
                                      hint="map with the datasets.prepare `columns` parameter, or `tunectl train "
                                           "--columns FIELD=COLUMN` (e.g. --columns response=answer)")


def _first_rows(tables: list[Table], max_rows: int | None) -> list[Table]:
    if max_rows is None:
        return tables
    out, left = [], max_rows
    for table in tables:
        if left <= 0:
            break
        out.append(Table(table.name, table.rows[:left]))
        left -= len(out[-1].rows)
    return out


def _tables_format(tables: list[Table], asked: str, mapping: dict[str, str]) -> tuple[str, dict[str, str], str]:
    """`_choose_format` for rows already read: their columns and first row, named by their source."""
    columns = list(dict.fromkeys(c for t in tables for c in t.columns()))
    first = next((row for t in tables for _, row in t.rows), {})
    return _choose_format(_tables_name(tables), columns, first, asked, mapping)


def _tables_name(tables: list[Table]) -> str:
    return tables[0].name if len(tables) == 1 else "the source"


def _choose_format(name: str, columns: list[str], first: dict[str, Any], asked: str, mapping: dict[str, str]
                   ) -> tuple[str, dict[str, str], str]:
    """(format, column mapping, why it was detected or "" when asked for)."""
    if asked != "auto":
        if KIND[asked] == "chat":
            _refuse_hidden_labels(columns, first, mapping, asked)
        if asked == "kto" and "label" not in mapping:
            return asked, {**mapping, "label": labelled(columns, first, mapping) or "label"}, ""
        return asked, dict(mapping), ""
    fmt, mapping, why = detect(columns, first, mapping)
    if fmt is None:
        expected = "; ".join(f"{f}: {', '.join(req)}" for f, (req, _) in FIELDS.items())
        raise ValidationError(f"cannot tell the format of {name} from its "
                              f"columns ({', '.join(columns) or 'none'})",
                              hint=f"expected columns by format: {expected}. Set the format (--format, or the "
                                   "`format` parameter) and map your column names with `tunectl train --columns "
                                   "response=answer` (the datasets.prepare `columns` parameter)")
    return fmt, mapping, why


def _refuse_hidden_labels(columns: list[str], first: dict[str, Any], mapping: dict[str, str], asked: str) -> None:
    """A chat format asked for data that holds preference pairs or KTO labels would train on rejected
    or bad answers as if they were good ones."""
    if {mapping.get("chosen", "chosen"), mapping.get("rejected", "rejected")} <= set(columns):
        kind, what = "preference", "chosen/rejected answer pairs"
    elif labelled(columns, first, mapping):
        kind, what = "kto", "answers labelled good or bad"
    else:
        return
    raise ValidationError(f"format {asked} was asked for, but the data holds {what}: training on it as "
                          f"supervised {asked} data would learn the bad answers too",
                          hint=f"train it with a preference stage ({STAGES[kind]}) and format auto or {kind}")


def _normalise_all(tables: list[Table], fmt: str, mapping: dict[str, str], tags: dict[str, str],
                   problems: Problems) -> tuple[list[dict[str, Any]], list[str]]:
    """The records, and where each came from (`file row N`)."""
    required, optional = FIELDS[fmt]
    records, numbers = [], []
    for table in tables:
        columns = table.columns()
        absent = [mapping.get(f, f) for f in required if mapping.get(f, f) not in columns]
        absent += [mapping[f] for f in optional if f in mapping and mapping[f] not in columns]
        for name in absent:
            problems.add(table.name, f"column '{name}' is missing (columns: {', '.join(columns) or 'none'})")
        if absent:
            continue
        for number, raw in table.rows:
            row = Row(raw, mapping, tags)
            record = normalise(fmt, row)
            for error in row.errors:
                problems.add(f"{table.name} row {number}", error)
            if record is not None:
                records.append(record)
                numbers.append(f"{table.name} row {number}")
    return records, numbers


def split_records(records: list[dict[str, Any]], *, val_fraction: float, seed: int
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seeded, deterministic train/validation split; both parts keep the source order."""
    n = len(records)
    if val_fraction <= 0:
        return list(records), []
    if n < 2:
        raise ValidationError(f"val_fraction {val_fraction} needs at least 2 rows, the source has {n}")
    held = max(1, min(n - 1, round(n * val_fraction)))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    validation = set(order[:held])
    return ([r for i, r in enumerate(records) if i not in validation],
            [r for i, r in enumerate(records) if i in validation])


def write_dataset(folder: Path, train: list[dict[str, Any]], validation: list[dict[str, Any]],
                  meta: dict[str, Any]) -> Path:
    """Write the artifact folder; `meta` gains `content_sha256` over the normalised records."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    content = hashlib.sha256(b"tunelog-dataset-content-v1\n")
    for split, records in (("train", train), ("validation", validation)):
        if split == "train" or records:
            data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
            (folder / f"{split}.jsonl").write_bytes(data)
            content.update(f"{split}\0{len(data)}\0".encode() + data)
    _write_meta(folder, {**meta, "content_sha256": content.hexdigest()})
    return folder


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _source_meta(src: Source, split: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": src.name, "kind": src.kind, "sha256": src.sha256, "files": src.files}
    if src.kind in ("save_to_disk", "hub"):
        out["split"] = split
    return out


def _stop_point(ctx: JobContext) -> None:
    if ctx.should_stop():
        raise JobError("prepare was cancelled before it finished; nothing was stored")


def render(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The dataset through the model's chat template and tokenizer (see `.render`)."""
    from .render import render as run

    return run(ctx, params, inputs)
