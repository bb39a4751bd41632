"""QLoRA on CPU with evaluation during training: bitsandbytes 0.50 repacks 4-bit weights in place on
the first eval-mode no-grad forward on AVX512-BF16 CPUs; afterwards the repacked layers run through
an op with no autograd kernel, so the backward passes no gradient through them and the LoRA
gradients come out wrong, silently. models.load_model flags every Linear4bit first; these tests
check that the gradients after an eval step are the ones training gets without it.

The fix and its control run on every CPU: `avx512bf16_cpu` fakes bitsandbytes' own CPU feature probe
(the only thing here that differs between CPUs), so the repacking path is taken everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.support.cpu import fake_avx512bf16
from tests.support.trainer import BASE, run_train, write_dataset

torch.set_num_threads(1)


@pytest.fixture
def avx512bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_avx512bf16(monkeypatch)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data"), n_train=16, n_validation=4)


def lora_grads(model: Any, batch: dict[str, Any], *, eval_first: bool) -> dict[str, torch.Tensor]:
    """One training backward (after evaluating in eval mode without grad, like the recipe, when
    `eval_first`): the gradient of every LoRA tensor. The LoRA weights are seeded, so two calls
    on equal models start from equal adapters."""
    from peft import LoraConfig, get_peft_model

    from tunelog.plugins.lora_trainer.recipe import token_loss_sum

    model.config.use_cache = False
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    if eval_first:
        peft_model.eval()
        with torch.no_grad():
            token_loss_sum(peft_model, batch)
    peft_model.train()
    peft_model(**batch).loss.backward()
    return {n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
            for n, p in peft_model.named_parameters() if "lora_" in n}


def wrong(grads: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> list[str]:
    """LoRA tensors whose gradient differs from the reference's."""
    assert grads.keys() == reference.keys() and grads
    return [n for n, g in grads.items() if not torch.allclose(g, reference[n], rtol=1e-4, atol=1e-6)]


def a_batch(model_dir: Path, dataset_dir: Path) -> dict[str, Any]:
    from tunelog.plugins.common.models import load_tokenizer
    from tunelog.plugins.lora_trainer import backend, recipe
    from tunelog.plugins.lora_trainer.params import TrainParams

    params = TrainParams.from_params(backend.resolve(dict(BASE)))
    tok = load_tokenizer(model_dir)
    rows = recipe.encode_split(tok, dataset_dir, "train", params)[:4]
    return recipe.make_batch(rows, tok, params, torch.device("cpu"))


@pytest.mark.usefixtures("avx512bf16_cpu")
@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_every_lora_tensor_gets_its_gradients_after_an_eval_step(tiny_model_dir: Path, dataset_dir: Path,
                                                                  compute_dtype: str) -> None:
    import bitsandbytes as bnb

    from tunelog.plugins.common.models import load_model

    def load() -> Any:
        return load_model(tiny_model_dir, quantization="nf4", double_quant=True, compute_dtype=compute_dtype)

    model = load()
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and not any(m.support_avx512bf16_for_cpu for m in layers)
    batch = a_batch(tiny_model_dir, dataset_dir)
    after_eval = lora_grads(model, batch, eval_first=True)
    assert all(float(g.abs().sum()) > 0 for g in after_eval.values())
    assert wrong(after_eval, lora_grads(load(), batch, eval_first=False)) == []


@pytest.mark.usefixtures("avx512bf16_cpu")
@pytest.mark.filterwarnings("ignore:bitsandbytes..gemv_4bit. an autograd kernel was not registered:UserWarning")
def test_without_the_fix_the_trap_is_real(tiny_model_dir: Path, dataset_dir: Path) -> None:
    """Control: a 4-bit model loaded without the flag gets wrong LoRA gradients after an eval step.

    The backward goes through the repacked layers' `gemv_4bit` op, for which torch warns that no
    autograd kernel is registered: that warning is the trap's mechanism, so this test (and only
    this one) ignores it; the gradients it spoils are asserted below.
    """
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    def load() -> Any:
        qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
        return AutoModelForCausalLM.from_pretrained(tiny_model_dir, quantization_config=qc)

    batch = a_batch(tiny_model_dir, dataset_dir)
    reference = lora_grads(load(), batch, eval_first=False)
    assert len(wrong(lora_grads(load(), batch, eval_first=True), reference)) > len(reference) // 2


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
