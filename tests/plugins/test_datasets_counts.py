"""The counts of what happens to rows, from a real `prepare` and real encoding with the tiny
tokenizer, to the one line `tunectl` and the run page show (`tunelog.frontends.data_counts`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.tiny import corpus
from tunelog.frontends.data_counts import data_counts
from tunelog.plugins.common.data import counts_text, encode_dataset, read_dataset
from tunelog.plugins.context import Context
from tunelog.plugins.datasets import backend


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def prepared(tmp_path: Path, rows: list[dict[str, Any]], **params: Any) -> tuple[dict[str, Any], Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "d.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ctx, _ = Context.local(tmp_path / "home")
    outputs = backend.prepare(ctx, params, {"source": str(source)})
    return outputs, ctx.artifact_path(outputs["dataset"])


def trainer_outputs(encoded: dict[str, Any]) -> dict[str, Any]:
    """The part of lora_trainer's `metrics` output that carries the encoding counts."""
    return {"metrics": {"dataset": {"encoding": encoded}}}


def test_chat_rows_truncated_and_dropped_per_reason(tmp_path: Path, tok: Any) -> None:
    long = " ".join(corpus(12, seed=1))
    rows = [{"instruction": f"say {w}", "output": w} for w in ("north", "south", "east")]
    rows += [{"instruction": "story", "output": long}, {"instruction": long, "output": "paris"}]
    rows += [{"instruction": "one too many", "output": "x"}]
    _, whole_folder = prepared(tmp_path / "whole", rows, max_rows=5)
    whole = encode_dataset(tok, read_dataset(whole_folder), max_length=40)
    assert counts_text(whole.counts) == ("5 records: 3 used · 1 truncated to max_length 40 (kept the start) · "
                                         "1 dropped (no response token within max_length)")
    # Split: the line adds the train and validation counts up.
    outputs, folder = prepared(tmp_path / "split", rows, max_rows=5, val_fraction=0.4)
    train, validation = (encode_dataset(tok, read_dataset(folder, s), max_length=40) for s in ("train", "validation"))
    assert (train.counts["records"], validation.counts["records"]) == (3, 2)
    line = data_counts([outputs, trainer_outputs({"train": train.counts, "validation": validation.counts})])
    assert line == ["6 alpaca rows: 3 used · 1 truncated to max_length 40 · 1 dropped (no response token within "
                    "max_length 40) · 1 left out (max_rows)"]
    dropped = encode_dataset(tok, read_dataset(whole_folder), max_length=40, truncation="drop")
    assert counts_text(dropped.counts) == "5 records: 3 used · 2 dropped (longer than max_length 40)"


def test_text_rows_are_counted_as_chunks(tmp_path: Path, tok: Any) -> None:
    outputs, folder = prepared(tmp_path, [{"text": t} for t in corpus(6)])
    encoded = encode_dataset(tok, read_dataset(folder), max_length=16)
    assert encoded.counts["chunks"] == len(encoded) > 1
    [line] = data_counts([outputs, trainer_outputs({"train": encoded.counts})])
    assert line.startswith(f"6 text rows: 6 used, cut into {len(encoded)} chunks of max_length 16")


def test_nothing_to_say_without_a_prepare_report() -> None:
    assert data_counts([{"adapter": "0" * 64}, {"metrics": {"loss": 1.0}}]) == []
