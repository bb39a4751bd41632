"""`prepare` on bad input: every problem reported at once, naming file, row and field; nothing stored."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunelog.events.errors import NotFoundError, TunelogError, ValidationError
from tunelog.plugins.context import Context
from tunelog.plugins.datasets import backend
from tunelog.plugins.datasets.formats import CANONICAL, FORMATS, Row, normalise


def prepare_fails(tmp_path: Path, source: Path | str, error: type[TunelogError] = ValidationError,
                  **params: Any) -> TunelogError:
    """Run prepare, expect `error`, and check that no artifact was stored."""
    ctx, messages = Context.local(tmp_path / "home")
    with pytest.raises(error) as info:
        backend.prepare(ctx, params, {"source": str(source)})
    assert not list((tmp_path / "home" / "artifacts" / "sha256").iterdir())
    assert not [m for m in messages if m[0] == "artifact"]
    return info.value


def where(err: TunelogError) -> list[str]:
    return [f"{p['where']}: {p['message']}" for p in err.problems]


def test_every_bad_row_of_a_jsonl_file_is_reported_at_once(tmp_path: Path) -> None:
    lines = [
        {"instruction": "ok", "output": "fine"},
        {"instruction": "no answer"},
        {"instruction": "", "output": 3},
        "{not json",
        ["a", "list"],
        {"instruction": "ok", "input": 5, "output": "x", "history": [["q"]]},
        {"instruction": "ok", "output": "fine"},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    err = prepare_fails(tmp_path, path, format="alpaca")
    assert where(err) == [
        "data.jsonl row 2: field 'output' is missing",
        "data.jsonl row 3: field 'instruction' is empty",
        "data.jsonl row 3: field 'output' must be a string, got a number",
        "data.jsonl row 4: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        "data.jsonl row 5: expected a JSON object, got a list",
        "data.jsonl row 6: field 'input' must be a string, got a number",
        "data.jsonl row 6: field 'history[0]' must be a [question, answer] pair of strings",
    ]
    assert err.message == "data.jsonl cannot be prepared as alpaca: 7 problems; nothing was stored"
    assert "data.jsonl row 2: field 'output' is missing" in str(err)


def test_chat_turn_problems_name_the_nested_field(tmp_path: Path) -> None:
    rows = [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "yo"}]},
        {"conversations": [{"from": "human", "value": "hi"}]},
        {"conversations": [{"from": "human"}, {"from": "gpt", "value": " "}], "tools": "{bad"},
        {"conversations": "[]"},
    ]
    path = tmp_path / "chats.json"
    path.write_text(json.dumps(rows))
    err = prepare_fails(tmp_path, path)
    assert where(err) == [
        "chats.json row 1: field 'conversations[1].from' has unknown role 'bot' (known: assistant, chatgpt, "
        "developer, function, function_call, gpt, human, ipython, model, observation, system, tool, user; name yours in the `tags` of a --columns mapping "
        'file or the datasets.prepare `tags` parameter, e.g. {"assistant_tag": "bot"})',
        "chats.json row 2: field 'conversations' has no assistant turn to learn from",
        "chats.json row 3: field 'conversations[0].value' is missing",
        "chats.json row 3: field 'conversations[1].value' is empty (an assistant turn needs text)",
        "chats.json row 3: field 'tools' is not valid JSON (Expecting property name enclosed in double quotes at "
        "column 2)",
        "chats.json row 4: field 'conversations' must be a non-empty list of turns, got an empty list",
    ]


def test_preference_rows_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,chosen,rejected\nQ?,same,same\n,a,b\nQ?,,b\n")
    err = prepare_fails(tmp_path, path, format="preference")
    assert where(err) == ["pairs.csv row 1: fields 'chosen' and 'rejected' are identical",
                          "pairs.csv row 2: field 'prompt' is missing",
                          "pairs.csv row 3: field 'chosen' is missing"]


def test_mapped_column_names_appear_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n{"question": "q2"}\n')
    err = prepare_fails(tmp_path, path, columns={"instruction": "question", "output": "answer"})
    assert where(err) == ["qa.jsonl row 2: field 'answer' is missing"]


def test_problem_list_is_capped_but_the_total_is_given(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"q{i}", "output": ""}) + "\n" for i in range(120)))
    err = prepare_fails(tmp_path, path, format="alpaca")
    assert len(err.problems) == 50 and "120 problems, first 50 shown" in err.message
    assert err.problems[0]["where"] == "big.jsonl row 1" and err.problems[-1]["where"] == "big.jsonl row 50"


def test_missing_column_is_one_error_for_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("instruction,answer\nq,a\nq2,a2\n")
    err = prepare_fails(tmp_path, path, format="alpaca")
    assert where(err) == ["data.csv: column 'output' is missing (columns: instruction, answer)"]


def test_undetectable_format_lists_the_columns_and_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"question": "q", "reply": "a"}\n')
    err = prepare_fails(tmp_path, path)
    assert err.message == "cannot tell the format of data.jsonl from its columns (question, reply)"
    assert err.hint and "alpaca: instruction, output" in err.hint and "columns" in err.hint


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.jsonl", b"", "empty.jsonl is empty: there are no rows to prepare"),
    ("blank.jsonl", b"\n  \n", "blank.jsonl is empty: there are no rows to prepare"),
    ("empty.json", b"[]", "empty.json is empty: there are no rows to prepare"),
    ("header.csv", b"instruction,output\n", "header.csv is empty: there are no rows to prepare"),
    ("latin1.csv", "text\ncaf\u00e9\n".encode("latin-1"),
     "cannot read latin1.csv: it is not UTF-8 text (invalid continuation byte at byte 8)"),
    ("broken.parquet", b"PAR1 not really", "cannot read broken.parquet: not a valid Parquet file"),
    ("object.json", b'{"a": 1}', "object.json: expected a JSON array of objects (or JSON Lines), got an object "
                                 "with keys a"),
    ("notes.txt", b"hello", "notes.txt: unknown file type .txt"),
])
def test_unreadable_or_empty_files_get_precise_errors(tmp_path: Path, name: str, content: bytes,
                                                      message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert prepare_fails(tmp_path, path).message.startswith(message)


def test_missing_path_is_not_found(tmp_path: Path) -> None:
    err = prepare_fails(tmp_path, tmp_path / "nope.jsonl", NotFoundError)
    assert err.message == f"no file or folder at {tmp_path / 'nope.jsonl'}"


def test_folder_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "README.md").write_text("hi")
    assert "holds no data files" in prepare_fails(tmp_path, tmp_path / "in").message


def test_hub_id_goes_to_load_dataset_and_fails_clearly_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to fall back on
    started = time.monotonic()
    err = prepare_fails(tmp_path, "tunelog-test/no-such-dataset", NotFoundError)
    assert time.monotonic() - started < 30
    assert err.message.startswith("cannot load dataset 'tunelog-test/no-such-dataset' from the Hugging Face hub")
    assert err.hint and "save_to_disk" in err.hint


def test_saved_dataset_dict_without_the_split(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": "a b"}])}).save_to_disk(str(tmp_path / "s"))
    err = prepare_fails(tmp_path, tmp_path / "s", split="validation")
    assert err.message == "s has no split 'validation'" and err.hint == "its splits: train"


def test_bad_parameters_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a"}\n')
    err = prepare_fails(tmp_path, path, format="yaml", val_fraction=1.5, max_rows=0,
                        columns={"answer": "output", "text": ""})
    assert [p["where"] for p in err.problems] == ["param format", "param val_fraction", "param max_rows",
                                                  "param columns.answer", "param columns.text"]


def test_validation_split_needs_two_rows(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text('{"text": "a"}\n')
    assert "needs at least 2 rows" in prepare_fails(tmp_path, path, val_fraction=0.5).message


def test_cancel_before_writing_stores_nothing(tmp_path: Path) -> None:
    from tunelog.events.errors import JobError

    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a"}\n')
    ctx, _ = Context.local(tmp_path / "home")
    ctx.request_stop()
    with pytest.raises(JobError):
        backend.prepare(ctx, {}, {"source": str(path)})
    assert not list((tmp_path / "home" / "artifacts" / "sha256").iterdir())


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                     | st.sampled_from(["user", "gpt", "assistant", "human", "[", "[]", "{}"]),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["role", "content", "from", "value", "type", "text", "tool_calls"]),
                         inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(FORMATS), raw=st.dictionaries(st.sampled_from(CANONICAL), _JSON, max_size=6))
def test_any_row_is_either_a_well_formed_record_or_named_errors(fmt: str, raw: dict[str, Any]) -> None:
    row = Row(raw, {})
    record = normalise(fmt, row)
    if record is None:
        assert row.errors and all(e.startswith("field") for e in row.errors)
        return
    assert not row.errors
    turns = record.get("messages", record.get("prompt", []))
    assert all(set(t) == {"role", "content"} and t["role"] in ("system", "user", "assistant", "tool")
               and isinstance(t["content"], str) for t in turns)
    if fmt in ("alpaca", "sharegpt", "messages"):
        assert any(t["role"] == "assistant" for t in turns)
    json.dumps(record)
