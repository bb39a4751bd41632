"""The Train page's estimate: parameter counts read from safetensors headers (or a GGUF's) equal
what torch and peft count on the loaded model, steps follow the rows, batch and epochs, and memory moves the way
the settings move it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelog.plugins.lora_trainer.estimate import estimate, human


def test_counts_match_the_loaded_model_and_peft(tiny_model_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not model.config.tie_word_embeddings  # a tied head would be one tensor on disk and in parameters()
    e = estimate(str(tiny_model_dir), {"r": 4, "target_modules": ["all-linear"]}, rows=None)
    assert e["parameters"] == sum(p.numel() for p in model.parameters())
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    assert e["trained"] == peft_model.get_nb_trainable_parameters()[0]
    attention = estimate(str(tiny_model_dir), {"r": 4, "target_modules": ["q_proj", "v_proj"]}, rows=None)
    assert attention["trained"] == get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"])).get_nb_trainable_parameters()[0]
    assert estimate(str(tiny_model_dir), {"method": "full"}, rows=None)["trained"] == e["parameters"]


@pytest.mark.parametrize(("params", "rows", "steps"), [
    ({"batch_size": 4, "epochs": 2}, 10, 6),
    ({"batch_size": 2, "grad_accum": 2, "epochs": 1}, 9, 3),
    ({"max_steps": 7}, 1000, 7),
    ({"batch_size": 4}, None, None),
])
def test_steps(tiny_model_dir: Path, params: dict[str, int], rows: int | None, steps: int | None) -> None:
    assert estimate(str(tiny_model_dir), params, rows=rows)["steps"] == steps


def test_memory_follows_the_settings(tiny_model_dir: Path) -> None:
    def total(**params: object) -> int:
        memory = estimate(str(tiny_model_dir), {"batch_size": 4, "max_length": 256, **params}, rows=None)["memory"]
        return sum(memory.values())

    assert total(batch_size=8) > total() > total(gradient_checkpointing=True)
    assert total(model_dtype="bfloat16") < total() and total(quantization="nf4") < total(model_dtype="bfloat16")


def test_no_model_folder_says_what_it_needs(tmp_path: Path) -> None:
    e = estimate(str(tmp_path / "nowhere"), {}, rows=3)
    assert e["memory"] is None and e["steps"] == 1 and "safetensors" in e["notes"][0]
    assert human(1536) == "1.5 KiB" and human(10) == "10 B"


@pytest.mark.slow
def test_a_gguf_file_counts_like_the_folder_it_was_converted_from(tmp_path: Path) -> None:
    """llama.cpp's own converter writes the GGUF; its header gives the same counts as the folder.
    Slow (~15 s idle): the converter loads SmolLM2's tokenizer, which the tiny model uses."""
    from tests.support.export import build_tiny_smol, converters_dir
    from tunelog.plugins.export.convert import hf_to_gguf

    folder = build_tiny_smol(tmp_path / "smol")
    gguf = hf_to_gguf(converters_dir() / "convert_hf_to_gguf.py", folder, tmp_path / "smol.gguf", outtype="f32",
                      log=lambda line: None)
    for params in ({"r": 4}, {"r": 2, "target_modules": ["q_proj", "down_proj"]}, {"batch_size": 2}):
        from_file, from_folder = (estimate(str(m), params, rows=8) for m in (gguf, folder))
        assert from_file["parameters"] and from_file["memory"] == from_folder["memory"]
        assert {k: from_file[k] for k in ("steps", "parameters", "trained")} == {
            k: from_folder[k] for k in ("steps", "parameters", "trained")}
