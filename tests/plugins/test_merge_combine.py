"""adapter_merge.combine: every peft combination type, up-front refusals, exactness of `cat`, lineage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.adapters import call, make_lora, manifest
from tunelog.events.base import decode_payload, encode_payload, event_types
from tunelog.events.errors import ValidationError
from tunelog.events.merges import AdapterMerged
from tunelog.plugins.common.adapters import COMBINATION_TYPES, EQUAL_RANK_TYPES
from tunelog.plugins.context import Context

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def loras(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {"r4": make_lora(tiny_model_dir, root / "r4", r=4, seed=1, strength=3.0),
            "r8": make_lora(tiny_model_dir, root / "r8", r=8, seed=2, strength=3.0),
            "r8b": make_lora(tiny_model_dir, root / "r8b", r=8, seed=3, strength=3.0),
            "rs8": make_lora(tiny_model_dir, root / "rs8", r=8, seed=4, strength=3.0, use_rslora=True)}


@pytest.fixture()
def stored(tmp_path: Path, loras: dict[str, Path]) -> tuple[Context, list, dict[str, str]]:
    ctx, got = Context.local(tmp_path)
    return ctx, got, {k: ctx.store_artifact("adapter", p) for k, p in loras.items()}


def _events(got: list[tuple[str, dict]]) -> list[AdapterMerged]:
    return [body["event"] for kind, body in got if kind == "event"]


def _q_delta(base_dir: Path, adapters: dict[str, Path], name: str) -> object:
    """Delta weight of layer 0's q_proj for adapter `name` (all adapters loaded on one base)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    (first, folder), *rest = adapters.items()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(folder), adapter_name=first)
    for n, f in rest:
        model.load_adapter(str(f), adapter_name=n)
    return model.base_model.model.model.layers[0].self_attn.q_proj.get_delta_weight(name)


