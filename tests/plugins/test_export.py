"""The export plugin on a tiny Llama (SmolLM2's tokenizer) with a real peft adapter: hf folders, GGUF
written by llama.cpp's own converter (checked tensor by tensor with gguf-py against the merged
model), a GGUF LoRA, an Ollama folder, and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.adapters import call, make_lora
from tests.support.export import build_tiny_smol, converters_dir
from tunelog.events.errors import ValidationError
from tunelog.plugins.context import Context

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
pytest.importorskip("peft")

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(autouse=True)
def _tools(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    monkeypatch.setenv("TUNELOG_LLAMA_CPP_DIR", str(converters_dir()))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_smol(tmp_path_factory.mktemp("tiny-smol"))


@pytest.fixture(scope="module")
def adapter(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora(base, tmp_path_factory.mktemp("lora") / "r8", r=8, seed=1, strength=5.0)


@pytest.fixture(scope="module")
def merged(base: Path, adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The adapter folded into the base by adapter_merge (float32), as a plain model folder."""
    ctx, _ = Context.local(tmp_path_factory.mktemp("merge"))
    out = call("adapter_merge", "merge_and_unload", ctx,
               inputs={"model": str(base), "adapter": ctx.store_artifact("adapter", adapter)})
    return ctx.artifact_path(out["model"])


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    out: dict[str, Any] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        out.update(load_file(shard))
    return out


def _permute(w: Any, n_head: int) -> Any:
    """llama.cpp's q/k row order for llama models (convert_hf_to_gguf.py, LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _expected_tensors(folder: Path) -> dict[str, Any]:
    """GGUF tensor name -> the merged model's weight in llama.cpp's layout."""
    cfg = json.loads((folder / "config.json").read_text())
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w = _weights(folder)
    out = {"token_embd.weight": w["model.embed_tokens.weight"], "output_norm.weight": w["model.norm.weight"]}
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
             "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    for i in range(cfg["num_hidden_layers"]):
        for g, h in names.items():
            t = w[f"model.layers.{i}.{h}.weight"]
            t = _permute(t, heads) if g == "attn_q" else _permute(t, kv) if g == "attn_k" else t
            out[f"blk.{i}.{g}.weight"] = t
    return out


def _only_file(folder: Path, suffix: str = ".gguf") -> Path:
    [path] = [p for p in folder.iterdir() if p.name.endswith(suffix)]
    return path


def _field(reader: Any, key: str) -> Any:
    return reader.fields[key].contents()


def test_gguf_f16_holds_the_merged_weights_and_the_model_metadata(tmp_path: Path, merged: Path) -> None:
    from transformers import AutoTokenizer

    ctx, got = Context.local(tmp_path)
    out = call("export", "gguf", ctx, inputs={"model": str(merged)}, quant="f16")
    folder = ctx.artifact_path(out["gguf"])
    assert [p.name for p in folder.iterdir()] == ["model-f16.gguf"]
    assert any(kind == "artifact" and body["sha256"] == out["gguf"] for kind, body in got)
    reader = gguf.GGUFReader(_only_file(folder))
    cfg = json.loads((merged / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(merged)
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "llama.block_count") == cfg["num_hidden_layers"]
    assert _field(reader, "llama.embedding_length") == cfg["hidden_size"]
    assert _field(reader, "llama.attention.head_count_kv") == cfg["num_key_value_heads"]
    assert _field(reader, "tokenizer.ggml.pre") == "smollm"
    assert _field(reader, "tokenizer.ggml.eos_token_id") == tok.eos_token_id
    assert _field(reader, "tokenizer.chat_template") == tok.chat_template
    assert len(_field(reader, "tokenizer.ggml.tokens")) == len(tok)

    want = _expected_tensors(merged)
    tensors = {t.name: t for t in reader.tensors}
    assert set(tensors) == set(want)  # tied embeddings: no separate output.weight
    for name, t in tensors.items():
        expect = want[name].numpy()
        if t.tensor_type == gguf.GGMLQuantizationType.F16:
            assert (t.data == expect.astype("float16")).all(), name
        else:
            assert t.tensor_type == gguf.GGMLQuantizationType.F32 and expect.ndim == 1, name
            assert (t.data == expect).all(), name
    assert tensors["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16


def test_gguf_q8_0_equals_gguf_py_quantisation_of_the_merged_weights(tmp_path: Path, merged: Path) -> None:
    ctx, _ = Context.local(tmp_path)
    out = call("export", "gguf", ctx, inputs={"model": str(merged)}, quant="q8_0")
    reader = gguf.GGUFReader(_only_file(ctx.artifact_path(out["gguf"])))
    want = _expected_tensors(merged)
    quantised = 0
    for t in reader.tensors:
        expect = want[t.name].float().numpy()
        if t.tensor_type == gguf.GGMLQuantizationType.Q8_0:
            quantised += 1
            assert (t.data == gguf.quants.quantize(expect, gguf.GGMLQuantizationType.Q8_0)).all(), t.name
        else:
            assert (t.data == expect).all(), t.name
    assert quantised == 1 + 7 * 2  # embeddings and every projection of both layers


def test_gguf_lora_factors_give_the_merged_update(tmp_path: Path, base: Path, adapter: Path, merged: Path) -> None:
    ctx, _ = Context.local(tmp_path)
    sha = ctx.store_artifact("adapter", adapter)
    out = call("export", "gguf_lora", ctx, inputs={"model": str(base), "adapter": sha})
    folder = ctx.artifact_path(out["gguf"])
    reader = gguf.GGUFReader(_only_file(folder))
    assert _field(reader, "general.type") == "adapter" and _field(reader, "adapter.type") == "lora"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert _field(reader, "adapter.lora.alpha") == cfg["lora_alpha"]
    scale = cfg["lora_alpha"] / cfg["r"]
    tensors = {t.name: t.data for t in reader.tensors}
    merged_w, base_w = _expected_tensors(merged), _expected_tensors(base)
    targets = [n.removesuffix(".lora_a") for n in tensors if n.endswith(".lora_a")]
    assert len(targets) == 7 * 2
    for name in targets:
        a, b = (torch.from_numpy(tensors[f"{name}.{x}"].astype("float32")) for x in ("lora_a", "lora_b"))
        delta = (merged_w[name] - base_w[name]).float()
        update = b @ a * scale
        assert delta.abs().max() > 1e-3, name  # the adapter changes this weight
        assert (update - delta).abs().max() < 2e-3 * delta.abs().max(), name


def test_hf_export_loads_with_plain_transformers(tmp_path: Path, merged: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    ctx, _ = Context.local(tmp_path)
    (merged_copy := tmp_path / "m").mkdir()
    for p in merged.iterdir():
        if p.name != "generation_config.json":
            shutil.copyfile(p, merged_copy / p.name)
    out = call("export", "hf", ctx, inputs={"model": str(merged_copy)})
    folder = ctx.artifact_path(out["model"])
    tok = AutoTokenizer.from_pretrained(folder)
    gen = GenerationConfig.from_pretrained(folder)
    assert gen.eos_token_id == tok.eos_token_id and gen.pad_token_id == tok.pad_token_id
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(folder).eval()(input_ids=ids).logits
        b = AutoModelForCausalLM.from_pretrained(merged).eval()(input_ids=ids).logits
    assert torch.equal(a, b)


def test_ollama_folder_has_the_gguf_and_a_chatml_modelfile(tmp_path: Path, merged: Path) -> None:
    ctx, _ = Context.local(tmp_path)
    out = call("export", "ollama", ctx, inputs={"model": str(merged)}, quant="q8_0", name="facts-bot")
    folder = ctx.artifact_path(out["ollama"])
    assert sorted(p.name for p in folder.iterdir()) == ["Modelfile", "model-q8_0.gguf"]
    text = (folder / "Modelfile").read_text()
    assert text.splitlines()[0] == "FROM ./model-q8_0.gguf"
    assert f'SYSTEM """{SMOL_SYSTEM}"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text
    assert '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' in text
    report = out["report"]
    assert report["template"] == "chatml" and report["system"] == SMOL_SYSTEM
    assert report["command"] == f"ollama create facts-bot -f {folder / 'Modelfile'}"
    reader = gguf.GGUFReader(folder / "model-q8_0.gguf")
    assert _field(reader, "general.architecture") == "llama"


