"""The recipe under real launchers, in subprocesses: `accelerate launch` with the command
launch_command builds, and DDP over two CPU processes (torchrun, gloo) - the multi-GPU code path
(gradient all-reduce, no_sync during accumulation, sharded data, one reporter, one writer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.trainer import BASE, write_dataset
from tunelog.daemon.jobs.launch import launch_command
from tunelog.store.artifacts import ArtifactStore

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def messages(root: Path, rank: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / f"messages-{rank}.jsonl").read_text().splitlines()]


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def setup(tmp_path: Path) -> tuple[Path, str]:
    dataset = write_dataset(tmp_path / "data", n_train=24, n_validation=8)
    return tmp_path / "run", ArtifactStore(tmp_path / "run" / "artifacts").put_dir(dataset).sha256


def test_accelerate_launch_runs_the_worker(tmp_path: Path, tiny_model_dir: Path) -> None:
    root, sha = setup(tmp_path)
    params = {**BASE, "max_steps": 2}
    run(launch_command(params, gpus=1, script_args=["-m", "tests.support.trainer_worker", str(root),
                                                     str(tiny_model_dir), sha, json.dumps(params)]))
    assert "adapter" in messages(root, 0)[-1]


def test_ddp_on_two_cpu_processes(tmp_path: Path, tiny_model_dir: Path) -> None:
    root, sha = setup(tmp_path)
    params = {**BASE, "max_steps": 3, "grad_accum": 2, "eval_every": 1, "save_every": 2, "threads": 1}
    run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "tests.support.trainer_worker",
         str(root), str(tiny_model_dir), sha, json.dumps(params)])
    main, other = messages(root, 0), messages(root, 1)
    assert [m["message"] for m in other] == ["outputs"] and other[-1] == {"message": "outputs"}
    losses = [m for m in main if m["message"] == "metrics" and "loss" in m]
    assert [m["step"] for m in losses] == [1, 2, 3]
    assert [m["step"] for m in main if m["message"] == "checkpoint"] == [2]
    assert main[-1]["metrics"]["processes"] == 2 and "adapter" in main[-1]
    assert main[-1]["metrics"]["tokens"] > 3 * 2 * 4 * 2 * 5  # both ranks' tokens are counted
