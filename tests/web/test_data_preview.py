"""The Data page's preview (the datasets plugin's own reading and normalising code, no torch): the
detected format, the records, and the rows with problems counted by reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelog.events.errors import ValidationError
from tunelog.plugins.datasets.ui_component import data_files, preview


def write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rows_with_problems_are_counted_by_reason_before_anything_runs(tmp_path: Path) -> None:
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(4)]
    rows += [{"instruction": "q", "output": None}, {"instruction": "q", "output": 3}, {"instruction": "q", "output": 4}]
    p = preview(str(write(tmp_path / "d.jsonl", rows)), fmt="auto", columns={})
    assert (p["format"], p["rows"], p["used"], p["left_out"]) == ("alpaca", 7, 4, 3)
    assert sum(n for _, n in p["reasons"]) == 3 and len(p["reasons"]) == 2
    assert p["where"][0] == "d.jsonl row 5"
    assert p["records"][0]["messages"][-1] == {"role": "assistant", "content": "a0"}


def test_a_mapping_places_unknown_columns_and_a_wrong_one_is_refused_by_name(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(ValidationError, match="cannot tell the format"):
        preview(str(path), fmt="auto", columns={})
    p = preview(str(path), fmt="alpaca", columns={"instruction": "question", "output": "answer"})
    assert p["used"] == 1 and p["mapping"]["output"] == "answer"
    with pytest.raises(ValidationError, match="columns.output"):
        preview(str(path), fmt="alpaca", columns={"instruction": "question", "output": "reply"})


def test_data_files_lists_known_suffixes_and_skips_hidden_ones(tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.csv", "notes.txt", ".hidden/c.json", "sub/d.parquet"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in data_files([tmp_path, tmp_path / "none"])] == [
        "a.jsonl", "b.csv", "sub/d.parquet"]
