"""`tunectl replay [--verify]`, `runs verify|diff|lineage|fork` and `state --at` against a real daemon,
with testops.curve as a fast, deterministic stand-in for training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Daemon, needs_testops

pytestmark = needs_testops


def submit(daemon: Daemon, tmp_path: Path, name: str, params: dict[str, Any]) -> str:
    graph = {"nodes": {"train": {"op": "testops.curve", "params": params}}}
    (tmp_path / name).write_text(json.dumps(graph))
    view = daemon.json("workflow", "submit", str(tmp_path / name), "--no-cache")
    assert view["run"]["state"] == "succeeded"
    return str(view["run"]["run_id"])


def test_replay_verify_passes_for_a_deterministic_run_and_fails_for_a_noisy_one(daemon: Daemon, tmp_path: Path) -> None:
    steady = submit(daemon, tmp_path, "steady.json", {"steps": 6, "every": 2})
    out = daemon.tunectl("replay", steady, "--verify")
    assert out.returncode == 0, out.stdout + out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("run r") and first.endswith(f"(replay of {steady})")
    assert f"against {steady}: bit-identical" in out.stdout
    assert any(line.startswith("train  bit-identical  bit-identical, 6 steps  weights equal")
               for line in out.stdout.splitlines())
    noisy = submit(daemon, tmp_path, "noisy.json", {"steps": 6, "every": 2, "jitter": 0.5})
    bad = daemon.tunectl("replay", noisy, "--verify", "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["verdict"] == "differs" and report["nodes"]["train"]["loss"]["verdict"] == "differs"
    loose = daemon.tunectl("runs", "verify", report["run"], "--rtol", "10")
    assert loose.returncode == 0 and ": within-tolerance" in loose.stdout.splitlines()[0]
    plain = daemon.tunectl("replay", steady)  # without --verify: followed like any run
    assert plain.returncode == 0 and "succeeded in" in plain.stdout


def test_fork_from_a_checkpoint_then_diff_and_lineage(daemon: Daemon, tmp_path: Path) -> None:
    base = submit(daemon, tmp_path, "base.json", {"steps": 6, "every": 2, "scale": 1.0})
    out = daemon.tunectl("runs", "fork", base, "--node", "train", "--from-step", "4", "--set", "scale=2")
    assert out.returncode == 0, out.stderr
    forked = out.stdout.splitlines()[0].removeprefix("run ")
    run = daemon.json("runs", "show", forked)["run"]
    assert run["forked_from"]["run"] == base and run["forked_from"]["step"] == 4
    assert run["nodes"]["train"]["outputs"]["resumed_from"] == 4
    bad_step = daemon.tunectl("runs", "fork", base, "--node", "train", "--from-step", "3")
    assert bad_step.returncode == 2 and "checkpoints at steps 2, 4, 6" in bad_step.stderr
    diff = daemon.tunectl("runs", "diff", base, forked).stdout.splitlines()
    assert diff[0].startswith(f"a  {base}  succeeded") and diff[1].startswith(f"b  {forked}  succeeded")
    assert "inputs: differ" in diff and "  input    graph.params.scale: 1.0 -> 2.0" in diff
    assert daemon.json("runs", "diff", base, base)["same_inputs"] is True
    tree = daemon.tunectl("runs", "lineage", forked).stdout.splitlines()
    assert tree[0].startswith(f"run {base} (origin) succeeded")
    assert any(line.startswith(f"└── * run {forked} (fork") for line in tree)
    assert daemon.json("runs", "lineage", base)["children"][-1]["id"] == forked


def test_state_at_a_past_position(daemon: Daemon, tmp_path: Path) -> None:
    before = daemon.json("events", "--limit", "1")["head"]
    run_id = submit(daemon, tmp_path, "past.json", {"steps": 2})
    past = daemon.json("state", "--at", str(before), "--table", "runs")
    assert past["at"] == before and set(past["tables"]) == {"runs"}
    assert run_id not in {r["run_id"] for r in past["tables"]["runs"]}
    now = daemon.tunectl("state", "--at", str(past["head"]))
    assert now.returncode == 0 and now.stdout.startswith(f"state after event {past['head']} of ")
    assert any(line.startswith(run_id) for line in now.stdout.splitlines())
    assert daemon.tunectl("state", "--at", "-1").returncode == 2
