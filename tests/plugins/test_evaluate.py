"""evaluate.loss and evaluate.generate on the tiny Llama: base vs adapters switched on one loaded base."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tests.support.adapters import call, make_lora
from tests.support.cpu import fake_avx512bf16
from tunelog.events.errors import ValidationError
from tunelog.plugins.context import Context

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

PROMPTS = ["what is the capital of france", "blue river and green forest"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def loras(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval-loras")
    # strong adapters: on a random tiny model they move greedy outputs away from the base's
    return {"one": make_lora(tiny_model_dir, root / "one", r=4, seed=1, strength=30.0),
            "two": make_lora(tiny_model_dir, root / "two", r=8, seed=2, strength=30.0)}


@pytest.fixture()
def stored(tmp_path: Path, loras: dict[str, Path]) -> tuple[Context, dict[str, str]]:
    ctx, _ = Context.local(tmp_path)
    return ctx, {k: ctx.store_artifact("adapter", p) for k, p in loras.items()}


def _chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


@pytest.fixture()
def dataset(tmp_path: Path, stored) -> str:
    ctx, _ = stored
    folder = tmp_path / "data"
    folder.mkdir()
    train = [_chat("what is the capital of france", "paris is the capital")] * 4
    validation = [_chat("what is the capital of france", "paris"), _chat("blue river", "green forest and calm ocean"),
                  _chat("north or south", "south"), _chat("quick model", "small slow model learn data"),
                  _chat("red stone", "bright red stone in the dark village")]
    for split, records in (("train", train), ("validation", validation)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "meta.json").write_text(json.dumps({"kind": "chat", "format": "messages"}))
    return ctx.store_artifact("dataset", folder)


def test_loss_reports_base_and_each_adapter(stored, dataset: str, tiny_model_dir: Path) -> None:
    ctx, sha = stored
    out = call("evaluate", "loss", ctx, batch_size=2,
               inputs={"model": str(tiny_model_dir), "dataset": dataset, "adapters": {"one": sha["one"], "two": sha["two"]}})
    report = out["report"]
    assert (report["split"], report["examples"], report["batches"]) == ("validation", 5, 3)
    results = report["results"]
    assert set(results) == {"base", "one", "two"}
    for r in results.values():
        assert r["tokens"] > 0 and math.isfinite(r["loss"]) and r["perplexity"] == pytest.approx(math.exp(r["loss"]))
    assert len({round(r["loss"], 6) for r in results.values()}) == 3
    assert report["stopped"] is False


def test_loss_equals_the_models_own_loss_on_one_batch(stored, dataset: str, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelog.plugins.common.data import collate, encode_dataset, read_dataset

    ctx, _ = stored
    report = call("evaluate", "loss", ctx, batch_size=16, inputs={"model": str(tiny_model_dir), "dataset": dataset})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    features = encode_dataset(tokenizer, read_dataset(ctx.artifact_path(dataset), "validation"), max_length=512)
    batch = collate(features, pad_id=tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        want = float(model(**batch).loss)
    assert report["report"]["results"]["base"]["loss"] == pytest.approx(want, rel=1e-5)


def test_loss_max_batches_and_train_split(stored, dataset: str, tiny_model_dir: Path) -> None:
    ctx, sha = stored
    out = call("evaluate", "loss", ctx, split="train", batch_size=1, max_batches=2, include_base=False,
               inputs={"model": str(tiny_model_dir), "dataset": dataset, "adapter": sha["one"]})
    assert (out["report"]["batches"], out["report"]["examples"]) == (2, 2)
    assert set(out["report"]["results"]) == {"adapter"}


def test_generate_from_base_and_two_adapters(stored, tiny_model_dir: Path) -> None:
    ctx, sha = stored
    inputs = {"model": str(tiny_model_dir), "adapters": [f"one={sha['one']}", {"name": "two", "sha256": sha["two"]}]}
    report = call("evaluate", "generate", ctx, inputs=inputs, prompts=PROMPTS, max_new_tokens=8)["report"]
    assert list(report) == PROMPTS
    for answers in report.values():
        assert set(answers) == {"base", "one", "two"}
        assert answers["one"] != answers["base"] and answers["two"] != answers["base"]
    # switching adapters on one base gives what a base with only that adapter gives
    alone = call("evaluate", "generate", ctx, inputs={"model": str(tiny_model_dir), "adapters": {"two": sha["two"]}},
                 prompts=PROMPTS, max_new_tokens=8, include_base=False)["report"]
    assert all(alone[p] == {"two": report[p]["two"]} for p in PROMPTS)


def test_generate_plain_base_and_seeded_sampling(stored, tiny_model_dir: Path) -> None:
    ctx, _ = stored
    runs = [call("evaluate", "generate", ctx, inputs={"model": str(tiny_model_dir)}, prompts=PROMPTS[:1], chat=False,
                 greedy=False, temperature=1.0, seed=seed, max_new_tokens=12)["report"] for seed in (7, 7, 8)]
    assert runs[0] == runs[1] and set(runs[0][PROMPTS[0]]) == {"base"}
    assert runs[0] != runs[2]


def test_bad_adapter_names_are_refused_before_loading(stored) -> None:
    ctx, sha = stored
    with pytest.raises(ValidationError) as err:
        call("evaluate", "generate", ctx, prompts=["x"], inputs={"model": "/no/such/model", "adapters": [
            f"base={sha['one']}", f"two={sha['two']}", f"two={sha['one']}", "three=nothex"]})
    assert [p["where"] for p in err.value.problems] == ["inputs.adapters[0]", "inputs.adapters[2]",
                                                        "inputs.adapters[3]"]


def test_base_mutating_adapters_are_refused(stored, tmp_path: Path, loras: dict[str, Path]) -> None:
    ctx, _ = stored
    folder = tmp_path / "pissa"
    shutil.copytree(loras["one"], folder)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**cfg, "init_lora_weights": "pissa_niter_4"}))
    with pytest.raises(ValidationError, match="path_initial_model_for_weight_conversion"):
        call("evaluate", "generate", ctx, prompts=["x"],
             inputs={"model": "/no/such/model", "adapter": ctx.store_artifact("adapter", folder)})


def test_four_bit_base_is_protected_from_cpu_repacking(stored, tiny_model_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    bnb = pytest.importorskip("bitsandbytes")
    fake_avx512bf16(monkeypatch)  # the repacking guard is checked on every CPU
    from tunelog.plugins.evaluate import inference

    ctx, sha = stored
    model = inference.load(tiny_model_dir, [("one", ctx.artifact_path(sha["one"]))], dtype="float32",
                              quantization="nf4")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and not any(m.support_avx512bf16_for_cpu for m in layers)
    report = call("evaluate", "generate", ctx, quantization="nf4", prompts=PROMPTS[:1], max_new_tokens=4,
                  inputs={"model": str(tiny_model_dir), "adapter": sha["one"]})["report"]
    assert set(report[PROMPTS[0]]) == {"base", "adapter"}


def test_loss_returns_early_when_asked_to_stop(stored, dataset: str, tiny_model_dir: Path) -> None:
    ctx, sha = stored
    ctx.request_stop()
    out = call("evaluate", "loss", ctx, inputs={"model": str(tiny_model_dir), "dataset": dataset, "adapter": sha["one"]})
    assert out["report"]["stopped"] is True and out["report"]["results"] == {}
