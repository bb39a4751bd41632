"""evaluate.generate's generation controls on the tiny Llama: each control reaches transformers'
generate (compared with transformers called directly), stop strings cut, sampling is seeded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.adapters import call
from tunelog.events.errors import ValidationError
from tunelog.plugins.context import Context

torch = pytest.importorskip("torch")
PROMPT = "what is the capital of france"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _run(tmp_path: Path, model: Path, **params: Any) -> str:
    ctx, _ = Context.local(tmp_path)
    out = call("evaluate", "generate", ctx, inputs={"model": str(model)}, prompts=[PROMPT], **params)
    return str(out["report"][PROMPT]["base"])


def _direct(model_dir: Path, messages: list[dict[str, str]] | None, n: int, **settings: Any) -> str:
    """transformers' own answer for the same prompt and settings, without tunelog."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if messages is None:
        ids = tok(PROMPT)["input_ids"]
    else:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    torch.manual_seed(settings.pop("seed", 0))
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=n, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id, **settings)
    return str(tok.decode(out[0, len(ids):], skip_special_tokens=True))


def test_system_prompt_and_history_are_placed_by_the_chat_template(tmp_path: Path, tiny_model_dir: Path) -> None:
    history = [{"role": "user", "content": "apple river"}, {"role": "assistant", "content": "green stone"}]
    got = _run(tmp_path, tiny_model_dir, max_new_tokens=8, system="answer small", history=history)
    messages = [{"role": "system", "content": "answer small"}, *history, {"role": "user", "content": PROMPT}]
    assert got == _direct(tiny_model_dir, messages, 8, do_sample=False)
    assert got != _run(tmp_path, tiny_model_dir, max_new_tokens=8)


def test_chat_off_uses_the_plain_text(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert _run(tmp_path, tiny_model_dir, max_new_tokens=8, chat=False) == _direct(tiny_model_dir, None, 8,
                                                                                  do_sample=False)


def test_repetition_penalty_applies_to_greedy_decoding(tmp_path: Path, tiny_model_dir: Path) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    got = _run(tmp_path, tiny_model_dir, max_new_tokens=16, repetition_penalty=0.1)
    assert got == _direct(tiny_model_dir, messages, 16, do_sample=False, repetition_penalty=0.1)
    assert got != _run(tmp_path, tiny_model_dir, max_new_tokens=16)


def test_sampling_controls_are_seeded_and_reach_generate(tmp_path: Path, tiny_model_dir: Path) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    settings = {"greedy": False, "temperature": 1.3, "top_p": 0.95, "top_k": 40, "min_p": 0.01, "seed": 7}
    got = _run(tmp_path, tiny_model_dir, max_new_tokens=12, **settings)
    assert got == _run(tmp_path, tiny_model_dir, max_new_tokens=12, **settings)
    assert got == _direct(tiny_model_dir, messages, 12, do_sample=True, temperature=1.3, top_p=0.95, top_k=40,
                          min_p=0.01, seed=7)
    assert got != _run(tmp_path, tiny_model_dir, max_new_tokens=12, **{**settings, "seed": 8})
    # top_k=1 leaves one candidate: sampling must then give the greedy answer
    assert _run(tmp_path, tiny_model_dir, max_new_tokens=12, **{**settings, "top_k": 1}) == \
        _run(tmp_path, tiny_model_dir, max_new_tokens=12)


def test_stop_strings_cut_the_answer(tmp_path: Path, tiny_model_dir: Path) -> None:
    full = _run(tmp_path, tiny_model_dir, max_new_tokens=16, chat=False)
    assert len(full) > 6
    stop = full[3:5]
    cut = _run(tmp_path, tiny_model_dir, max_new_tokens=16, chat=False, stop=[stop])
    assert cut == full[:full.find(stop)]


def test_bad_history_names_each_turn(tmp_path: Path, tiny_model_dir: Path) -> None:
    ctx, got = Context.local(tmp_path)
    with pytest.raises(ValidationError) as err:
        call("evaluate", "generate", ctx, inputs={"model": str(tiny_model_dir)}, prompts=[PROMPT],
             history=[{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}, {"content": 3}])
    assert [p["where"] for p in err.value.problems] == ["params.history[1]", "params.history[2]"]
    assert not got


def test_an_explicit_chat_template_replaces_the_tokenizers(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    template = "{% for m in messages %}Q: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    given = _run(tmp_path / "a", tiny_model_dir, max_new_tokens=8, chat_template=template)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok(f"Q: {PROMPT}\nA:", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval().generate(
            input_ids=torch.tensor([ids]), max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id)
    assert given == tok.decode(out[0, len(ids):], skip_special_tokens=True)
    assert given != _run(tmp_path / "c", tiny_model_dir, max_new_tokens=8)  # not the tokenizer's ChatML
    with pytest.raises(ValidationError, match="params.chat_template: chat is off"):
        _run(tmp_path / "d", tiny_model_dir, chat=False, chat_template=template)
