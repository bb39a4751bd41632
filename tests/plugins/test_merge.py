"""adapter_merge.merge_and_unload on the tiny Llama with real peft adapters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.adapters import call, make_lora
from tunelog.events.errors import ValidationError
from tunelog.events.merges import AdapterMerged
from tunelog.plugins.context import Context

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora(tiny_model_dir, tmp_path_factory.mktemp("lora") / "r8", r=8, seed=1, strength=5.0)


def _probe() -> object:
    return torch.tensor([[5, 17, 42, 99, 7, 123, 300, 11]])


def _logits(model: object) -> object:
    model.eval()  # type: ignore[attr-defined]
    with torch.no_grad():
        return model(input_ids=_probe()).logits  # type: ignore[operator]


def _events(got: list[tuple[str, dict]]) -> list[AdapterMerged]:
    return [body["event"] for kind, body in got if kind == "event"]


def test_merged_model_equals_base_plus_adapter_and_loads_with_plain_transformers(
        tmp_path: Path, tiny_model_dir: Path, adapter_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ctx, got = Context.local(tmp_path)
    sha = ctx.store_artifact("adapter", adapter_dir)
    out = call("adapter_merge", "merge_and_unload", ctx, inputs={"model": str(tiny_model_dir), "adapter": sha})

    folder = ctx.artifact_path(out["model"])
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert any(n.endswith(".safetensors") for n in names) and "adapter_config.json" not in names
    merged = AutoModelForCausalLM.from_pretrained(folder)
    AutoTokenizer.from_pretrained(folder)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter_dir)
    want, got_logits = _logits(with_adapter), _logits(merged)
    assert (want - _logits(base)).abs().max() > 1e-2  # the adapter does change the model
    assert (got_logits - want).abs().max() < 1e-4

    [event] = _events(got)
    assert event.merge_type == "merge_and_unload" and event.exact
    assert [i.sha256 for i in event.inputs] == [sha] and event.output_sha256 == out["model"]
    assert event.merge_id == f"merge-{out['model'][:16]}" and event.output_kind == "model"
    assert event.base_model["ref"] == str(tiny_model_dir) and event.base_model["weights_sha256"]
    assert event.dtype == "float32"


def test_merge_in_bfloat16_saves_bfloat16_weights(tmp_path: Path, tiny_model_dir: Path, adapter_dir: Path) -> None:
    from safetensors import safe_open

    ctx, _ = Context.local(tmp_path)
    sha = ctx.store_artifact("adapter", adapter_dir)
    out = call("adapter_merge", "merge_and_unload", ctx, inputs={"model": str(tiny_model_dir), "adapter": sha},
               dtype="bfloat16")
    [shard] = ctx.artifact_path(out["model"]).glob("*.safetensors")
    with safe_open(shard, "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("lora_bias", True, "lora_bias"),
    ("alora_invocation_tokens", [3, 4], "aLoRA"),
    ("layer_replication", [[0, 1], [0, 2]], "layer_replication"),
    ("init_lora_weights", "corda", "path_initial_model_for_weight_conversion"),
    ("peft_type", "PREFIX_TUNING", "no weights to merge"),
])
def test_unmergeable_adapters_are_refused_up_front(tmp_path: Path, adapter_dir: Path, field: str, value: object,
                                                   reason: str) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(adapter_dir, bad)
    cfg = json.loads((bad / "adapter_config.json").read_text())
    (bad / "adapter_config.json").write_text(json.dumps({**cfg, field: value}))
    ctx, got = Context.local(tmp_path)
    sha = ctx.store_artifact("adapter", bad)
    with pytest.raises(ValidationError) as err:  # the base does not even exist: refused before it is resolved
        call("adapter_merge", "merge_and_unload", ctx, inputs={"model": str(tmp_path / "missing"), "adapter": sha})
    assert reason in str(err.value)
    assert not _events(got)


def test_pre_quantised_base_is_refused(tmp_path: Path, tiny_model_dir: Path, adapter_dir: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    cfg = json.loads((base / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (base / "config.json").write_text(json.dumps(cfg))
    ctx, _ = Context.local(tmp_path)
    sha = ctx.store_artifact("adapter", adapter_dir)
    with pytest.raises(ValidationError, match="re-quantise"):
        call("adapter_merge", "merge_and_unload", ctx, inputs={"model": str(base), "adapter": sha})


def test_model_input_may_be_an_artifact(tmp_path: Path, tiny_model_dir: Path, adapter_dir: Path) -> None:
    ctx, got = Context.local(tmp_path)
    base_sha = ctx.store_artifact("model", tiny_model_dir)
    sha = ctx.store_artifact("adapter", adapter_dir)
    out = call("adapter_merge", "merge_and_unload", ctx, inputs={"model": base_sha, "adapter": sha})
    assert ctx.artifacts.exists(out["model"])
    assert _events(got)[0].base_model == {"ref": base_sha, "artifact": base_sha}
