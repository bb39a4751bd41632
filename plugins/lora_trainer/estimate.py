"""A rough, up-front estimate of a training run for the Train page: optimizer steps, and the memory
the weights, the adapter with its optimizer state, the activations and the logits take.

It reads only the model folder's safetensors headers and config.json, or a GGUF file's header
with gguf-py (no torch, no weights), so the daemon can show it on every keystroke. Memory is an order of magnitude to plan with, not a
measurement: allocator overhead, kernels and the data loader come on top.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from pathlib import Path
from typing import Any

BYTES = {"float32": 4, "auto": 4, "bfloat16": 2, "float16": 2}
"""Bytes per base weight by `model_dtype` (auto is float32 on CPU)."""
QUANT_BYTES = {"nf4": 0.5, "fp4": 0.5, "int8": 1.0}
ADAM_BYTES = 16
"""Per trained parameter: the fp32 value, its gradient and AdamW's two moments."""
ACTIVATION_FACTOR = 34
"""Bytes of activations per token, hidden unit and layer in 16-bit (Korthikanti et al. 2022,
without the attention-score term); doubled for fp32, and only the layer inputs are kept with
gradient checkpointing."""
HEADER_LIMIT = 100 * 1024 * 1024
GGUF_MODULES = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj",
                "ffn_gate": "gate_proj", "ffn_up": "up_proj", "ffn_down": "down_proj"}
"""llama.cpp's tensor names for the linear layers, as transformers (and `target_modules`) name them."""


def tensor_shapes(folder: Path) -> dict[str, list[int]]:
    """Name -> shape of every tensor in the folder's safetensors files, read from their headers."""
    shapes: dict[str, list[int]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with file.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                continue
            (size,) = struct.unpack("<Q", raw)
            if size > HEADER_LIMIT:
                continue
            header = json.loads(f.read(size))
        shapes.update({k: list(v["shape"]) for k, v in header.items() if k != "__metadata__"})
    return shapes


@functools.lru_cache(maxsize=8)
def _gguf_header(path: str, size: int, mtime: float) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Tensor shapes (named as in a transformers checkpoint) and the config a GGUF file's header gives;
    a GGUF is trained de-quantised, so its weights count as float32 (`model_dtype`)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    shapes: dict[str, list[int]] = {}
    for t in reader.tensors:
        parts = t.name.split(".")
        if parts[0] == "blk" and len(parts) == 4:
            name = f"model.layers.{parts[1]}.{GGUF_MODULES.get(parts[2], parts[2])}.{parts[3]}"
        else:
            name = t.name
        shapes[name] = [int(n) for n in reversed(t.shape.tolist())]
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.")}
    arch = str(fields.get("general.architecture", ""))
    embedding = shapes.get("token_embd.weight", [0, 0])
    config = {"hidden_size": fields.get(f"{arch}.embedding_length") or embedding[1],
              "num_hidden_layers": fields.get(f"{arch}.block_count") or 0, "vocab_size": embedding[0]}
    return shapes, config


def model_header(model: str) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """(tensor shapes, config) of a model folder or a GGUF file; empty when neither can be read."""
    path = Path(model).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        stat = path.stat()
        try:
            return _gguf_header(str(path.resolve()), stat.st_size, stat.st_mtime)
        except (ImportError, OSError, ValueError, KeyError):  # gguf-py comes with the train extra
            return {}, {}
    return (tensor_shapes(path), _config(path)) if path.is_dir() else ({}, {})


def _adapted(name: str, shape: list[int], targets: list[str]) -> bool:
    """Whether peft would put a LoRA on this weight: a 2-D `.weight` inside the layers, with the
    module's last name in `targets` (or any such weight for all-linear)."""
    if len(shape) != 2 or not name.endswith(".weight") or ".layers." not in name:
        return False
    module = name[: -len(".weight")].rsplit(".", 1)[-1]
    return "all-linear" in targets or module in targets


def estimate(model: str, params: dict[str, Any], *, rows: int | None) -> dict[str, Any]:
    """{"steps", "parameters", "trained", "memory" (bytes by part), "notes"} for a model folder and the
    train parameters (defaults filled in by the caller); the parts that cannot be known are None."""
    notes: list[str] = []
    batch, accum = int(params.get("batch_size") or 4), int(params.get("grad_accum") or 1)
    length = int(params.get("max_length") or 512)
    steps: int | None = int(params.get("max_steps") or 0) or None
    if steps is None and rows:
        steps = math.ceil(rows / (batch * accum)) * int(params.get("epochs") or 1)
    elif steps is None:
        notes.append("steps: the number of rows is not known yet (the Data page hands it over)")
    shapes, config = model_header(model)
    if not shapes or not config:
        notes.append("memory: needs a model folder with safetensors weights and config.json, or a .gguf file")
        return {"steps": steps, "parameters": None, "trained": None, "memory": None, "notes": notes}
    total = sum(math.prod(s) for s in shapes.values())
    method = str(params.get("method") or "lora")
    if method == "full":
        trained = total
    else:
        r = int(params.get("r") or 8)
        targets = [str(t) for t in params.get("target_modules") or ["all-linear"]]
        trained = sum(r * (s[0] + s[1]) for n, s in shapes.items() if _adapted(n, s, targets))
    quant = str(params.get("quantization") or "none")
    per_weight = QUANT_BYTES.get(quant) or BYTES.get(str(params.get("model_dtype") or "auto"), 4)
    hidden, layers = int(config.get("hidden_size") or 0), int(config.get("num_hidden_layers") or 0)
    vocab = int(config.get("vocab_size") or 0)
    wide = 2 if str(params.get("precision") or "fp32") == "fp32" else 1
    tokens = batch * length
    per_token = 2 * hidden * layers * wide if params.get("gradient_checkpointing") else \
        ACTIVATION_FACTOR * hidden * layers * wide
    memory = {"weights": int(total * per_weight), "trained": trained * ADAM_BYTES,
              "activations": tokens * per_token, "logits": tokens * vocab * 4 * 3}
    return {"steps": steps, "parameters": total, "trained": trained, "memory": memory, "notes": notes}


def _config(folder: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def human(n: float) -> str:
    """1536 -> `1.5 KiB`."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
