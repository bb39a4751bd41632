"""`tunelog.plugins.common.data` with the tiny ChatML tokenizer and Llama: masks, truncation,
text chunks, packing that matches unpacked logits, and stable hashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tunelog.events.errors import NotFoundError, ValidationError
from tunelog.plugins.common.data import (
    IGNORE_INDEX,
    assistant_spans,
    collate,
    encode_chat,
    encode_dataset,
    encode_text,
    features_hash,
    pack,
    read_dataset,
)
from tunelog.plugins.context import Context
from tunelog.plugins.datasets import backend

CHATS: list[dict[str, Any]] = [
    {"messages": [{"role": "system", "content": "be calm"}, {"role": "user", "content": "what is the capital of france"},
                  {"role": "assistant", "content": "paris is the capital"}]},
    {"messages": [{"role": "user", "content": "apple banana"}, {"role": "assistant", "content": "cherry"},
                  {"role": "user", "content": "river"}, {"role": "assistant", "content": "mountain cloud"}]},
    {"messages": [{"role": "user", "content": "blue"}, {"role": "assistant", "content": "red green"}]},
]


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def targets(tok: Any, feature: dict[str, list[int]]) -> list[str]:
    """Decoded runs of consecutive target tokens."""
    runs: list[list[int]] = []
    previous = False
    for token, label in zip(feature["input_ids"], feature["labels"], strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = label != IGNORE_INDEX
    return [tok.decode(run) for run in runs]


def test_only_assistant_turns_and_their_end_token_are_targets(tok: Any) -> None:
    feature = encode_chat(tok, CHATS[1], max_length=256)
    assert feature is not None
    assert targets(tok, feature) == ["cherry<|im_end|>", "mountain cloud<|im_end|>"]
    rendered = tok.apply_chat_template(CHATS[1]["messages"], tokenize=True)["input_ids"]
    assert feature["input_ids"] == list(rendered)


def test_assistant_spans_cover_content_and_end_of_turn(tok: Any) -> None:
    text, spans = assistant_spans(tok, CHATS[0]["messages"])
    assert [text[a:b] for a, b in spans] == ["paris is the capital<|im_end|>"]


def test_train_on_prompt_makes_every_token_a_target(tok: Any) -> None:
    feature = encode_chat(tok, CHATS[0], max_length=256, train_on_prompt=True)
    assert feature is not None and feature["labels"] == feature["input_ids"]


def test_template_that_renders_the_last_turn_differently_falls_back_to_search(tok: Any) -> None:
    # Like reasoning templates: only the final assistant turn carries a think block.
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
                "{% if loop.last and m['role'] == 'assistant' %}<think></think>{% endif %}"
                "{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    original = tok.chat_template
    tok.chat_template = template
    try:
        feature = encode_chat(tok, CHATS[1], max_length=256)
    finally:
        tok.chat_template = original
    assert feature is not None
    # The last turn's think block is part of what the model generates after the prompt: a target.
    assert targets(tok, feature) == ["cherry<|im_end|>", "<think></think>mountain cloud<|im_end|>"]


@pytest.mark.parametrize("truncation", ["right", "left", "drop"])
def test_truncation_policies(tok: Any, truncation: str) -> None:
    full = encode_chat(tok, CHATS[1], max_length=256)
    assert full is not None
    n = len(full["input_ids"]) - 5
    cut = encode_chat(tok, CHATS[1], max_length=n, truncation=truncation)  # type: ignore[arg-type]
    if truncation == "drop":
        assert cut is None
        return
    assert cut is not None and len(cut["input_ids"]) == n
    part = slice(0, n) if truncation == "right" else slice(5, None)
    assert cut == {"input_ids": full["input_ids"][part], "labels": full["labels"][part]}
    assert encode_chat(tok, CHATS[1], max_length=len(full["input_ids"]), truncation=truncation) == full  # type: ignore[arg-type]


def test_unknown_truncation_and_wrong_record_kind(tok: Any) -> None:
    with pytest.raises(ValidationError, match="unknown truncation"):
        encode_chat(tok, CHATS[0], max_length=8, truncation="middle")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="needs a chat record, got a text record"):
        encode_chat(tok, {"text": "a"}, max_length=8)


def test_encode_dataset_skips_dropped_and_targetless_records(tok: Any) -> None:
    lengths = [len(f["input_ids"]) for f in encode_dataset(tok, CHATS, max_length=256)]
    assert len(lengths) == 3
    limit = sorted(lengths)[1]
    dropped = encode_dataset(tok, CHATS, max_length=limit, truncation="drop")
    assert len(dropped) == 2
    assert (dropped.counts["used"], dropped.counts["dropped_too_long"], dropped.counts["truncated"]) == (2, 1, 0)
    # Right truncation that cuts every assistant token leaves nothing to learn: left out, and counted.
    cut = encode_dataset(tok, CHATS[:1], max_length=6)
    assert len(cut) == 0
    assert (cut.counts["truncated"], cut.counts["dropped_no_target"], cut.counts["used"]) == (0, 1, 0)
    with pytest.raises(ValidationError, match="--stage dpo"):
        encode_dataset(tok, [{"prompt": [], "chosen": "a", "rejected": "b"}], max_length=8)
    with pytest.raises(ValidationError, match="--stage kto"):
        encode_dataset(tok, [{"prompt": [], "completion": "a", "label": False}], max_length=8)
    with pytest.raises(ValidationError, match="several kinds"):
        encode_dataset(tok, [CHATS[0], {"text": "a"}], max_length=8)


def test_text_is_chunked_with_eos_between_documents(tok: Any) -> None:
    records = [{"text": "the quick river " * 20}, {"text": "stone cloud"}]
    features = encode_text(tok, records, max_length=16)
    stream = [t for f in features for t in f["input_ids"]]
    expected = [*tok("the quick river " * 20)["input_ids"], tok.eos_token_id, *tok("stone cloud")["input_ids"],
                tok.eos_token_id]
    assert stream == expected[:len(stream)] and len(expected) - len(stream) <= 1  # a 1-token tail has no target
    assert all(len(f["input_ids"]) <= 16 and f["labels"] == f["input_ids"] for f in features)
    assert encode_dataset(tok, records, max_length=16) == features


def test_pack_restarts_positions_and_masks_first_labels(tok: Any) -> None:
    features = encode_dataset(tok, CHATS, max_length=256)
    lengths = [len(f["input_ids"]) for f in features]
    packed = pack(features, max_length=lengths[0] + lengths[1])
    assert [len(p["input_ids"]) for p in packed] == [lengths[0] + lengths[1], lengths[2]]
    row = packed[0]
    assert row["position_ids"] == list(range(lengths[0])) + list(range(lengths[1]))
    assert row["labels"][lengths[0]] == IGNORE_INDEX
    assert row["labels"][lengths[0] + 1:] == features[1]["labels"][1:]
    with pytest.raises(ValidationError, match="more than max_length"):
        pack(features, max_length=lengths[0] - 1)


def test_collate_pads_to_a_multiple_and_builds_a_block_causal_mask(tok: Any) -> None:
    import torch

    features = encode_dataset(tok, CHATS, max_length=256)
    plain = collate(features, pad_id=tok.pad_token_id)
    longest = max(len(f["input_ids"]) for f in features)
    assert plain["input_ids"].shape == (3, 64) and set(plain) == {"input_ids", "labels", "attention_mask"}
    assert plain["attention_mask"][0].sum() == len(features[0]["input_ids"])
    assert (plain["labels"][:, longest:] == IGNORE_INDEX).all()
    packed = collate(pack(features, max_length=128), pad_id=tok.pad_token_id, pad_to_multiple=None)
    mask = packed["attention_mask"]
    n0 = len(features[0]["input_ids"])
    assert mask.shape == (1, 1, packed["input_ids"].shape[1], packed["input_ids"].shape[1])
    low = torch.finfo(torch.float32).min
    assert mask.dtype == torch.float32 and mask[0, 0, n0, n0 - 1] == low and mask[0, 0, n0, n0] == 0
    assert (mask[0, 0] == 0).any(dim=-1).all()  # every row, padding too, attends somewhere: no NaN rows
    future = torch.ones(mask.shape[-2:], dtype=torch.bool).triu(1)
    assert (mask[0, 0][future] == low).all()
    assert collate(pack(features, max_length=128), pad_id=0, mask_dtype=torch.bfloat16)["attention_mask"].dtype \
        == torch.bfloat16
    assert "attention_mask" not in collate(pack(features, max_length=128), pad_id=0, packed_mask="none")


@pytest.mark.parametrize(("attn", "packed_mask"), [("sdpa", "4d"), ("sdpa", "none"), ("eager", "4d")])
def test_packed_logits_equal_each_sample_run_alone(tiny_model_dir: Path, tok: Any, attn: str,
                                                   packed_mask: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation=attn).eval()
    features = encode_dataset(tok, CHATS, max_length=256)
    batch = collate(pack(features, max_length=256), pad_id=tok.pad_token_id, packed_mask=packed_mask)  # type: ignore[arg-type]
    assert batch["input_ids"].shape[0] == 1 and batch["input_ids"].shape[1] % 64 == 0
    with torch.no_grad():
        packed = model(**batch, use_cache=False)
        offset = 0
        for feature in features:
            n = len(feature["input_ids"])
            alone = model(input_ids=torch.tensor([feature["input_ids"]]), use_cache=False).logits[0]
            torch.testing.assert_close(packed.logits[0, offset:offset + n], alone, atol=1e-4, rtol=0)
            offset += n
        # The loss over the packed row equals the token-weighted loss of the samples alone.
        losses = [model(input_ids=torch.tensor([f["input_ids"]]), labels=torch.tensor([f["labels"]])).loss
                  for f in features]
        counts = [sum(label != IGNORE_INDEX for label in f["labels"][1:]) for f in features]
        expected = sum(loss * c for loss, c in zip(losses, counts, strict=True)) / sum(counts)
        torch.testing.assert_close(packed.loss, expected, atol=1e-5, rtol=0)


def test_a_plain_padding_mask_would_let_packed_samples_see_each_other(tiny_model_dir: Path, tok: Any) -> None:
    """The control for the test above: without the block mask the second sample's logits change."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    features = encode_dataset(tok, CHATS[:2], max_length=256)
    batch = collate(pack(features, max_length=256), pad_id=tok.pad_token_id)
    ones = (batch["input_ids"] != tok.pad_token_id).long()
    n0, n1 = (len(f["input_ids"]) for f in features)
    with torch.no_grad():
        leaky = model(input_ids=batch["input_ids"], attention_mask=ones, position_ids=batch["position_ids"],
                      use_cache=False).logits[0, n0:n0 + n1]
        alone = model(input_ids=torch.tensor([features[1]["input_ids"]])).logits[0]
    assert (leaky - alone).abs().max() > 1e-2


