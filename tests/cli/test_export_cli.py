"""`tunectl export` through a real daemon: an adapter merged and written as GGUF by llama.cpp's
converter, cached on a second export, refused at submit when llama-quantize is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Daemon, start_daemon
from tests.support.adapters import make_lora
from tests.support.export import build_tiny_smol, converters_dir
from tunelog.store.artifacts import ArtifactStore

gguf = pytest.importorskip("gguf")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Path, str]]:
    base = build_tiny_smol(tmp_path_factory.mktemp("tiny-smol"))
    adapter = make_lora(base, tmp_path_factory.mktemp("lora") / "r4", r=4, seed=2, strength=5.0)
    home = tmp_path_factory.mktemp("home")
    sha = ArtifactStore(home / "artifacts").put_dir(adapter).sha256  # as a training job would have stored it
    d = start_daemon(home, TUNELOG_LLAMA_CPP_DIR=str(converters_dir()), OMP_NUM_THREADS="1")
    yield d, base, sha
    d.stop()


def test_export_merges_then_converts_and_a_second_export_is_cached(setup: tuple[Daemon, Path, str]) -> None:
    d, base, sha = setup
    out = d.tunectl("export", sha, "--model", str(base), "--format", "gguf", "--quant", "q8_0", "--json",
                    timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    got = json.loads(out.stdout)
    assert got["files"] == ["model-q8_0.gguf"]
    reader = gguf.GGUFReader(Path(got["path"]) / "model-q8_0.gguf")
    assert reader.fields["general.architecture"].contents() == "llama"
    run = d.json("runs", "show", got["run"])["run"]
    assert run["order"] == ["merge", "export"]
    assert run["nodes"]["export"]["outputs"]["gguf"] == got["artifact"]

    again = d.tunectl("export", sha, "--model", str(base), "--format", "gguf", "--quant", "q8_0", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"exported gguf {got['artifact']}" in again.stdout
    second = again.stdout.split()[1]
    assert {n["state"] for n in d.json("runs", "show", second)["run"]["nodes"].values()} == {"cached"}


def test_a_k_quant_without_llama_quantize_is_refused_before_anything_runs(setup: tuple[Daemon, Path, str]) -> None:
    d, base, sha = setup
    before = d.json("runs", "list")
    out = d.tunectl("export", sha, "--model", str(base), "--format", "ollama", "--quant", "q4_k_m")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "q4_k_m needs llama-quantize" in out.stderr
    assert "python -m tunelog.plugins.export.tools install --quantize" in out.stderr
    assert d.json("runs", "list") == before


def test_gguf_lora_needs_the_base(setup: tuple[Daemon, Path, str]) -> None:
    d, _, sha = setup
    out = d.tunectl("export", sha, "--format", "gguf-lora")
    assert out.returncode == 2 and "give its base with --model" in out.stderr
