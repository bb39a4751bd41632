"""QLoRA on CPU with evaluation during training: bitsandbytes 0.50 repacks 4-bit weights in place on
the first eval-mode no-grad forward on AVX512-BF16 CPUs, after which only some LoRA tensors get
gradients (FACTS.md). models.load_model flags every Linear4bit first; these tests check that every
LoRA tensor still learns after an eval step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.support.trainer import BASE, run_train, write_dataset

torch.set_num_threads(1)
AVX512_BF16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), n_train=16, n_validation=4)


def lora_grads_after_eval(model: Any, batch: dict[str, Any]) -> dict[str, float]:
    """Evaluate (eval mode, no grad) like the recipe, then one training backward: |grad| per LoRA tensor."""
    from peft import LoraConfig, get_peft_model

    from tunelog.plugins.lora_trainer.recipe import token_loss_sum

    model.config.use_cache = False
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    peft_model.eval()
    with torch.no_grad():
        token_loss_sum(peft_model, batch)
    peft_model.train()
    peft_model(**batch).loss.backward()
    return {n: 0.0 if p.grad is None else float(p.grad.abs().sum())
            for n, p in peft_model.named_parameters() if "lora_" in n}


def a_batch(model_dir: Path, dataset_dir: Path) -> dict[str, Any]:
    from tunelog.plugins.common.models import load_tokenizer
    from tunelog.plugins.lora_trainer import backend, recipe
    from tunelog.plugins.lora_trainer.params import TrainParams

    params = TrainParams.from_params(backend.resolve(dict(BASE)))
    tok = load_tokenizer(model_dir)
    rows = recipe.encode_split(tok, dataset_dir, "train", params)[:4]
    return recipe.make_batch(rows, tok, params, torch.device("cpu"))


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_every_lora_tensor_gets_gradients_after_an_eval_step(tiny_model_dir: Path, dataset_dir: Path,
                                                              compute_dtype: str) -> None:
    from tunelog.plugins.common.models import load_model

    model = load_model(tiny_model_dir, quantization="nf4", double_quant=True, compute_dtype=compute_dtype)
    grads = lora_grads_after_eval(model, a_batch(tiny_model_dir, dataset_dir))
    assert grads and all(g > 0 for g in grads.values()), [n for n, g in grads.items() if g == 0]


@pytest.mark.skipif(not AVX512_BF16, reason="the repacking trap only exists on CPUs with AVX512-BF16")
def test_without_the_fix_the_trap_is_real(tiny_model_dir: Path, dataset_dir: Path) -> None:
    """Control: a 4-bit model loaded without the flag loses LoRA gradients after an eval step."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, quantization_config=qc)
    grads = lora_grads_after_eval(model, a_batch(tiny_model_dir, dataset_dir))
    assert any(g == 0 for g in grads.values())


def test_qlora_run_with_eval_every_step_trains_every_lora_tensor(tmp_path: Path, tiny_model_dir: Path,
                                                                  dataset_dir: Path) -> None:
    """End to end: nf4 + bf16 compute, evaluation after every step; every LoRA B matrix (zero at
    start) has moved, so every adapted layer received gradients after the evaluations."""
    outputs, messages, ctx = run_train(tmp_path, tiny_model_dir, dataset_dir, quantization="nf4",
                                       compute_dtype="bfloat16", eval_every=1, max_steps=4)
    evals = [b for kind, b in messages if kind == "metrics" and "eval_loss" in b]
    assert [e["step"] for e in evals] == [1, 2, 3, 4]
    weights = load_file(str(ctx.artifact_path(outputs["adapter"]) / "adapter_model.safetensors"))
    b_matrices = {n: t for n, t in weights.items() if "lora_B" in n}
    assert len(b_matrices) == 2 * 7  # 2 layers x 7 linear projections
    assert all(float(t.abs().sum()) > 0 for t in b_matrices.values()), [n for n, t in b_matrices.items()
                                                                        if float(t.abs().sum()) == 0]