def test_features_hash_is_pinned_and_order_sensitive() -> None:
    features = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}]
    assert features_hash(features) == features_hash([dict(reversed(list(features[0].items())))])
    assert features_hash(features) == "7f4623d662218d3e171c54a7a73e1885bbd24a215992f1fac1f63ce67a999815"
    assert features_hash(features + features) != features_hash(features)
    assert features_hash([{"input_ids": [1, 2], "labels": [3]}]) != features_hash([{"input_ids": [1], "labels": [2, 3]}])


ENCODE_SCRIPT = """
import json, sys
from pathlib import Path
from transformers import AutoTokenizer
from tunelog.plugins.common.data import encode_dataset, features_hash, pack, read_dataset
tok = AutoTokenizer.from_pretrained(sys.argv[1])
records = read_dataset(Path(sys.argv[2]))
print(json.dumps(features_hash(pack(encode_dataset(tok, records, max_length=64), max_length=128))))
"""


def test_prepare_and_encode_hashes_are_stable_across_runs(tmp_path: Path, tiny_model_dir: Path, tok: Any) -> None:
    source = tmp_path / "chats.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in CHATS * 4))
    shas = []
    for home in ("a", "b"):
        ctx, _ = Context.local(tmp_path / home)
        shas.append(backend.prepare(ctx, {"val_fraction": 0.25, "seed": 3}, {"source": str(source)})["dataset"])
    assert shas[0] == shas[1]
    folder = ctx.artifact_path(shas[1])
    here = features_hash(pack(encode_dataset(tok, read_dataset(folder), max_length=64), max_length=128))
    out = subprocess.run([sys.executable, "-c", ENCODE_SCRIPT, str(tiny_model_dir), str(folder)],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here


def test_read_dataset_errors(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"text": "a"}\n')
    assert read_dataset(tmp_path) == [{"text": "a"}]
    with pytest.raises(NotFoundError, match="has no validation split") as info:
        read_dataset(tmp_path, "validation")
    assert info.value.hint == "its splits: train"
    with pytest.raises(ValidationError, match="not a split name"):
        read_dataset(tmp_path, "../train")
