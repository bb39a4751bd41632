"""The command that runs one job's worker as several processes: `accelerate launch` on GPUs (DDP,
or FSDP / DeepSpeed from an accelerate config file), torchrun (gloo) on CPU cores. tunelog does
not invent its own distribution; the trainer uses `Accelerator`, so the same code runs under
either launcher unchanged. Pure (no torch): the daemon builds these commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tunelog.events.errors import ValidationError

_MIXED = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (for the launcher's rendezvous)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_launch_command(*, processes: int, script_args: list[str], port: int | None = None) -> list[str]:
    """argv for torchrun running `script_args` as `processes` CPU processes (DDP over gloo)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes)]
    if port is not None:
        cmd += ["--master_port", str(port)]
    return cmd + list(script_args)


def launch_command(params: dict[str, Any], *, gpus: int, script_args: list[str],
                   main_process_port: int | None = None) -> list[str]:
    """argv for `accelerate launch` running `script_args` (a script path or `-m module ...`) on `gpus` GPUs."""
    if gpus < 1:
        raise ValidationError("launching a training worker needs at least one GPU", hint="run it in-process on CPU")
    mode = params.get("distributed", "ddp")
    config = params.get("accelerate_config") or ""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
           "--num_processes", str(gpus), "--mixed_precision", _MIXED[params.get("precision", "fp32")]]
    if config:
        if not Path(config).is_file():
            raise ValidationError(f"accelerate config file {config} does not exist",
                                  problems=[{"where": "accelerate_config", "message": "no such file"}])
        cmd += ["--config_file", str(config)]
    elif mode == "fsdp":
        cmd += ["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP"]
    elif mode == "deepspeed":
        cmd += ["--use_deepspeed", "--zero_stage", "2"]
    elif gpus > 1:
        cmd += ["--multi_gpu"]
    if main_process_port is not None:
        cmd += ["--main_process_port", str(main_process_port)]
    return cmd + list(script_args)