def test_ollama_system_prompt_can_be_given(tmp_path: Path, merged: Path) -> None:
    ctx, _ = Context.local(tmp_path)
    out = call("export", "ollama", ctx, inputs={"model": str(merged)}, quant="f16", system="Answer briefly.")
    assert 'SYSTEM """Answer briefly."""' in (ctx.artifact_path(out["ollama"]) / "Modelfile").read_text()


def test_ollama_refuses_a_template_it_cannot_translate(tmp_path: Path, merged: Path) -> None:
    other = tmp_path / "alpaca-style"
    shutil.copytree(merged, other)
    (other / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'user' %}### Instruction:\n{{ m['content'] }}\n\n{% else %}"
        "### Response:\n{{ m['content'] }}\n\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}### Response:\n{% endif %}")
    ctx, got = Context.local(tmp_path)
    with pytest.raises(ValidationError, match="unsupported chat template") as err:
        call("export", "ollama", ctx, inputs={"model": str(other)})
    assert "chatml, llama3, mistral, gemma, phi3" in str(err.value)
    assert not [k for k, _ in got if k == "artifact"]


def test_k_quant_without_llama_quantize_is_refused_with_the_build_command(
        tmp_path: Path, merged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    only = tmp_path / "converters-only"
    shutil.copytree(converters_dir(), only, ignore=shutil.ignore_patterns("bin", "build-src"))
    monkeypatch.setenv("TUNELOG_LLAMA_CPP_DIR", str(only))
    ctx, got = Context.local(tmp_path)
    with pytest.raises(ValidationError, match="q4_k_m needs llama-quantize") as err:
        call("export", "gguf", ctx, inputs={"model": str(merged)}, quant="q4_k_m")
    assert "tunelog.plugins.export.tools install --quantize" in str(err.value)
    assert not got


def test_missing_converters_are_refused_with_the_install_command(
        tmp_path: Path, merged: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNELOG_LLAMA_CPP_DIR", str(tmp_path / "nothing-here"))
    ctx, got = Context.local(tmp_path)
    with pytest.raises(ValidationError, match="convert_hf_to_gguf.py is not installed") as err:
        call("export", "gguf", ctx, inputs={"model": str(merged)}, quant="f16")
    assert "python -m tunelog.plugins.export.tools install" in str(err.value)
    assert not got


def test_an_adapter_folder_is_not_a_model(tmp_path: Path, adapter: Path) -> None:
    ctx, got = Context.local(tmp_path)
    with pytest.raises(ValidationError, match="merge it first"):
        call("export", "gguf", ctx, inputs={"model": str(adapter)})
    assert not got
