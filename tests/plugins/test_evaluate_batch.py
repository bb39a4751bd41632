"""evaluate.generate with `batch_size`: prompts of different lengths left-padded into one batch give
the answers they get one at a time (greedy, base and a real LoRA adapter, with a stop string and
with answers cut by max_new_tokens), an answer that ends early loses the padding that follows it,
and streaming with a batch is refused before anything is generated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.adapters import call, make_lora
from tunelog.events.errors import ValidationError
from tunelog.plugins.context import Context

torch = pytest.importorskip("torch")
PROMPTS = ["what is the capital of france", "name a river", "apple", "the quick bright model learns small data tokens "
           "in the north city by the ocean", "blue"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _generate(tmp_path: Path, model: Path, adapter: Path, **params: Any) -> tuple[dict[str, Any], list[Any]]:
    ctx, got = Context.local(tmp_path)
    sha = ctx.store_artifact("adapter", adapter)
    out = call("evaluate", "generate", ctx, inputs={"model": str(model), "adapters": {"tuned": sha}}, prompts=PROMPTS,
               **params)
    return out["report"], [body for kind, body in got if kind == "progress"]


@pytest.mark.parametrize("settings", [{"max_new_tokens": 24}, {"max_new_tokens": 40, "stop": ["river"]}],
                         ids=["length", "stop-string"])
def test_a_batch_answers_as_one_prompt_at_a_time(tmp_path: Path, tiny_model_dir: Path,
                                                  settings: dict[str, Any]) -> None:
    adapter = make_lora(tiny_model_dir, tmp_path / "lora", r=4, seed=3, strength=30.0)
    one, _ = _generate(tmp_path / "one", tiny_model_dir, adapter, **settings)
    batched, progress = _generate(tmp_path / "batch", tiny_model_dir, adapter, batch_size=3, **settings)
    assert batched == one and list(batched) == PROMPTS
    assert all(list(answers) == ["base", "tuned"] for answers in batched.values())
    assert any(answers["base"] != answers["tuned"] for answers in batched.values())  # the adapter is applied
    lengths = {len(a) for answers in one.values() for a in answers.values()}
    assert len(lengths) > 1  # the prompts' answers differ in length: padding had to be handled
    # one progress step per answer, the batches of 3 and 2 prompts counted as they finish
    assert [(p["step"], p["total"]) for p in progress[:-1]] == [(0, 10), (3, 10), (6, 10), (8, 10)]
    assert (progress[-1]["step"], progress[-1]["total"]) == (10, 10)


def test_an_answer_that_ends_early_drops_the_padding_after_it(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from tunelog.plugins.evaluate.inference import _answer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    words = tok(" apple banana", add_special_tokens=False)["input_ids"]
    eos, pad = tok.eos_token_id, tok.pad_token_id
    ended = _answer(tok, [*words, eos, eos, eos], eos=eos, pad=eos, max_new_tokens=8, stop=())
    assert (ended.text.strip(), ended.tokens, ended.finish) == ("apple banana", len(words) + 1, "stop")
    other_pad = next(i for i in range(len(tok)) if i not in (eos, *words))
    padded = _answer(tok, [*words, other_pad, other_pad], eos=None, pad=other_pad, max_new_tokens=8, stop=())
    assert (padded.text.strip(), padded.tokens, padded.finish) == ("apple banana", len(words), "stop")
    full = _answer(tok, words * 4, eos=eos, pad=pad if pad is not None else eos, max_new_tokens=len(words) * 4, stop=())
    assert (full.tokens, full.finish) == (len(words) * 4, "length")


def test_streaming_with_a_batch_is_refused_before_generating(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunelog.plugins.evaluate.checks import generate as checks

    assert checks({"stream": True, "batch_size": 4}, {}, {}) == (
        [("batch_size", "streaming generates one prompt at a time; set batch_size to 1 or stream to false (got 4)")],
        [])
    assert checks({"stream": True, "batch_size": 1}, {}, {}) == ([], [])
    assert checks({"batch_size": 4}, {}, {}) == ([], [])
    ctx, got = Context.local(tmp_path)
    with pytest.raises(ValidationError, match=r"params.batch_size: streaming generates one prompt at a time"):
        call("evaluate", "generate", ctx, inputs={"model": str(tiny_model_dir)}, prompts=PROMPTS, stream=True,
             batch_size=2)
    assert [body for kind, body in got if kind == "progress"] == []
