"""The commands that run one job's worker as several processes (daemon/jobs/launch.py), read back
by the launchers' own argument parsers: what `accelerate launch` and torchrun would do with them.
(tests/plugins/test_trainer_launch.py runs them for real; it is slow.)"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from accelerate.commands.launch import launch_command_parser
from torch.distributed.run import get_args_parser

from tunelog.daemon.jobs.launch import cpu_launch_command, free_port, launch_command
from tunelog.events.errors import ValidationError

WORKER = ["-m", "tunelog.daemon.jobs.worker", "job.json"]


def accelerate_args(cmd: list[str]) -> argparse.Namespace:
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])
    assert (args.module, args.training_script, args.training_script_args) == (True, WORKER[1], WORKER[2:])
    return args


def gpu(params: dict[str, Any], gpus: int = 2, port: int | None = None) -> argparse.Namespace:
    return accelerate_args(launch_command(params, gpus=gpus, script_args=WORKER, main_process_port=port))


def test_free_port_is_a_port_nothing_listens_on() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))  # free: the launcher can bind it


def test_cpu_processes_run_under_torchrun_on_one_node() -> None:
    cmd = cpu_launch_command(processes=3, script_args=WORKER, port=29612)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    args = get_args_parser().parse_args(cmd[3:])
    assert (args.nnodes, args.nproc_per_node, args.master_port) == ("1", "3", 29612)
    assert (args.module, args.training_script, args.training_script_args) == (True, WORKER[1], WORKER[2:])
    assert "--master_port" not in cpu_launch_command(processes=2, script_args=WORKER)  # torchrun's default


def test_gpus_run_under_accelerate_on_one_machine_with_the_jobs_precision() -> None:
    args = gpu({}, gpus=4, port=29613)  # nothing set: DDP in fp32
    assert (args.num_machines, args.num_processes, args.mixed_precision, args.main_process_port) == (1, 4, "no", 29613)
    assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed and args.config_file is None
    assert [gpu({"precision": p}).mixed_precision for p in ("fp32", "bf16", "fp16")] == ["no", "bf16", "fp16"]
    assert gpu({}, gpus=2).multi_gpu  # two GPUs are already several
    single = gpu({"distributed": "ddp"}, gpus=1)
    assert not single.multi_gpu and single.num_processes == 1 and single.main_process_port is None


def test_fsdp_and_deepspeed_are_accelerates_own() -> None:
    fsdp = gpu({"distributed": "fsdp", "accelerate_config": None}, gpus=8)
    assert fsdp.use_fsdp and not fsdp.multi_gpu
    assert (fsdp.fsdp_version, fsdp.fsdp_auto_wrap_policy) == ("2", "TRANSFORMER_BASED_WRAP")
    ds = gpu({"distributed": "deepspeed", "accelerate_config": ""}, gpus=2)
    assert ds.use_deepspeed and ds.zero_stage == 2 and not ds.multi_gpu and not ds.use_fsdp


def test_an_accelerate_config_file_decides_instead(tmp_path: Path) -> None:
    config = tmp_path / "fsdp.yaml"
    config.write_text("distributed_type: FSDP\n")
    args = gpu({"distributed": "fsdp", "accelerate_config": str(config), "precision": "bf16"}, gpus=8)
    assert args.config_file == str(config) and args.mixed_precision == "bf16"
    assert not args.use_fsdp and not args.multi_gpu and not args.use_deepspeed


def test_a_missing_config_file_and_no_gpu_are_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ValidationError) as err:
        launch_command({"accelerate_config": str(missing)}, gpus=2, script_args=WORKER)
    assert err.value.message == f"accelerate config file {missing} does not exist"
    assert err.value.problems == [{"where": "accelerate_config", "message": "no such file"}]
    with pytest.raises(ValidationError) as err:
        launch_command({}, gpus=0, script_args=WORKER)
    assert err.value.message == "launching a training worker needs at least one GPU"
    assert err.value.hint == "run it in-process on CPU"
