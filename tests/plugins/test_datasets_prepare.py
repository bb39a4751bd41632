"""The datasets plugin's `prepare`: every format from every file type, detection, mapping, split."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tunelog.plugins.api import Manifest
from tunelog.plugins.common.data import read_dataset, read_meta
from tunelog.plugins.context import Context
from tunelog.plugins.datasets import backend

PLUGIN = Path(backend.__file__).parent
FILE_TYPES = ("jsonl", "json", "csv", "parquet", "save_to_disk")

TOOLS = [{"name": "weather", "description": "Weather for a city", "parameters": {"type": "object"}}]
ROWS: dict[str, list[dict[str, Any]]] = {
    "alpaca": [
        {"instruction": "Name the capital of France.", "output": "Paris."},
        {"instruction": "Translate to English.", "input": "bonjour", "output": "hello", "system": "You translate."},
        {"instruction": "And of Germany?", "output": "Berlin.", "history": [["Capital of Spain?", "Madrid."]]},
    ],
    "sharegpt": [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}], "system": "Be kind."},
        {"conversations": [{"from": "human", "value": "Weather in Paris?"},
                           {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
                           {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "It is sunny."}],
         "tools": json.dumps(TOOLS)},
    ],
    "messages": [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                      {"role": "assistant", "content": "4"}]},
        {"messages": [{"role": "user", "content": "red?"}, {"role": "assistant", "content": "a colour"},
                      {"role": "user", "content": "blue?"}, {"role": "assistant", "content": "also a colour"}]},
    ],
    "text": [{"text": "The quick river runs to the ocean."}, {"text": "Stone and cloud.\nA second line."}],
    "preference": [
        {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "system": "You do sums."},
    ],
}

EXPECTED: dict[str, list[dict[str, Any]]] = {
    "alpaca": [
        {"messages": [{"role": "user", "content": "Name the capital of France."},
                      {"role": "assistant", "content": "Paris."}]},
        {"messages": [{"role": "system", "content": "You translate."},
                      {"role": "user", "content": "Translate to English.\nbonjour"},
                      {"role": "assistant", "content": "hello"}]},
        {"messages": [{"role": "user", "content": "Capital of Spain?"}, {"role": "assistant", "content": "Madrid."},
                      {"role": "user", "content": "And of Germany?"}, {"role": "assistant", "content": "Berlin."}]},
    ],
    "sharegpt": [
        {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "hello"}]},
        {"messages": [{"role": "user", "content": "Weather in Paris?"},
                      {"role": "assistant", "content": '{"name": "weather", "arguments": {"city": "Paris"}}'},
                      {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "It is sunny."}],
         "tools": TOOLS},
    ],
    "messages": ROWS["messages"],
    "text": ROWS["text"],
    "preference": [
        {"prompt": [{"role": "user", "content": "Capital of France?"}], "chosen": "Paris.", "rejected": "Lyon."},
        {"prompt": [{"role": "system", "content": "You do sums."}, {"role": "user", "content": "2+2?"}],
         "chosen": "4", "rejected": "5"},
    ],
}


def write_rows(folder: Path, rows: list[dict[str, Any]], kind: str, name: str = "data") -> Path:
    """Write rows as one file type (nested values become JSON text in CSV cells)."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "json":
        path = folder / f"{name}.json"
        path.write_text(json.dumps(rows, indent=1))
    elif kind == "csv":
        path = folder / f"{name}.csv"
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for r in rows:
                writer.writerow([v if isinstance(v, str) else "" if v is None else json.dumps(v)
                                 for v in (r.get(c) for c in columns)])
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = folder / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(_rectangular(rows)), path)
    else:
        import datasets

        path = folder / name
        datasets.Dataset.from_list(_rectangular(rows)).save_to_disk(str(path))
    return path


