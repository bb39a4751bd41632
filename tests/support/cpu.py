"""Faking the one CPU feature our code depends on, at the library boundary that probes it."""

from __future__ import annotations

import pytest


def fake_avx512bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make bitsandbytes believe the CPU has AVX512-BF16, faking only its feature probe.

    `Linear4bit.__init__` sets `support_avx512bf16_for_cpu` from `has_avx512bf16()` (which asks the
    native library), and that flag alone decides whether an eval-mode no-grad forward repacks the
    weights in place. After repacking, `matmul_4bit` calls the `gemv_4bit` op: bitsandbytes'
    AVX512-BF16 kernel where the CPU has it, its generic kernel elsewhere; the op has no autograd
    kernel either way. With the probe faked, a test of the repacking guard means the same on every
    CPU (without it, the flag is already off on CPUs lacking the feature and the test cannot fail).
    """
    import bitsandbytes.functional
    import bitsandbytes.nn.modules

    for module in (bitsandbytes.functional, bitsandbytes.nn.modules):
        monkeypatch.setattr(module, "has_avx512bf16", lambda: True)
