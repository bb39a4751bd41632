"""Which backend `evaluate.serve` uses: vLLM where vllm is installed, a CUDA GPU is visible and the base
is not quantised, else transformers; an explicit vllm that cannot run is refused with what is missing.

These machines have no GPU and no vllm, so the vLLM engine itself (plugins/evaluate/vllm_engine.py)
never runs here: the choice is tested as a function of the three facts, and the refusals and the
`auto` fallback through the real checks on this machine's real facts."""

from __future__ import annotations

import importlib.util

import pytest

from tunelog.events.errors import ValidationError
from tunelog.plugins.evaluate import checks


@pytest.mark.parametrize(("installed", "cuda", "quantization", "chosen", "why"), [
    (True, True, None, "vllm", ""),
    (False, True, None, "transformers", "vllm is not installed"),
    (True, False, None, "transformers", "no CUDA GPU is visible"),
    (True, True, "nf4", "transformers", "the base is loaded quantised (nf4)"),
    (False, False, None, "transformers", "vllm is not installed; no CUDA GPU is visible"),
])
def test_auto_takes_vllm_only_when_everything_it_needs_is_there(installed: bool, cuda: bool, quantization: str | None,
                                                               chosen: str, why: str) -> None:
    backend, missing = checks.choose_backend("auto", vllm_installed=installed, cuda=cuda, quantization=quantization)
    assert backend == chosen
    assert missing.startswith(why) and bool(missing) == bool(why)


def test_an_explicit_choice_is_kept_and_vllm_says_what_it_lacks() -> None:
    assert checks.choose_backend("transformers", vllm_installed=True, cuda=True, quantization=None) == \
        ("transformers", "")
    assert checks.choose_backend("vllm", vllm_installed=True, cuda=True, quantization=None) == ("vllm", "")
    assert checks.choose_backend("vllm", vllm_installed=False, cuda=True, quantization=None) == \
        ("vllm", "vllm is not installed")


def test_vllm_is_refused_at_submit_without_a_gpu_slot() -> None:
    problems, _ = checks.serve({"backend": "vllm"}, {}, {"cuda": False})
    [(field, message)] = problems
    assert field == "backend" and "no CUDA GPU is visible" in message and "use transformers" in message
    assert checks.serve({"backend": "auto"}, {}, {"cuda": False}) == ([], [])
    assert checks.serve({"backend": "transformers"}, {}, {"cuda": False}) == ([], [])


def test_on_this_machine_auto_serves_with_transformers_and_vllm_is_refused() -> None:
    torch = pytest.importorskip("torch")
    from tunelog.plugins.evaluate.backend import _backend

    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        pytest.skip("this machine can run vLLM: the refusal cannot happen here")
    assert _backend({"backend": "auto"}) == "transformers"
    assert _backend({}) == "transformers"
    with pytest.raises(ValidationError, match="params.backend: the vllm backend needs vllm, a CUDA GPU") as err:
        _backend({"backend": "vllm"})
    assert ("vllm is not installed" in str(err.value)) == (importlib.util.find_spec("vllm") is None)