@pytest.mark.parametrize("ctype", COMBINATION_TYPES)
def test_every_type_runs_or_is_refused_up_front_for_unequal_ranks(stored, tiny_model_dir: Path, ctype: str) -> None:
    ctx, got, sha = stored
    adapters = [f"{sha['r4']}:0.6", {"sha256": sha["r8"], "weight": 0.4}]
    if ctype in EQUAL_RANK_TYPES:
        with pytest.raises(ValidationError, match="same rank") as err:  # refused before the base is resolved
            call("adapter_merge", "combine", ctx, inputs={"model": "/no/such/model", "adapters": adapters},
                 combination_type=ctype)
        assert "[4, 8]" in str(err.value) and not _events(got)
        return
    out = call("adapter_merge", "combine", ctx, inputs={"model": str(tiny_model_dir), "adapters": adapters},
               combination_type=ctype)
    cfg = json.loads((ctx.artifact_path(out["adapter"]) / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == (12 if ctype == "cat" else 8)
    [event] = _events(got)
    assert event.merge_type == ctype and event.exact == (ctype == "cat") and event.rank == cfg["r"]


@pytest.mark.parametrize("ctype", COMBINATION_TYPES)
def test_every_type_runs_on_equal_ranks_and_changes_the_model(stored, tiny_model_dir: Path, ctype: str) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ctx, got, sha = stored
    out = call("adapter_merge", "combine", ctx, combination_type=ctype, density=0.7,
               inputs={"model": str(tiny_model_dir), "adapters": [f"{sha['r8']}:0.5", f"{sha['r8b']}:0.5"]})
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                      ctx.artifact_path(out["adapter"])).eval()
    with torch.no_grad():
        diff = (model(input_ids=ids).logits - base(input_ids=ids).logits).abs().max()
    assert torch.isfinite(diff) and diff > 1e-4
    [event] = _events(got)
    assert event.density == (0.7 if ctype.startswith(("ties", "dare", "magnitude")) else None)


def test_cat_is_the_exact_weighted_sum_of_updates(stored, tiny_model_dir: Path, loras: dict[str, Path]) -> None:
    ctx, _, sha = stored
    # unequal ranks, a negative weight, and an rsLoRA input (peft alone would scale the result by sqrt(r))
    weights = {"r4": 0.7, "r8": -0.3, "rs8": 0.5}
    out = call("adapter_merge", "combine", ctx, combination_type="cat",
               inputs={"model": str(tiny_model_dir), "adapters": [f"{sha[k]}:{w}" for k, w in weights.items()]})
    got = _q_delta(tiny_model_dir, {"out": ctx.artifact_path(out["adapter"])}, "out")
    deltas = {k: _q_delta(tiny_model_dir, {k: loras[k]}, k) for k in weights}
    want = sum(w * deltas[k] for k, w in weights.items())
    assert float((got - want).norm() / want.norm()) < 1e-5


def test_linear_is_not_the_sum_of_updates(stored, tiny_model_dir: Path, loras: dict[str, Path]) -> None:
    ctx, got_events, sha = stored
    out = call("adapter_merge", "combine", ctx, combination_type="linear",
               inputs={"model": str(tiny_model_dir), "adapters": [f"{sha['r8']}:0.5", f"{sha['r8b']}:0.5"]})
    got = _q_delta(tiny_model_dir, {"out": ctx.artifact_path(out["adapter"])}, "out")
    want = 0.5 * _q_delta(tiny_model_dir, {"a": loras["r8"]}, "a") + 0.5 * _q_delta(tiny_model_dir, {"b": loras["r8b"]}, "b")
    assert float((got - want).norm() / want.norm()) > 0.1
    assert not _events(got_events)[0].exact


def test_single_adapter_becomes_exact_linear_scaling(stored, tiny_model_dir: Path, loras: dict[str, Path]) -> None:
    ctx, got, sha = stored
    out = call("adapter_merge", "combine", ctx, combination_type="svd", svd_rank=2,
               inputs={"model": str(tiny_model_dir), "adapters": [{"sha256": sha["r4"], "weight": 0.25}]})
    delta = _q_delta(tiny_model_dir, {"out": ctx.artifact_path(out["adapter"])}, "out")
    want = 0.25 * _q_delta(tiny_model_dir, {"a": loras["r4"]}, "a")
    assert float((delta - want).norm() / want.norm()) < 1e-5
    [event] = _events(got)
    assert (event.merge_type, event.exact, event.params["requested_type"]) == ("linear", True, "svd")


def test_lineage_event_names_inputs_and_round_trips_through_the_log(stored, tiny_model_dir: Path) -> None:
    ctx, got, sha = stored
    out = call("adapter_merge", "combine", ctx, combination_type="dare_ties", seed=3, density=0.4,
               inputs={"model": str(tiny_model_dir), "adapters": [f"{sha['r8']}:0.6", sha["r8b"]]})
    [event] = _events(got)
    assert [(i.sha256, i.weight) for i in event.inputs] == [(sha["r8"], 0.6), (sha["r8b"], 1.0)]
    assert event.output_sha256 == out["adapter"] and event.merge_id == f"merge-{out['adapter'][:16]}"
    assert event.params == {"requested_type": "dare_ties", "majority_sign_method": "total", "seed": 3}
    assert (event.density, event.exact, event.output_kind) == (0.4, False, "adapter")
    assert event_types()["adapter-merged"] is AdapterMerged
    assert decode_payload("adapter-merged", 1, encode_payload(event)) == event


def test_dare_is_reproducible_with_its_seed(stored, tiny_model_dir: Path) -> None:
    ctx, _, sha = stored
    inputs = {"model": str(tiny_model_dir), "adapters": [sha["r8"], sha["r8b"]]}
    first = call("adapter_merge", "combine", ctx, combination_type="dare_linear", seed=1, inputs=inputs)
    again = call("adapter_merge", "combine", ctx, combination_type="dare_linear", seed=1, inputs=inputs)
    other = call("adapter_merge", "combine", ctx, combination_type="dare_linear", seed=2, inputs=inputs)
    assert first == again and first != other


def test_every_bad_adapter_entry_is_reported_at_once(stored) -> None:
    ctx, _, sha = stored
    with pytest.raises(ValidationError) as err:
        call("adapter_merge", "combine", ctx, inputs={"model": "x", "adapters": [
            "nothex:1", f"{sha['r8']}:zero", {"sha256": sha["r8"], "weight": 0}, f"{sha['r8b']}:0.5"]})
    assert [p["where"] for p in err.value.problems] == ["inputs.adapters[0]", "inputs.adapters[1]",
                                                        "inputs.adapters[2]"]


def test_dora_and_modules_to_save_are_refused(stored, tmp_path: Path, loras: dict[str, Path]) -> None:
    ctx, _, sha = stored
    odd = {}
    for key, field, value in (("dora", "use_dora", True), ("mts", "modules_to_save", ["lm_head"])):
        folder = tmp_path / key
        shutil.copytree(loras["r8"], folder)
        cfg = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**cfg, field: value}))
        odd[key] = ctx.store_artifact("adapter", folder)
    with pytest.raises(ValidationError) as err:
        call("adapter_merge", "combine", ctx, inputs={"model": "x", "adapters": [odd["dora"], odd["mts"], sha["r8"]]})
    text = str(err.value)
    assert "DoRA" in text and "modules_to_save" in text


def test_manifest_documents_which_types_are_exact() -> None:
    spec = manifest("adapter_merge")
    combine = spec.operations["combine"]
    assert tuple(sorted(combine.params["combination_type"].choices)) == tuple(sorted(COMBINATION_TYPES))
    for text in (spec.description, combine.description, combine.params["combination_type"].description):
        assert "`cat`" in text or "cat" in text.split()
        assert "exact" in text.lower()
    assert "Exact" in spec.operations["merge_and_unload"].description
    manifest("evaluate")  # parses with the real schema too
