"""GRPO on a tiny Llama on CPU with reward functions written as plugin operations (the built-in
`rewards` plugin): the mean reward rises on a reward the random model can learn (use more of a few
words it already says sometimes), metrics per function, exact resume, and the reward code hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.stages import curve, run_stage
from tunelog.plugins.rewards import backend as rewards

torch.set_num_threads(1)
pytest.importorskip("trl")
WORDS = "blue|green|red|dark|bright"
GRPO = {"stage": "grpo", "rewards": ["rewards.regex_format"], "reward_params": {"rewards.regex_format": {"pattern": WORDS}},
        "num_generations": 8, "batch_size": 2, "max_completion_length": 8, "beta": 0.0, "lr": 0.1}


def prompts(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": f"what is the {w}", "answer": w} for w in ("river", "mountain", "cloud", "stone")][:n]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "meta.json").write_text(json.dumps({"kind": "prompt", "counts": {"train": len(rows)}}))
    return folder


def test_grpo_mean_reward_rises(tmp_path: Path, tiny_model_dir: Path) -> None:
    outputs, messages, _ = run_stage(tmp_path, tiny_model_dir, prompts(tmp_path / "d"), max_steps=24, run_id="r1",
                                       **GRPO)
    reward = curve(messages, "reward")
    first, last = sum(reward[s] for s in range(1, 9)) / 8, sum(reward[s] for s in range(17, 25)) / 8
    assert last > first + 0.08, reward
    assert curve(messages, "rewards/regex_format/mean") == reward  # the one function is the total
    assert all(0 < v <= 8 for v in curve(messages, "completions/mean_length").values())
    from tunelog.plugins.context import source_sha256

    assert outputs["metrics"]["reward_code"] == {"rewards": source_sha256(Path(rewards.__file__).parent)}
    assert [type(b["event"]).__name__ for kind, b in messages if kind == "event"] == ["TrainingStarted"]
    assert next(b["event"] for kind, b in messages if kind == "event").code == outputs["metrics"]["reward_code"]
    assert any(b["line"].startswith("reward plugin rewards: code ") for kind, b in messages if kind == "log")


def test_grpo_with_kl_resumes_to_the_bytes_of_an_uninterrupted_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = prompts(tmp_path / "d")
    settings: dict[str, Any] = {**GRPO, "beta": 0.1, "max_steps": 5,
                                "rewards": ["rewards.regex_format", "rewards.length_penalty"],
                                "reward_params": {**GRPO["reward_params"],
                                                  "rewards.length_penalty": {"target_words": 2, "per_word": 0.1}}}
    whole, whole_msgs, whole_ctx = run_stage(tmp_path, tiny_model_dir, data, job_id="whole", **settings)
    assert len(curve(whole_msgs, "kl")) == 5 and len(curve(whole_msgs, "rewards/length_penalty/mean")) == 5

    def stop(ctx: Any, kind: str, body: dict[str, Any]) -> None:
        if kind == "metrics" and body.get("step") == 2:
            ctx.request_stop()

    stopped, stopped_msgs, _ = run_stage(tmp_path, tiny_model_dir, data, job_id="stopped", on_message=stop, **settings)
    resumed, resumed_msgs, resumed_ctx = run_stage(tmp_path, tiny_model_dir, data, job_id="resumed",
                                                   resume_from=whole_ctx.artifact_path(stopped["checkpoint"]), **settings)
    assert resumed["adapter"] == whole["adapter"]
    assert curve(stopped_msgs, "reward") | curve(resumed_msgs, "reward") == curve(whole_msgs, "reward")
    assert curve(stopped_msgs) | curve(resumed_msgs) == curve(whole_msgs)

    def sampled(messages: list) -> list[str]:
        return [b["line"] for kind, b in messages if kind == "log" and " completions sha256 " in b["line"]]

    assert len(sampled(whole_msgs)) == 5 and sampled(stopped_msgs) + sampled(resumed_msgs) == sampled(whole_msgs)


def test_built_in_rewards_score_completions() -> None:
    rows = [{"answer": "Paris"}, {"answer": "paris"}]
    assert rewards.exact_match(None, {}, {"completions": [" Paris ", "Paris"], "rows": rows})["rewards"] == [1.0, 0.0]
    assert rewards.exact_match(None, {"ignore_case": True}, {"completions": ["Paris", "PARIS"], "rows": rows}
                               )["rewards"] == [1.0, 1.0]
    assert rewards.regex_format(None, {"pattern": r"^<a>.*</a>$", "full_match": True},
                                {"completions": ["<a>x</a>", "x <a>x</a>"]})["rewards"] == [1.0, 0.0]
    assert rewards.length_penalty(None, {"target_words": 2, "per_word": 0.5},
                                  {"completions": ["one two", "one two three four"]})["rewards"] == [0.0, -1.0]


def test_grpo_refuses_rows_that_are_not_prompt_only_and_unknown_rewards(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tests.support.stages import pairs, write_records
    from tunelog.events.errors import ValidationError

    with pytest.raises(ValidationError, match="not prompt-only rows") as raised:
        run_stage(tmp_path, tiny_model_dir, write_records(tmp_path / "p", pairs(2), kind="preference"), **GRPO)
    assert [p["where"] for p in raised.value.problems] == ["row 1", "row 2"]
    with pytest.raises(ValidationError, match="plugin 'rewards' has no operation 'nope'"):
        run_stage(tmp_path, tiny_model_dir, prompts(tmp_path / "d"), **{**GRPO, "rewards": ["rewards.nope"]})
