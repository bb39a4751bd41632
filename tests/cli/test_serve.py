"""`tunectl serve` through a real daemon, called with the official `openai` client: models listed,
chat and text completions (plain and streamed) equal transformers' greedy answers, adapters
switched per request, the bearer token enforced, the served model recorded, cancel stops it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Daemon, start_daemon
from tests.support.adapters import make_lora
from tunelog.store.artifacts import ArtifactStore

openai = pytest.importorskip("openai")
torch = pytest.importorskip("torch")
pytest.importorskip("peft")

QUESTION = [{"role": "user", "content": "what is the capital of france"}]


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    adapter = make_lora(tiny_model_dir, tmp_path_factory.mktemp("lora") / "r8", r=8, seed=3, strength=8.0)
    home = tmp_path_factory.mktemp("home")
    sha = ArtifactStore(home / "artifacts").put_dir(adapter).sha256  # as a training job would have stored it
    d = start_daemon(home, OMP_NUM_THREADS="1", TUNELOG_SLOTS="cpu0,cpu1")  # two endpoints at once
    out = d.tunectl("serve", str(tiny_model_dir), "--adapter", f"tuned={sha}", "--max-new-tokens", "12", "--json",
                    timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    info = {**json.loads(out.stdout), "daemon": d, "adapter": adapter, "sha": sha}
    yield info
    d.stop()


def _expected(model_dir: Path, adapter: Path | None, ids: list[int], n: int) -> str:
    """transformers' greedy answer, computed here without tunelog."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    with torch.no_grad():
        out = model.eval().generate(input_ids=torch.tensor([ids]), max_new_tokens=n, do_sample=False,
                                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return str(tok.decode(out[0, len(ids):], skip_special_tokens=True))


def _chat_ids(model_dir: Path) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    text = tok.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    return list(tok(text, add_special_tokens=False)["input_ids"])


def test_models_and_chat_answers_switch_adapters_per_request(served: dict[str, Any], tiny_model_dir: Path) -> None:
    api = openai.OpenAI(base_url=served["url"], api_key=served["token"])
    assert [m.id for m in api.models.list()] == ["base", "tuned"]
    ids = _chat_ids(tiny_model_dir)
    answers = {}
    for name, adapter in (("tuned", served["adapter"]), ("base", None), ("tuned", served["adapter"])):
        got = api.chat.completions.create(model=name, messages=QUESTION, max_tokens=8, temperature=0)
        assert got.choices[0].message.content == _expected(tiny_model_dir, adapter, ids, 8), name
        assert got.usage.prompt_tokens == len(ids) and got.model == name
        answers.setdefault(name, got.choices[0].message.content)
    assert answers["base"] != answers["tuned"]


def test_streamed_chat_and_completions_equal_the_plain_answers(served: dict[str, Any], tiny_model_dir: Path) -> None:
    api = openai.OpenAI(base_url=served["url"], api_key=served["token"])
    plain = api.chat.completions.create(model="tuned", messages=QUESTION, max_tokens=10, temperature=0)
    chunks = list(api.chat.completions.create(model="tuned", messages=QUESTION, max_tokens=10, temperature=0,
                                              stream=True))
    assert len(chunks) > 2 and chunks[-1].choices[0].finish_reason == plain.choices[0].finish_reason
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == plain.choices[0].message.content

    from transformers import AutoTokenizer

    prompt = "the quick river"
    ids = list(AutoTokenizer.from_pretrained(tiny_model_dir)(prompt)["input_ids"])
    text = api.completions.create(model="base", prompt=prompt, max_tokens=6, temperature=0)
    assert text.choices[0].text == _expected(tiny_model_dir, None, ids, 6)
    streamed = api.completions.create(model="base", prompt=prompt, max_tokens=6, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed) == text.choices[0].text


def test_stop_strings_cut_the_answer(served: dict[str, Any]) -> None:
    api = openai.OpenAI(base_url=served["url"], api_key=served["token"])
    full = api.completions.create(model="tuned", prompt="apple banana", max_tokens=10, temperature=0).choices[0].text
    assert len(full) > 3
    stop = full[2:4]
    cut = api.completions.create(model="tuned", prompt="apple banana", max_tokens=10, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[:full.find(stop)] and cut.choices[0].finish_reason == "stop"


def test_wrong_token_and_unknown_model_are_refused(served: dict[str, Any]) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served["url"], api_key="not-the-token").models.list()
    api = openai.OpenAI(base_url=served["url"], api_key=served["token"])
    with pytest.raises(openai.NotFoundError, match="not served here"):
        api.chat.completions.create(model="nope", messages=QUESTION, max_tokens=2)


def test_vllm_without_a_gpu_is_refused(served: dict[str, Any], tiny_model_dir: Path) -> None:
    out = served["daemon"].tunectl("serve", str(tiny_model_dir), "--backend", "vllm", timeout=120)
    assert out.returncode != 0
    assert "the vllm backend needs vllm, a CUDA GPU" in out.stderr


def test_the_served_model_is_recorded_and_cancel_stops_the_endpoint(served: dict[str, Any],
                                                                     tiny_model_dir: Path) -> None:
    d: Daemon = served["daemon"]
    events = d.json("events", "--type", "model-served")["events"]
    [event] = [e for e in events if e["event"]["address"] == served["url"]]
    payload = event["event"]
    assert payload["adapters"] == {"tuned": served["sha"]} and payload["backend"] == "transformers"
    assert set(payload["versions"]) >= {"torch", "transformers", "peft"}
    assert served["token"] not in json.dumps(d.json("events"))

    # a second endpoint of its own, so the module's one keeps serving whatever order tests run in
    out = d.tunectl("serve", str(tiny_model_dir), "--max-new-tokens", "4", "--json", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    other = json.loads(out.stdout)
    assert other["models"] == ["base"] and other["token"] != served["token"]
    assert d.tunectl("runs", "cancel", other["run"]).returncode == 0
    deadline = time.monotonic() + 60
    while d.json("runs", "show", other["run"])["run"]["state"] == "running":
        assert time.monotonic() < deadline, "the serve run did not stop"
        time.sleep(0.2)
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=other["url"], api_key=other["token"], max_retries=0).models.list()
    assert [m.id for m in openai.OpenAI(base_url=served["url"], api_key=served["token"]).models.list()] == \
        ["base", "tuned"]
