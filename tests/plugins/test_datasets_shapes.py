"""`prepare` on the shapes users bring from LLaMA-Factory, Unsloth and OpenAI: preference pairs in
every common shape, KTO rows, tool calls, LLaMA-Factory column mappings and tags, the row report
with its counts and placeholder warning, and refusals that name what to pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunelog.events.errors import ValidationError
from tunelog.plugins.common.data import read_dataset, read_meta
from tunelog.plugins.context import Context
from tunelog.plugins.datasets import backend

TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Weather for a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
PARIS = [{"role": "user", "content": "Capital of France?"}]


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prepare(tmp_path: Path, source: Path, **params: Any) -> tuple[dict[str, Any], Path, list[str]]:
    """(outputs, artifact folder, log lines) of one real prepare."""
    ctx, messages = Context.local(tmp_path / "home")
    outputs = backend.prepare(ctx, params, {"source": str(source)})
    return outputs, ctx.artifact_path(outputs["dataset"]), [b["line"] for k, b in messages if k == "log"]


def refused(tmp_path: Path, source: Path, **params: Any) -> ValidationError:
    ctx, messages = Context.local(tmp_path / "home")
    with pytest.raises(ValidationError) as info:
        backend.prepare(ctx, params, {"source": str(source)})
    assert not [m for m in messages if m[0] == "artifact"]
    return info.value


PREFERENCE_SHAPES: dict[str, dict[str, Any]] = {
    "prompt/chosen/rejected text (TRL, LLaMA-Factory alpaca)":
        {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
    "conversational prompt/chosen/rejected (TRL)":
        {"prompt": PARIS, "chosen": [{"role": "assistant", "content": "Paris."}],
         "rejected": [{"role": "assistant", "content": "Lyon."}]},
    "sharegpt conversations + chosen/rejected objects (LLaMA-Factory)":
        {"conversations": [{"from": "human", "value": "Capital of France?"}],
         "chosen": {"from": "gpt", "value": "Paris."}, "rejected": {"from": "gpt", "value": "Lyon."}},
    "messages + chosen/rejected":
        {"messages": PARIS, "chosen": {"role": "assistant", "content": "Paris."},
         "rejected": {"role": "assistant", "content": "Lyon."}},
    "implicit prompt: chosen/rejected conversations only (TRL)":
        {"chosen": [*PARIS, {"role": "assistant", "content": "Paris."}],
         "rejected": [*PARIS, {"role": "assistant", "content": "Lyon."}]},
}


@pytest.mark.parametrize("shape", list(PREFERENCE_SHAPES))
def test_every_preference_shape_is_detected_and_normalised(tmp_path: Path, shape: str) -> None:
    source = jsonl(tmp_path / "pairs.jsonl", [PREFERENCE_SHAPES[shape]] * 2)
    outputs, folder, log = prepare(tmp_path, source)
    assert read_dataset(folder) == [{"prompt": PARIS, "chosen": "Paris.", "rejected": "Lyon."}] * 2
    assert outputs["report"]["format"] == read_meta(folder)["format"] == "preference"
    assert outputs["report"]["kind"] == "preference"
    assert log[0].startswith("format preference (detected from columns")


@pytest.mark.parametrize("row", [
    {"prompt": "Capital of France?", "completion": "Paris.", "label": True},
    {"messages": [*PARIS, {"role": "assistant", "content": "Paris."}], "kto_tag": True},
    {"conversations": [{"from": "human", "value": "Capital of France?"}, {"from": "gpt", "value": "Paris."}],
     "label": True},
], ids=["prompt/completion/label (TRL)", "messages + kto_tag (LLaMA-Factory)", "sharegpt + label"])
def test_kto_rows_with_a_boolean_label(tmp_path: Path, row: dict[str, Any]) -> None:
    source = jsonl(tmp_path / "kto.jsonl", [row, {**row, **{k: False for k in row if k in ("label", "kto_tag")}}])
    outputs, folder, _ = prepare(tmp_path, source)
    assert outputs["report"]["format"] == "kto"
    assert read_dataset(folder) == [{"prompt": PARIS, "completion": "Paris.", "label": True},
                                    {"prompt": PARIS, "completion": "Paris.", "label": False}]


def test_kto_labels_from_csv_text(tmp_path: Path) -> None:
    source = tmp_path / "kto.csv"
    source.write_text("prompt,completion,label\nCapital of France?,Paris.,true\nCapital of France?,Lyon.,False\n")
    outputs, folder, _ = prepare(tmp_path, source)
    assert outputs["report"]["format"] == "kto"
    assert [(r["completion"], r["label"]) for r in read_dataset(folder)] == [("Paris.", True), ("Lyon.", False)]
    source.write_text("prompt,completion,label\nCapital of France?,Paris.,yes\n")
    err = refused(tmp_path / "bad", source, format="kto")
    assert [f"{p['where']}: {p['message']}" for p in err.problems] == [
        "kto.csv row 1: field 'label' must be true or false, got a string"]


def test_a_chat_format_asked_for_preference_or_labelled_data_is_refused(tmp_path: Path) -> None:
    pairs = jsonl(tmp_path / "pairs.jsonl", [PREFERENCE_SHAPES["messages + chosen/rejected"]])
    err = refused(tmp_path, pairs, format="messages")
    assert "chosen/rejected answer pairs" in err.message and "--stage dpo" in (err.hint or "")
    kto = jsonl(tmp_path / "kto.jsonl", [{"messages": [*PARIS, {"role": "assistant", "content": "Lyon."}],
                                          "kto_tag": False}])
    err = refused(tmp_path, kto, format="messages")
    assert "labelled good or bad" in err.message and "--stage kto" in (err.hint or "")


def test_openai_tool_calls_and_tool_messages_are_kept(tmp_path: Path) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}
    row = {"messages": [{"role": "user", "content": "Weather in Paris?"},
                        {"role": "assistant", "content": "", "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                        {"role": "assistant", "content": "It is sunny."}], "tools": TOOLS}
    _, folder, _ = prepare(tmp_path, jsonl(tmp_path / "openai.jsonl", [row]))
    [record] = read_dataset(folder)
    assert record["tools"] == TOOLS
    assert record["messages"][1] == {"role": "assistant", "content": json.dumps([call["function"]])}
    assert record["messages"][2] == {"role": "tool", "content": "sunny"}


def test_llama_factory_columns_and_tags(tmp_path: Path) -> None:
    rows = [{"q": "Capital of France?", "ctx": "one word", "a": "Paris."}]
    _, folder, _ = prepare(tmp_path / "alpaca", jsonl(tmp_path / "qa.jsonl", rows),
                           columns={"prompt": "q", "query": "ctx", "response": "a"})
    assert read_dataset(folder) == [{"messages": [{"role": "user", "content": "Capital of France?\none word"},
                                                  {"role": "assistant", "content": "Paris."}]}]
    chats = [{"dialog": [{"speaker": "person", "text": "hi"}, {"speaker": "bot", "text": "hello"}]}]
    _, folder, _ = prepare(tmp_path / "sharegpt", jsonl(tmp_path / "chats.jsonl", chats),
                           columns={"messages": "dialog"},
                           tags={"role_tag": "speaker", "content_tag": "text", "user_tag": "person",
                                 "assistant_tag": "bot"})
    assert read_dataset(folder) == [{"messages": [{"role": "user", "content": "hi"},
                                                  {"role": "assistant", "content": "hello"}]}]


def test_a_mapped_column_the_file_lacks_is_refused_naming_both(tmp_path: Path) -> None:
    source = jsonl(tmp_path / "qa.jsonl", [{"question": "a?", "answer": "b"}])
    err = refused(tmp_path, source, columns={"prompt": "question", "response": "reply"})
    assert [f"{p['where']}: {p['message']}" for p in err.problems] == [
        "columns.response: names column 'reply', which qa.jsonl does not have (its columns: question, answer)"]
    assert "--columns" in (err.hint or "") and "`columns` parameter" in (err.hint or "")
    err = refused(tmp_path, source, columns={"answer_text": "answer"})
    assert err.problems[0]["where"] == "param columns.answer_text"


def test_undetectable_columns_hint_names_what_to_pass(tmp_path: Path) -> None:
    err = refused(tmp_path, jsonl(tmp_path / "qa.jsonl", [{"question": "a?", "answer": "b"}]))
    assert "--columns" in (err.hint or "") and "`columns` parameter" in (err.hint or "")


def test_report_counts_rows_and_max_rows_and_lands_in_the_log(tmp_path: Path) -> None:
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(5)]
    outputs, folder, log = prepare(tmp_path, jsonl(tmp_path / "d.jsonl", rows), max_rows=3, val_fraction=0.34)
    report = outputs["report"]
    assert {k: report[k] for k in ("rows", "used", "dropped", "train", "validation")} == {
        "rows": 5, "used": 3, "dropped": {"max_rows": 2}, "train": 2, "validation": 1}
    assert read_meta(folder)["report"] == report
    assert "5 rows: 3 used · 2 left out (max_rows) (alpaca)" in log


def test_placeholders_left_in_many_rows_warn_with_the_first_rows(tmp_path: Path) -> None:
    rows = [{"instruction": "Greet {{name}}." if i % 2 else f"Greet person {i}.", "output": "Hello!"}
            for i in range(1, 16)]
    outputs, _, log = prepare(tmp_path, jsonl(tmp_path / "t.jsonl", rows))
    hit = outputs["report"]["warnings"]["placeholder"]
    assert (hit["count"], hit["example"], hit["warn"]) == (8, "{{name}}", True)
    assert hit["rows"] == [f"t.jsonl row {n}" for n in (1, 3, 5, 7, 9)]
    assert any(line.startswith("warning: 8 rows still hold a template placeholder such as {{name}} "
                               "(t.jsonl row 1, t.jsonl row 3, t.jsonl row 5, t.jsonl row 7, t.jsonl row 9, ...)")
               for line in log)
    one, _, log = prepare(tmp_path / "one", jsonl(tmp_path / "one.jsonl", rows[:2]))
    assert one["report"]["warnings"]["placeholder"]["warn"] is False
    assert not [line for line in log if line.startswith("warning")]


def test_bad_row_hint_names_what_the_user_can_pass(tmp_path: Path) -> None:
    err = refused(tmp_path, jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "output": ""}]))
    assert "tunectl train --columns" in (err.hint or "") and "`columns` parameter" in (err.hint or "")


def test_prompt_only_rows_keep_their_other_columns_for_the_reward_functions(tmp_path: Path) -> None:
    source = jsonl(tmp_path / "prompts.jsonl", [{"prompt": "Capital of France?", "answer": "Paris", "level": 1},
                                                {"prompt": PARIS, "system": "Be brief.", "answer": "Paris"}])
    outputs, folder, lines = prepare(tmp_path, source)
    assert outputs["report"]["format"] == "prompt" and read_meta(folder)["kind"] == "prompt"
    assert "format prompt (detected from column prompt without answers)" in lines
    assert read_dataset(folder) == [
        {"prompt": PARIS, "answer": "Paris", "level": 1},
        {"prompt": [{"role": "system", "content": "Be brief."}, *PARIS], "answer": "Paris"}]


def test_prompt_rows_holding_an_answer_to_train_on_are_refused_naming_row_and_column(tmp_path: Path) -> None:
    source = jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "b", "completion": "c"}, {"answer": "d"}])
    err = refused(tmp_path, source, format="prompt")
    assert err.problems == [
        {"where": "p.jsonl row 2", "message": "field 'completion' holds an answer: prompt rows (stage grpo) hold only "
                                              "prompts and columns for the reward functions"},
        {"where": "p.jsonl row 3", "message": "field 'prompt' is missing"}]
