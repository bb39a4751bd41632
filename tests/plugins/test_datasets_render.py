"""What the Data page shows before training (`datasets.render`'s pieces): the chat template's text
with the trained tokens marked exactly where the trainer puts its labels, the tokens max_length
cuts, and the records the trainer would truncate, counted by its own encoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.test_datasets_encoding import CHATS, targets
from tunelog.plugins.common.data import encode_chat, encode_dataset, marked_pieces, read_dataset
from tunelog.plugins.context import Context
from tunelog.plugins.datasets import backend
from tunelog.plugins.datasets.render import conversation


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def runs(pieces: list[list[Any]], state: Any) -> list[str]:
    return [text for text, s in pieces if s == state]


@pytest.mark.parametrize("chat", CHATS)
def test_the_trained_pieces_are_the_trainers_labels(tok: Any, chat: dict[str, Any]) -> None:
    shown = marked_pieces(tok, chat["messages"], max_length=256)
    feature = encode_chat(tok, chat, max_length=256)
    assert feature is not None
    assert runs(shown["pieces"], True) == targets(tok, feature)
    assert "".join(text for text, _ in shown["pieces"]) == tok.apply_chat_template(chat["messages"], tokenize=False)
    assert shown["tokens"] == len(feature["input_ids"]) and not shown["truncated"]
    assert shown["trained_tokens"] == sum(label != -100 for label in feature["labels"])


def test_tokens_past_max_length_are_marked_cut_on_the_side_truncation_cuts(tok: Any) -> None:
    chat = CHATS[1]
    whole = marked_pieces(tok, chat["messages"], max_length=256)["tokens"]
    for side, keep in (("right", 0), ("left", -1)):
        shown = marked_pieces(tok, chat["messages"], max_length=whole - 6, truncation=side)
        feature = encode_chat(tok, chat, max_length=whole - 6, truncation=side)
        assert feature is not None and shown["truncated"] and shown["tokens"] == whole
        assert shown["pieces"][keep][1] != "cut" and shown["pieces"][-1 - keep][1] == "cut"
        assert shown["trained_tokens"] == sum(label != -100 for label in feature["labels"])
        assert runs(shown["pieces"], True) == targets(tok, feature)


def test_train_on_prompt_marks_every_kept_token(tok: Any) -> None:
    shown = marked_pieces(tok, CHATS[0]["messages"], max_length=256, train_on_prompt=True)
    assert [s for _, s in shown["pieces"]] == [True] and shown["trained_tokens"] == shown["tokens"]


def test_a_preference_row_shows_its_prompt_and_chosen_answer() -> None:
    prompt = [{"role": "user", "content": "blue"}]
    assert conversation({"prompt": prompt, "chosen": "red", "rejected": "green"}) == [
        *prompt, {"role": "assistant", "content": "red"}]
    assert conversation({"prompt": prompt, "completion": "red", "label": False})[-1]["content"] == "red"
    assert conversation({"text": "plain"}) == []


def test_the_render_operation_counts_what_the_trainer_would_cut(tmp_path: Path, tiny_model_dir: Path, tok: Any) -> None:
    source = tmp_path / "chats.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in CHATS * 3))
    ctx, _ = Context.local(tmp_path / "home")
    dataset = backend.prepare(ctx, {}, {"source": str(source)})["dataset"]
    lengths = [marked_pieces(tok, c["messages"], max_length=10_000)["tokens"] for c in CHATS]
    cut_at = sorted(lengths)[1]  # the longest chat is cut, the others are not
    report = backend.render(ctx, {"rows": 2, "max_length": cut_at}, {"dataset": dataset,
                                                                   "model": str(tiny_model_dir)})["report"]
    expected = encode_dataset(tok, read_dataset(ctx.artifact_path(dataset)), max_length=cut_at).counts
    assert report["counts"] == expected and report["counts"]["truncated"] == 3
    assert [r["truncated"] for r in report["records"]] == [lengths[0] > cut_at, lengths[1] > cut_at]
    assert report["chat_template"] and report["max_length"] == cut_at


def test_preference_rows_render_with_the_chosen_answer_and_count_the_long_ones(tmp_path: Path, tiny_model_dir: Path
                                                                                ) -> None:
    rows = [{"prompt": "what is the river", "chosen": "the river is blue", "rejected": "no"},
            {"prompt": "blue " * 30, "chosen": "red", "rejected": "green"}]
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ctx, _ = Context.local(tmp_path / "home")
    dataset = backend.prepare(ctx, {"format": "preference"}, {"source": str(source)})["dataset"]
    report = backend.render(ctx, {"max_length": 24}, {"dataset": dataset, "model": str(tiny_model_dir)})["report"]
    assert report["kind"] == "preference" and report["counts"]["longer_than_max_length"] == 1
    first = report["records"][0]["pieces"]
    assert [t for t, s in first if s is True] == ["the river is blue<|im_end|>"]
