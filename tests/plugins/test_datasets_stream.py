"""A JSON Lines file prepared in passes (files bigger than memory) gives the artifact the in-memory
path gives, byte for byte, and the same error naming the same rows."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tunelog.events.errors import ValidationError
from tunelog.plugins.context import Context
from tunelog.plugins.datasets import backend


def prepare(tmp_path: Path, source: Path, *, passes: bool, monkeypatch: pytest.MonkeyPatch,
            **params: Any) -> tuple[str, dict[str, Any], list[str]]:
    monkeypatch.setenv("TUNELOG_STREAM_FROM_BYTES", "1" if passes else str(1 << 40))
    ctx, messages = Context.local(tmp_path / ("passes" if passes else "memory"))
    out = backend.prepare(ctx, params, {"source": str(source)})
    return out["dataset"], out["report"], [str(b["line"]) for k, b in messages if k == "log"]


def rows(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        extra = {"system": "be brief"} if i == 7 else {}  # a column that only a later row has
        text = rng.choice(["plain", "with\u2028a line separator", "ünïcode ✓", "hi {{name}}", "tab\there"])
        out.append(json.dumps({"instruction": f"q{i} {text}", "output": f"a{i}", **extra}, ensure_ascii=i % 2 == 0 or "\u2028" in text))
    return out


@pytest.mark.parametrize("params", [{}, {"val_fraction": 0.25, "seed": 3}, {"max_rows": 9, "val_fraction": 0.5},
                                    {"format": "alpaca", "val_fraction": 0.1}])
def test_in_passes_the_artifact_is_the_in_memory_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      params: dict[str, Any]) -> None:
    lines = rows(40, seed=1)
    source = tmp_path / "data.jsonl"
    # a BOM, blank lines, CRLF endings
    source.write_bytes(b"\xef\xbb\xbf" + ("\n\n".join(lines[:20]) + "\r\n" + "\n".join(lines[20:]) + "\n").encode())
    memory = prepare(tmp_path, source, passes=False, monkeypatch=monkeypatch, **params)
    passes = prepare(tmp_path, source, passes=True, monkeypatch=monkeypatch, **params)
    assert passes == memory
    assert memory[1]["warnings"]["placeholder"]["count"] > 1


def test_in_passes_bad_rows_are_counted_and_named_as_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = rows(200, seed=2)
    for i in range(3, 200, 3):
        lines[i] = "{not json" if i % 2 else json.dumps({"instruction": 5, "output": "x"})
    source = tmp_path / "bad.jsonl"
    lines[100] = json.dumps({"instruction": "a raw\u2028line separator", "output": "x"}, ensure_ascii=False)
    source.write_text("\n".join(lines) + "\n[1, 2]\n")  # U+2028 ends a line for str.splitlines: 2 bad rows
    errors = []
    for passes in (False, True):
        with pytest.raises(ValidationError) as caught:
            prepare(tmp_path, source, passes=passes, monkeypatch=monkeypatch)
        errors.append((caught.value.message, caught.value.problems))
    assert errors[0] == errors[1]
    assert "69 problems, first 50 shown; nothing was stored" in errors[1][0]
    assert not list((tmp_path / "passes").rglob("*.jsonl"))
