"""`tunectl train --stage grpo` through a real daemon with a reward plugin of the user's own (a plugin
folder in the data dir): prompt-only data prepared from a file, reference answers reaching the
reward function, its code pinned with the run, in the provenance and in the node's cache key
(editing the reward re-runs the node), replay; and the refusals at submit, before anything is
queued: data of the wrong kind for a stage, no prompt column, a reward operation that does not exist."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Daemon, start_daemon

pytestmark = [pytest.mark.slow]
pytest.importorskip("trl")

SMALL = {"max_steps": 2, "batch_size": 2, "num_generations": 4, "max_completion_length": 6, "threads": 1,
         "max_length": 64, "lr": 0.01}
MANIFEST = """name: myrewards
version: 0.1.0
description: A user's own reward function.
operations:
  names_answer:
    description: 1.0 when a completion holds the row's answer, else BASE.
    resource: cpu
    inputs:
      completions: {type: json, description: The completions.}
      rows: {type: json, required: false, description: Their dataset rows.}
    outputs:
      rewards: {type: json, description: One number per completion.}
"""
BACKEND = """BASE = {base}


def names_answer(ctx, params, inputs):
    rows = inputs["rows"]
    ctx.log("reward rows have " + ",".join(sorted(rows[0])))
    return {{"rewards": [1.0 if r["answer"] in c else BASE for c, r in zip(inputs["completions"], rows)]}}
