"""`tunectl train|generate|merge|adapters` end to end: the built-in plugins in a real daemon, real peft
training of a tiny Llama on CPU (a few steps, one thread), one daemon for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import start_daemon
from tests.support.trainer import chat_records

pytestmark = pytest.mark.slow

SMALL = ("--set", "max_steps=3", "--set", "batch_size=2", "--set", "threads=1", "--set", "max_length=64",
         "--set", "pad_to_multiple=16")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[dict[str, Any]]:
    """A daemon, a chat dataset, and one `tunectl train` run on the tiny model (its output kept)."""
    root = tmp_path_factory.mktemp("train-cli")
    data = root / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in chat_records(12)))
    d = start_daemon(root / "home")
    try:
        out = d.tunectl("train", "--model", str(tiny_model_dir), "--data", str(data), *SMALL, "--name", "first",
                        timeout=300)
        yield {"daemon": d, "data": data, "model": tiny_model_dir, "out": out}
    finally:
        d.stop()


def adapter_of(stdout: str) -> str:
    return next(line.split()[1] for line in stdout.splitlines() if line.startswith("adapter "))


def test_train_follows_the_run_to_an_adapter(trained: dict[str, Any]) -> None:
    out, d = trained["out"], trained["daemon"]
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    run_id = lines[0].removeprefix("run ")
    assert lines[0] == f"run {run_id}" and "data: completed dataset=" in out.stdout
    assert any(line.startswith("train: step 3/3 (100%) loss=") and "tok/s=" in line for line in lines)
    sha = adapter_of(out.stdout)
    assert len(sha) == 64 and f"inspect: tunectl runs show {run_id}" in lines
    runs = {r["run_id"]: r for r in d.json("runs", "list")}
    assert runs[run_id]["state"] == "succeeded" and runs[run_id]["label"] == "first"
    view = d.json("runs", "show", run_id)
    train = view["run"]["nodes"]["train"]
    assert train["outputs"]["adapter"] == sha
    assert view["run"]["graph"]["nodes"]["train"]["params"]["max_steps"] == 3
    assert view["jobs"][train["job_id"]]["metrics"]["loss"] > 0
    shown = d.tunectl("runs", "show", run_id).stdout
    assert f"adapter={sha[:12]}" in shown and "provenance of train:" in shown
    assert f"base model   {trained['model']}" in shown and "metrics of train" in shown
    adapters = {a["sha256"]: a for a in d.json("adapters", "list")}
    assert adapters[sha]["source"] == "run" and adapters[sha]["run_id"] == run_id
    assert any(line.startswith(f"{sha[:12]}  run     {run_id}") for line in d.tunectl("adapters").stdout.splitlines())


def test_generate_prints_base_and_adapter_answers(trained: dict[str, Any]) -> None:
    d, sha = trained["daemon"], adapter_of(trained["out"].stdout)
    args = ["generate", "--model", str(trained["model"]), "--adapter", sha[:10], "--max-new-tokens", "4",
            "what is the river"]
    out = d.tunectl(*args, "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    answers = json.loads(out.stdout)["answers"]
    assert set(answers["what is the river"]) == {"base", sha[:12]}
    side = d.tunectl(*args, timeout=120)  # the same graph again: answered from the cache
    assert side.returncode == 0 and "generate: cached" in side.stdout
    header = next(line for line in side.stdout.splitlines() if line.startswith("base"))
    assert header.split(" | ")[1].strip() == sha[:12]


def test_merge_into_model_and_cat_combine_of_two_adapters(trained: dict[str, Any]) -> None:
    d, model, first = trained["daemon"], str(trained["model"]), adapter_of(trained["out"].stdout)
    second_out = d.tunectl("train", "--model", model, "--data", str(trained["data"]), *SMALL, "--set", "seed=1",
                           timeout=300)
    assert second_out.returncode == 0, second_out.stderr
    assert "data: cached" in second_out.stdout
    second = adapter_of(second_out.stdout)
    merged = d.tunectl("merge", "--model", model, "--into-model", first[:12], timeout=300)
    assert merged.returncode == 0, merged.stderr
    assert any(line.startswith("merged model ") and len(line.split()[2]) == 64 for line in merged.stdout.splitlines())
    combined = d.tunectl("merge", "--model", model, first[:12], f"{second[:12]}:0.5", timeout=300)
    assert combined.returncode == 0, combined.stderr
    line = next(x for x in combined.stdout.splitlines() if x.startswith("adapter "))
    assert line.endswith("(cat, exact)")
    row = next(a for a in d.json("adapters", "list") if a["sha256"] == line.split()[1])
    assert row["source"] == "merge" and row["merge_type"] == "cat" and row["exact"] is True
    assert [(p["sha256"], p["weight"]) for p in row["parents"]] == [(first, 1.0), (second, 0.5)]
    assert row["run_id"]  # filled in from the merge's job
    refused = d.tunectl("merge", "--model", model, "--into-model", first[:12], second[:12])
    assert refused.returncode == 2 and "exactly one adapter" in refused.stderr
