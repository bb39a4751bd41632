"""`tunectl train --stage dpo`, its replay, and an sft -> dpo workflow through a real daemon: real TRL
losses on a tiny Llama on CPU (a few steps, one thread), one daemon for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Daemon, start_daemon
from tests.support.stages import pairs
from tests.support.trainer import chat_records

pytestmark = [pytest.mark.slow]
pytest.importorskip("trl")

SMALL = {"max_steps": 4, "batch_size": 4, "threads": 1, "max_length": 64, "pad_to_multiple": 16, "lr": 0.01}


def lines_of(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("stage-cli") / "home")
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def pair_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text(lines_of([{"prompt": p["prompt"][0]["content"], "chosen": p["chosen"], "rejected": p["rejected"]}
                              for p in pairs(16)]))
    return path


def test_train_stage_dpo_follows_the_margin_and_replays_bit_identical(daemon: Daemon, tiny_model_dir: Path,
                                                                      pair_file: Path) -> None:
    sets = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    out = daemon.tunectl("train", "--model", str(tiny_model_dir), "--data", str(pair_file), "--stage", "dpo", *sets,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = out.stdout.splitlines()[0].removeprefix("run ")
    assert any(line.startswith("train: step 4/4 (100%) loss=") and " margin=" in line and " acc=" in line
               for line in out.stdout.splitlines()), out.stdout
    view = daemon.json("runs", "show", run_id)
    train = view["run"]["nodes"]["train"]
    metrics = view["jobs"][train["job_id"]]["metrics"]
    assert metrics["rewards/margins"] > 0 and view["run"]["graph"]["nodes"]["train"]["params"]["stage"] == "dpo"
    replay = daemon.tunectl("replay", run_id, "--verify", timeout=300)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert f"against {run_id}: bit-identical" in replay.stdout


def test_sft_then_dpo_on_its_adapter_runs_as_one_workflow(daemon: Daemon, tiny_model_dir: Path, pair_file: Path,
                                                           tmp_path: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    chat.write_text(lines_of(chat_records(8)))
    graph = {"description": "sft then dpo", "nodes": {
        "chat": {"op": "datasets.prepare", "inputs": {"source": str(chat)}},
        "prefs": {"op": "datasets.prepare", "inputs": {"source": str(pair_file)}},
        "sft": {"op": "lora_trainer.train", "params": SMALL,
                "inputs": {"model": str(tiny_model_dir), "dataset": {"node": "chat", "output": "dataset"}}},
        "dpo": {"op": "lora_trainer.train", "params": {**SMALL, "stage": "dpo"},
                "inputs": {"model": str(tiny_model_dir), "dataset": {"node": "prefs", "output": "dataset"},
                           "adapter": {"node": "sft", "output": "adapter"}}}}}
    (tmp_path / "wf.json").write_text(json.dumps(graph))
    view = daemon.json("workflow", "submit", str(tmp_path / "wf.json"))
    nodes = view["run"]["nodes"]
    assert view["run"]["state"] == "succeeded", nodes
    assert nodes["dpo"]["outputs"]["adapter"] != nodes["sft"]["outputs"]["adapter"]
    assert nodes["dpo"]["outputs"]["metrics"]["start_adapter"] == nodes["sft"]["outputs"]["adapter"], nodes["dpo"]


def test_reward_operations_are_a_plugin_the_daemon_loads_and_runs(daemon: Daemon, tmp_path: Path) -> None:
    rows = {p["name"]: p for p in daemon.json("plugins", "list")}
    assert rows["rewards"]["status"] == "loaded" and rows["rewards"]["source"] == "builtin"
    assert len(rows["rewards"]["code_hash"]) == 64
    graph = {"nodes": {"score": {"op": "rewards.regex_format", "params": {"pattern": "blue|green"},
                                 "inputs": {"completions": ["a blue sky", "grey"]}}}}
    (tmp_path / "score.json").write_text(json.dumps(graph))
    view = daemon.json("workflow", "submit", str(tmp_path / "score.json"))
    assert view["run"]["state"] == "succeeded", view["run"]["nodes"]
    assert view["run"]["nodes"]["score"]["outputs"]["rewards"] == [1.0, 0.0]


def test_demo_stage_dpo_runs_sft_then_dpo_as_one_workflow_and_reports_the_style_shares(daemon: Daemon,
                                                                                      tiny_model_dir: Path) -> None:
    """The wiring of `tunectl demo --stage dpo` on the tiny model (`make demo-dpo` runs it on SmolLM2):
    one run, DPO on the SFT adapter, answers of base, SFT and DPO on every held-out and control prompt."""
    from tunelog.frontends.cli.demo_dpo import signoff_questions

    out = daemon.tunectl("demo", "--stage", "dpo", "--model", str(tiny_model_dir), "--sft-steps", "1", "--steps", "1",
                         "--json", timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    s = json.loads(out.stdout[out.stdout.index("{"):])
    q = signoff_questions()
    assert [r["question"] for r in s["rows"]] == q["held_out"] + [x["question"] for x in q["controls"]]
    assert all(isinstance(r[m], str) and isinstance(r[f"{m}_ok"], bool) for r in s["rows"] for m in ("base", "sft", "dpo"))
    assert s["styled"] == {m: sum(r[f"{m}_ok"] for r in s["rows"] if r["kind"] == "held-out") for m in ("base", "sft", "dpo")}
    assert s["dpo_start_adapter"] == s["adapters"]["sft"] != s["adapters"]["dpo"]
    run = daemon.json("runs", "show", s["run"])["run"]
    assert run["state"] == "succeeded" and run["graph"]["nodes"]["dpo"]["params"]["stage"] == "dpo"
    assert run["graph"]["nodes"]["dpo"]["inputs"]["adapter"] == {"node": "sft", "output": "adapter"}
