"""evaluate.generate with `stream` on the tiny Llama and a real LoRA adapter: progress messages carry
growing prefixes of each final answer (with the earlier answers of the prompt), their number stays
within the documented bound, and the answers are byte-identical to those generated without it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.adapters import call, make_lora
from tunelog.plugins.context import Context

torch = pytest.importorskip("torch")
PROMPTS = ["what is the capital of france", "name a river"]
INTERVAL_S = 0.25
"""plugins/evaluate/streaming.py's INTERVAL_S, the bound the messages are checked against."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _generate(tmp_path: Path, model: Path, adapter: Path, **params: Any) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                                 float]:
    """(report, progress bodies, seconds taken) of one in-process evaluate.generate."""
    ctx, got = Context.local(tmp_path)
    sha = ctx.store_artifact("adapter", adapter)
    started = time.monotonic()
    out = call("evaluate", "generate", ctx, inputs={"model": str(model), "adapters": {"tuned": sha}}, prompts=PROMPTS,
               **params)
    return out["report"], [body for kind, body in got if kind == "progress"], time.monotonic() - started


def _streamed(message: str) -> dict[str, Any]:
    note, _, rest = message.partition("\n")
    assert note and "\n" not in note
    return json.loads(rest)  # type: ignore[no-any-return]


def test_streamed_messages_grow_to_the_final_answers_which_are_unchanged(tmp_path: Path,
                                                                          tiny_model_dir: Path) -> None:
    adapter = make_lora(tiny_model_dir, tmp_path / "lora", r=4, seed=3, strength=30.0)
    settings = {"max_new_tokens": 120, "greedy": False, "temperature": 1.2, "top_k": 50, "seed": 5}
    plain, plain_progress, _ = _generate(tmp_path / "off", tiny_model_dir, adapter, **settings)
    report, progress, took = _generate(tmp_path / "on", tiny_model_dir, adapter, stream=True, **settings)
    assert json.dumps(report) == json.dumps(plain)  # same seed, same tokens, same bytes
    assert len(set(report[PROMPTS[0]].values())) == 2  # the adapter answers differently from the base
    assert [p["message"] for p in plain_progress] == ["generating base", "generating tuned"] * 2 + ["done"]

    streamed = [(p["step"], p["total"], _streamed(p["message"])) for p in progress[:-1]]
    assert progress[-1]["message"].startswith("done\n") and (progress[-1]["step"], progress[-1]["total"]) == (4, 4)
    assert _streamed(progress[-1]["message"])["answers"] == report[PROMPTS[-1]]  # shown until the report is
    for step, total, body in streamed:
        assert total == 4 and body["variants"] == ["base", "tuned"]
        final = report[PROMPTS[body["prompt"]]]
        for name, text in body["answers"].items():
            assert final[name].startswith(text), (name, text, final[name])
            if name != body["generating"]:
                assert text == final[name]  # an answer already finished is carried whole in later messages
        assert step == 2 * body["prompt"] + len(body["answers"]) - (body["generating"] is not None)
    for i, prompt in enumerate(PROMPTS):
        for name in ("base", "tuned"):
            texts = [b["answers"][name] for _, _, b in streamed if b["prompt"] == i and b["generating"] == name]
            assert texts[0] == "" and texts == sorted(texts, key=len) and len(set(texts)) == len(texts)
            ends = [b for _, _, b in streamed if b["prompt"] == i and b["generating"] is None
                    and list(b["answers"])[-1] == name]
            assert [b["answers"][name] for b in ends] == [report[prompt][name]]
            # the documented bound: a start, one per INTERVAL_S while growing, the final text
            assert len(texts) + len(ends) <= 2 + took / INTERVAL_S
    assert len(progress) <= 1 + 4 * 2 + took / INTERVAL_S


def test_the_streamer_reports_growing_prefixes_at_most_once_per_interval(tmp_path: Path,
                                                                         tiny_model_dir: Path) -> None:
    """The tiny model answers faster than INTERVAL_S on most machines, so here the clock is a counter
    (each reading 0.1 s later): several partial texts must come through, fewer than the tokens."""
    from tunelog.plugins.common.models import load_tokenizer
    from tunelog.plugins.evaluate import inference
    from tunelog.plugins.evaluate.streaming import Progress

    ticks = iter(range(1_000_000))
    ctx, got = Context.local(tmp_path)
    tokenizer = load_tokenizer(tiny_model_dir)
    model = inference.load(tiny_model_dir, [], dtype="float32", quantization=None)
    progress = Progress(ctx, variants=["base"], total=1, stream=True, clock=lambda: next(ticks) / 10)
    ids = inference.prompt_ids(tokenizer, PROMPTS[0], chat=True)
    progress.begin("base")
    answer = inference.complete(model, tokenizer, "base", ids, max_new_tokens=60,
                                streamer=progress.streamer(tokenizer, "base", ()))
    progress.finish("base", answer.text)
    texts = [_streamed(body["message"])["answers"]["base"] for _, body in got]
    assert answer.text == inference.complete(model, tokenizer, "base", ids, max_new_tokens=60).text  # no streamer
    assert answer.tokens == 60 and texts[0] == "" and texts[-1] == answer.text
    assert all(answer.text.startswith(t) for t in texts)
    growing = texts[:-1]  # the last message holds the final text, which the last partial may already equal
    assert growing == sorted(growing, key=len) and len(set(growing)) == len(growing)
    assert 4 <= len(texts) - 2 <= next(ticks) / 10 / 0.25 < answer.tokens, texts


def test_stop_strings_are_held_back_from_streamed_text() -> None:
    from tunelog.plugins.evaluate.streaming import visible

    assert visible("abc##x", ["##"]) == "abc"
    assert visible("abc#", ["##"]) == "abc"  # may become the stop string, which the final answer cuts
    assert visible("abc \ufffd", []) == "abc"  # a character whose bytes are still arriving
    assert visible("abc#", []) == "abc#"
