"""Running llama.cpp's converters and llama-quantize as subprocesses of the current python.

The converters come from the pinned llama.cpp source (`.tools`); they import their own gguf-py
next to them, so the GGUF writer is the one that source was released with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tunelog.events.errors import JobError

CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
"""Output types convert_hf_to_gguf.py / convert_lora_to_gguf.py write themselves."""
QUANTIZE_TYPES = {"q2_k": "Q2_K", "q3_k_m": "Q3_K_M", "q4_0": "Q4_0", "q4_k_s": "Q4_K_S", "q4_k_m": "Q4_K_M",
                  "q5_0": "Q5_0", "q5_k_s": "Q5_K_S", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K"}
"""Our names of the types that need llama-quantize, with llama-quantize's own names."""

Log = Callable[[str], None]


def hf_to_gguf(script: Path, model_dir: Path, out: Path, *, outtype: str, log: Log) -> Path:
    """`convert_hf_to_gguf.py MODEL --outfile OUT --outtype T`; returns OUT."""
    _run([sys.executable, str(script), str(model_dir), "--outfile", str(out), "--outtype", outtype],
         what="convert_hf_to_gguf.py", log=log)
    return out


def lora_to_gguf(script: Path, adapter_dir: Path, base_dir: Path, out: Path, *, outtype: str, log: Log) -> Path:
    """`convert_lora_to_gguf.py ADAPTER --base BASE --outfile OUT --outtype T`; returns OUT."""
    _run([sys.executable, str(script), str(adapter_dir), "--base", str(base_dir), "--outfile", str(out),
          "--outtype", outtype], what="convert_lora_to_gguf.py", log=log)
    return out


def quantize(binary: Path, src: Path, out: Path, *, quant: str, log: Log) -> Path:
    """`llama-quantize SRC OUT TYPE`; returns OUT."""
    _run([str(binary), str(src), str(out), QUANTIZE_TYPES[quant]], what="llama-quantize", log=log)
    return out


def _run(argv: list[str], *, what: str, log: Log) -> None:
    # Local folders only: the converters must never reach for the hub.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("NO_LOCAL_GGUF", None)  # use the gguf-py that ships with the converter
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    lines = (proc.stdout + proc.stderr).splitlines()
    if proc.returncode != 0:
        tail = "\n".join(lines[-15:])
        raise JobError(f"{what} failed with exit code {proc.returncode}:\n{tail}")
    for line in lines[-3:]:
        log(f"{what}: {line}")
