"""Up-front checks of `prepare` requests, run by the daemon at submit (manifest `checks:`).

When the prepared data feeds a training stage (a consumer with a `stage` parameter, e.g.
`lora_trainer.train`), the local source is read and its format detected as `prepare` will, and
data of the wrong kind for that stage is refused before anything is queued, naming the file, its
first row and the columns that decide it: preference pairs given to supervised training would
learn the rejected answers too; chat rows given to DPO have no pair to compare; GRPO needs a
prompt column. A source that is not a local file or folder (a hub id), or one larger than
`CHECKED_BYTES` (reading it whole would slow every submit), is left to the job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelog.events.errors import TunelogError

from .backend import _first_rows, _tables_format
from .formats import KIND, STAGE_KINDS, expand_columns
from .problems import Problems
from .readers import load_source

Found = list[tuple[str, str]]
CHECKED_BYTES = 16 * 2**20
"""Sources up to this size are read at submit."""
WHAT = {"chat": "chat examples", "text": "raw text", "preference": "preference pairs (chosen/rejected answers)",
        "kto": "answers labelled good or bad (KTO)", "prompt": "prompts without answers"}
"""How a refusal names each kind of record."""


def prepare(params: dict[str, Any], inputs: dict[str, Any], facts: dict[str, Any]) -> tuple[Found, Found]:
    """(problems, warnings) of one datasets.prepare request, judged by the stages that train on it."""
    stages = {c["node"]: str(c["params"].get("stage") or "sft") for c in facts.get("consumers", [])
              if isinstance(c.get("params"), dict) and "stage" in c["params"]}
    source = inputs.get("source")
    if not stages or not isinstance(source, str) or not 0 < _size(Path(source).expanduser()) <= CHECKED_BYTES:
        return [], []
    try:
        src = load_source(str(Path(source).expanduser()), split=str(params.get("split") or "train"),
                          problems=Problems())
    except TunelogError:
        return [], []  # prepare reports what it cannot read when it runs
    tables = _first_rows(src.tables, params.get("max_rows"))
    columns = list(dict.fromkeys(c for t in tables for c in t.columns()))
    first = next((n for t in tables for n, _ in t.rows), 1)
    name = tables[0].name if tables else Path(source).name
    try:
        fmt = _tables_format(tables, str(params.get("format") or "auto"),
                             expand_columns(params.get("columns") or {}))[0]
    except TunelogError:
        if "grpo" in stages.values() and "prompt" not in columns:
            return [("inputs.source", f"{name} has no prompt column (its columns: {', '.join(columns) or 'none'}); "
                                      f"stage grpo of node {_nodes(stages, 'grpo')} needs one prompt a row")], []
        return [], []  # prepare reports the columns it cannot make sense of when it runs
    kind = KIND[fmt]
    problems = []
    for stage in sorted(set(stages.values())):
        wants = STAGE_KINDS.get(stage)
        if wants is None or kind in wants:
            continue
        fits = [s for s, kinds in STAGE_KINDS.items() if kind in kinds]
        problems.append(("inputs.source", f"{name} row {first} holds {WHAT[kind]} (columns: {', '.join(columns)}), "
                                          f"but node {_nodes(stages, stage)} trains stage {stage} on "
                                          f"{' or '.join(WHAT[k] for k in wants)}; "
                                          f"use stage {' or '.join(fits)} for this data, or other data"))
    return problems, []


def _nodes(stages: dict[str, str], stage: str) -> str:
    return ", ".join(sorted(n for n, s in stages.items() if s == stage))


def _size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder; 0 when there is nothing."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