def _rectangular(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row with every column (arrow's from_pylist/from_list take the first row's keys only)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return [{c: r.get(c) for c in columns} for r in rows]


def run(tmp_path: Path, source: Path | str, **params: Any) -> tuple[str, Path, list[tuple[str, dict[str, Any]]]]:
    ctx, messages = Context.local(tmp_path / "home")
    sha = backend.prepare(ctx, params, {"source": str(source)})["dataset"]
    return sha, ctx.artifact_path(sha), messages


@pytest.mark.parametrize("kind", FILE_TYPES)
@pytest.mark.parametrize("fmt", list(ROWS))
def test_every_format_from_every_file_type(tmp_path: Path, fmt: str, kind: str) -> None:
    source = write_rows(tmp_path / "in", ROWS[fmt], kind)
    sha, folder, messages = run(tmp_path, source, format=fmt)
    assert read_dataset(folder) == EXPECTED[fmt]
    meta = read_meta(folder)
    assert meta["format"] == fmt and meta["counts"] == {"rows": len(ROWS[fmt]), "train": len(ROWS[fmt]),
                                                       "validation": 0}
    assert not (folder / "validation.jsonl").exists()
    assert [(b["name"], b["sha256"]) for k, b in messages if k == "artifact"] == [("dataset", sha)]


@pytest.mark.parametrize("fmt", list(ROWS))
def test_normalised_content_hash_does_not_depend_on_the_file_type(tmp_path: Path, fmt: str) -> None:
    hashes = {kind: read_meta(run(tmp_path / kind, write_rows(tmp_path / kind, ROWS[fmt], kind))[1])
              ["content_sha256"] for kind in ("jsonl", "csv", "parquet")}
    assert len(set(hashes.values())) == 1, hashes


@pytest.mark.parametrize("fmt", list(ROWS))
def test_auto_detects_the_format_and_says_so(tmp_path: Path, fmt: str) -> None:
    sha, folder, messages = run(tmp_path, write_rows(tmp_path, ROWS[fmt], "jsonl"))
    meta = read_meta(folder)
    assert meta["format"] == fmt and meta["detected_from"]
    assert ("log", {"line": f"format {fmt} (detected from {meta['detected_from']})"}) in messages
    assert read_dataset(folder) == EXPECTED[fmt]


def test_messages_column_holding_sharegpt_turns_is_detected_as_sharegpt(tmp_path: Path) -> None:
    rows = [{"messages": r["conversations"]} for r in ROWS["sharegpt"]]
    _, folder, _ = run(tmp_path, write_rows(tmp_path, rows, "jsonl"))
    assert read_meta(folder)["format"] == "sharegpt"
    assert read_dataset(folder)[1]["messages"][2] == {"role": "tool", "content": "sunny"}


def test_column_mapping_overrides(tmp_path: Path) -> None:
    rows = [{"question": r["instruction"], "answer": r["output"]} for r in ROWS["alpaca"]]
    _, folder, _ = run(tmp_path, write_rows(tmp_path, rows, "csv"), columns={"instruction": "question",
                                                                             "output": "answer"})
    assert read_meta(folder)["format"] == "alpaca"
    assert read_dataset(folder)[0] == EXPECTED["alpaca"][0]


def test_openai_content_parts_and_tool_calls_become_text(tmp_path: Path) -> None:
    call = {"type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}
    rows = [{"messages": [{"role": "developer", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
                          {"role": "user", "content": "Oslo?"},
                          {"role": "assistant", "content": None, "tool_calls": [call]},
                          {"role": "tool", "content": "rain"}, {"role": "assistant", "content": "Rain."}],
             "tools": TOOLS}]
    _, folder, _ = run(tmp_path, write_rows(tmp_path, rows, "jsonl"))
    record = read_dataset(folder)[0]
    assert record["messages"][0] == {"role": "system", "content": "Be brief."}
    assert json.loads(record["messages"][2]["content"]) == [call["function"]]
    assert record["tools"] == TOOLS


def test_preference_answers_given_as_conversations(tmp_path: Path) -> None:
    rows = [{"prompt": [{"role": "user", "content": "Hi?"}],
             "chosen": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!"}],
             "rejected": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Go away."}]}]
    _, folder, _ = run(tmp_path, write_rows(tmp_path, rows, "jsonl"))
    assert read_dataset(folder) == [{"prompt": [{"role": "user", "content": "Hi?"}], "chosen": "Hello!",
                                     "rejected": "Go away."}]


def _numbered(n: int) -> list[dict[str, Any]]:
    return [{"instruction": f"question {i}", "output": f"answer {i}"} for i in range(n)]


def test_seeded_split_is_deterministic_disjoint_and_ordered(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "in", _numbered(20), "jsonl")
    first = run(tmp_path / "a", source, val_fraction=0.25, seed=7)
    again = run(tmp_path / "b", source, val_fraction=0.25, seed=7)
    other = run(tmp_path / "c", source, val_fraction=0.25, seed=8)
    assert first[0] == again[0]  # same artifact hash, from a separate store
    train, val = read_dataset(first[1]), read_dataset(first[1], "validation")
    assert len(train) == 15 and len(val) == 5
    index = [int(r["messages"][0]["content"].split()[1]) for r in train + val]
    assert sorted(index) == list(range(20))
    assert index[:15] == sorted(index[:15]) and index[15:] == sorted(index[15:])
    assert read_dataset(other[1], "validation") != val
    meta = read_meta(first[1])
    assert meta["counts"] == {"rows": 20, "train": 15, "validation": 5}
    assert meta["seed"] == 7 and meta["split"]["val_fraction"] == 0.25


def test_meta_records_source_and_content_hashes(tmp_path: Path) -> None:
    from tunelog.store.artifacts import sha256_file

    source = write_rows(tmp_path / "in", _numbered(4), "jsonl")
    _, folder, _ = run(tmp_path, source, max_rows=3)
    meta = read_meta(folder)
    assert meta["source"]["sha256"] == sha256_file(source)
    assert meta["source"]["files"] == [{"path": "data.jsonl", "sha256": sha256_file(source),
                                        "size": source.stat().st_size}]
    assert meta["counts"]["rows"] == 3 and meta["max_rows"] == 3
    assert len(meta["content_sha256"]) == 64


def test_folder_of_files_is_read_in_name_order(tmp_path: Path) -> None:
    write_rows(tmp_path / "in", _numbered(2), "jsonl", name="a")
    write_rows(tmp_path / "in", _numbered(3)[2:], "csv", name="b")
    _, folder, _ = run(tmp_path, tmp_path / "in")
    meta = read_meta(folder)
    assert meta["source"]["kind"] == "folder" and [f["path"] for f in meta["source"]["files"]] == ["a.jsonl", "b.csv"]
    assert [r["messages"][1]["content"] for r in read_dataset(folder)] == ["answer 0", "answer 1", "answer 2"]


def test_saved_dataset_dict_uses_the_split_param(tmp_path: Path) -> None:
    import datasets

    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(_numbered(3)),
                          "test": datasets.Dataset.from_list(_numbered(1))}).save_to_disk(str(saved))
    _, folder, _ = run(tmp_path, saved, split="test")
    meta = read_meta(folder)
    assert meta["counts"]["rows"] == 1 and meta["source"]["kind"] == "save_to_disk"
    assert meta["source"]["split"] == "test"


def test_manifest_decodes_and_matches_the_backend() -> None:
    manifest = msgspec.yaml.decode((PLUGIN / "manifest.yaml").read_bytes(), type=Manifest)
    op = manifest.operations["prepare"]
    assert manifest.name == "datasets" and op.resource == "cpu" and callable(backend.prepare)
    assert op.inputs["source"].type == "path" and op.outputs["dataset"].type == "dataset"
    assert op.params["format"].choices == ["auto", "alpaca", "sharegpt", "messages", "text", "preference", "kto", "prompt"]
    assert op.params["max_rows"].default is None and op.params["val_fraction"].default == 0.0


def test_importing_the_backend_and_data_library_stays_light() -> None:
    code = ("import sys, tunelog.plugins.datasets.backend, tunelog.plugins.common.data; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'pyarrow', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
