"""Shared fixtures. Everything runs offline in temp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Test daemons fork their workers from a warm worker host that imports nothing up front: with
# torch imported in each, every daemon start would cost seconds of CPU. test_warm_workers.py runs
# a host with the training libraries imported.
os.environ.setdefault("TUNELOG_WARM_MODULES", "")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama + BPE tokenizer with a chat template, saved as a normal HF folder."""
    from tests.support.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-llama"))