"""


def lines_of(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("grpo-cli") / "home"
    plugin = home / "plugins" / "myrewards"
    plugin.mkdir(parents=True)
    (plugin / "manifest.yaml").write_text(MANIFEST)
    (plugin / "backend.py").write_text(BACKEND.format(base="0.0"))
    d = start_daemon(home)
    try:
        wait_for(lambda: plugin_row(d, "myrewards").get("status") == "loaded", what="myrewards to load")
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def prompts(daemon: Daemon) -> Path:
    """Prompt rows with a reference answer each (next to the daemon's home)."""
    path = daemon.home.parent / "prompts.jsonl"
    path.write_text(lines_of([{"prompt": f"what is the {w}", "answer": a}
                              for w, a in (("river", "blue"), ("stone", "grey"), ("cloud", "white"), ("sun", "red"))]))
    return path


def plugin_row(d: Daemon, name: str) -> dict[str, Any]:
    return next((p for p in d.json("plugins", "list") if p["name"] == name), {})


def wait_for(ok: Any, *, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def sets(**extra: Any) -> list[str]:
    return [a for k, v in {**SMALL, **extra}.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def train(d: Daemon, model: Path, data: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    out = d.tunectl("train", "--model", str(model), "--data", str(data), *args, timeout=300)
    run_id = out.stdout.splitlines()[0].removeprefix("run ") if out.returncode == 0 else ""
    return out, d.json("runs", "show", run_id) if run_id else {}


def test_grpo_with_a_user_reward_plugin_pins_its_code_and_reruns_when_it_changes(
        daemon: Daemon, tiny_model_dir: Path, prompts: Path) -> None:
    first_hash = plugin_row(daemon, "myrewards")["code_hash"]
    args = ("--stage", "grpo", "--reward", "myrewards.names_answer", *sets())
    out, view = train(daemon, tiny_model_dir, prompts, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    run, node = view["run"], view["run"]["nodes"]["train"]
    assert run["code"]["train"]["uses.myrewards"] == first_hash
    assert node["outputs"]["metrics"]["reward_code"] == {"myrewards": first_hash}
    assert len(node["outputs"]["metrics"]["completions_sha256"]) == 2
    started = daemon.json("events", "--stream", f"run-{run['run_id']}", "--type", "training-started")
    assert [e["event"]["code"] for e in started["events"]] == [{"myrewards": first_hash}]
    assert "reward rows have answer\n" in daemon.tunectl("logs", node["job_id"]).stdout  # the reference answer

    again, view2 = train(daemon, tiny_model_dir, prompts, *args)
    assert again.returncode == 0 and view2["run"]["nodes"]["train"]["state"] == "cached", view2["run"]["nodes"]

    backend = daemon.home / "plugins" / "myrewards" / "backend.py"
    backend.write_text(BACKEND.format(base="-0.5"))
    wait_for(lambda: plugin_row(daemon, "myrewards").get("code_hash") not in (None, first_hash),
             what="the edited reward plugin to reload")
    edited, view3 = train(daemon, tiny_model_dir, prompts, *args)
    assert edited.returncode == 0, edited.stdout + edited.stderr
    node3 = view3["run"]["nodes"]["train"]
    assert node3["state"] == "completed" and node3["cache_key"] != node["cache_key"]
    assert view3["run"]["code"]["train"]["uses.myrewards"] == plugin_row(daemon, "myrewards")["code_hash"]
    assert view3["run"]["nodes"]["data"]["state"] == "cached"  # only the node whose code changed runs


def test_grpo_with_the_built_in_rewards_replays_its_samples_bit_identical(daemon: Daemon, tiny_model_dir: Path,
                                                                         prompts: Path) -> None:
    out, view = train(daemon, tiny_model_dir, prompts, "--stage", "grpo", *sets(seed=7))
    assert out.returncode == 0, out.stdout + out.stderr
    node = view["run"]["nodes"]["train"]
    assert view["run"]["graph"]["nodes"]["train"]["params"]["rewards"] == ["rewards.regex_format",
                                                                          "rewards.length_penalty"]
    assert set(node["outputs"]["metrics"]["reward_code"]) == {"rewards"}
    replay = daemon.tunectl("replay", view["run"]["run_id"], "--verify", timeout=300)
    assert replay.returncode == 0 and f"against {view['run']['run_id']}: bit-identical" in replay.stdout, \
        replay.stdout + replay.stderr


def refused(d: Daemon, *args: str) -> str:
    """Run `tunectl train`, expect a refusal at submit (exit 2) and that no job was queued."""
    before = len(d.json("jobs", "list", "--limit", "1000"))
    out = d.tunectl("train", *args, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(d.json("jobs", "list", "--limit", "1000")) == before
    return out.stderr


def test_data_of_the_wrong_kind_for_the_stage_is_refused_at_submit_naming_row_and_columns(
        daemon: Daemon, tiny_model_dir: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(lines_of([{"prompt": "hi", "chosen": "hello there", "rejected": "go away"}] * 3))
    chat = tmp_path / "chat.jsonl"
    chat.write_text(lines_of([{"instruction": "hi", "output": "hello"}] * 3))
    err = refused(daemon, "--model", str(tiny_model_dir), "--data", str(pairs))
    assert "nodes.data.inputs.source: pairs.jsonl row 1 holds preference pairs (chosen/rejected answers) " \
           "(columns: prompt, chosen, rejected), but node train trains stage sft" in err, err
    assert "use stage dpo or orpo or simpo" in err
    err = refused(daemon, "--model", str(tiny_model_dir), "--data", str(chat), "--stage", "dpo")
    assert "chat.jsonl row 1 holds chat examples (columns: instruction, output), but node train trains stage " \
           "dpo on preference pairs" in err, err
    err = refused(daemon, "--model", str(tiny_model_dir), "--data", str(chat), "--stage", "grpo")
    assert "chat.jsonl row 1 holds chat examples" in err and "stage grpo on prompts without answers" in err, err


def test_grpo_without_a_prompt_column_or_with_an_unknown_reward_is_refused_before_queueing(
        daemon: Daemon, tiny_model_dir: Path, prompts: Path, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(lines_of([{"question": "what is the river", "answer": "blue"}] * 2))
    err = refused(daemon, "--model", str(tiny_model_dir), "--data", str(questions), "--stage", "grpo")
    assert "questions.jsonl has no prompt column (its columns: question, answer); stage grpo of node train" in err, err
    err = refused(daemon, "--model", str(tiny_model_dir), "--data", str(prompts), "--stage", "grpo",
                  "--reward", "myrewards.nope", "--reward", "norewards.x")
    assert "nodes.train.params.rewards[0]: no operation 'myrewards.nope'" in err, err
    assert "nodes.train.params.rewards[1]: no operation 'norewards.x'" in err, err
    out = daemon.tunectl("train", "--model", str(tiny_model_dir), "--data", str(prompts), "--reward", "rewards.x")
    assert out.returncode == 2 and "only --stage grpo takes reward functions" in out.stderr, out.stderr
