"""Up-front checks of lora_trainer requests, run by the daemon at submit (manifest `checks:`).

The daemon calls `train(params, inputs, facts)` in a throwaway process before anything is
appended and refuses the request on any problem; warnings are shown to the user who submitted.
`params` are fully resolved (defaults and preset applied), `inputs` holds the literal inputs
(a registered model name already replaced by its reference, an artifact hash by its path) and
`facts` what the daemon knows of this machine (`cuda`: a GPU slot exists). The recipe checks the
same rules again in the job (`support.check_supported`). No torch here: this runs on every submit.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, BinaryIO

from .support import PEFT_METHODS, PREFERENCE_METHODS, supported_problems

Problems = list[tuple[str, str]]

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
"""config.json keys that give a model's context length, most common first."""
LEARNED_POSITIONS = frozenset({"gpt2", "gpt_neo", "gpt_bigcode", "opt", "biogpt", "xglm"})
"""Model types with a learned table of absolute positions: a longer sequence has no embedding
(an index error in the job), so max_length beyond it is refused, not only warned about."""


def train(params: dict[str, Any], inputs: dict[str, Any], facts: dict[str, Any]) -> tuple[Problems, Problems]:
    """(problems, warnings) of one lora_trainer.train request."""
    problems = supported_problems(params, cuda_available=bool(facts.get("cuda")))
    warnings: Problems = []
    if inputs.get("adapter") and params.get("method") not in PREFERENCE_METHODS:
        problems.append(("inputs.adapter", f"method {params.get('method')} cannot continue an adapter; use one of "
                                           f"{', '.join(PREFERENCE_METHODS)} or leave the adapter input empty"))
    model = inputs.get("model")
    config = model_config(Path(model)) if isinstance(model, str) else None
    if config is None:
        return problems, warnings
    limit = context_length(config)
    max_length = int(params.get("max_length", 0))
    if limit is not None and max_length > limit:
        if config.get("model_type") in LEARNED_POSITIONS:
            problems.append(("max_length", f"{max_length} is beyond the model's context of {limit} tokens; "
                                           f"{config['model_type']} has no positions past it. Use at most {limit}"))
        else:
            warnings.append(("max_length", f"{max_length} is beyond the model's context of {limit} tokens; "
                                           f"positions past {limit} were never trained"))
    hidden = config.get("hidden_size") or config.get("n_embd")
    if params.get("method") in PEFT_METHODS and isinstance(hidden, int) and int(params.get("r", 0)) > hidden:
        problems.append(("r", f"rank {params['r']} is larger than the model's hidden size {hidden}"))
    return problems, warnings


def model_config(path: Path) -> dict[str, Any] | None:
    """The fields of a local model's config.json (or GGUF metadata) that the checks use; None when
    the model is not local (a hub id) or has no readable config."""
    try:
        if path.is_dir() and (path / "config.json").is_file():
            got = json.loads((path / "config.json").read_text())
            return {**got.get("text_config", {}), **got} if isinstance(got, dict) else None
        ggufs = sorted(path.glob("*.gguf")) if path.is_dir() else [path] if path.is_file() else []
        if len(ggufs) == 1:
            return gguf_config(ggufs[0])
    except (OSError, ValueError, struct.error):
        return None
    return None


def context_length(config: dict[str, Any]) -> int | None:
    """The model's context length in tokens, from the first key of CONTEXT_KEYS it has."""
    for key in CONTEXT_KEYS:
        if isinstance(config.get(key), int) and config[key] > 0:
            return int(config[key])
    return None


# GGUF metadata value types (gguf spec): fixed sizes by type number; 8 string, 9 array.
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def gguf_config(path: Path) -> dict[str, Any] | None:
    """`model_type`, `n_ctx` and `n_embd` read from a GGUF file's header (the key-value metadata
    before the tensors), or None when it is not a GGUF file."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            return None
        _version, _tensors, count = struct.unpack("<IQQ", f.read(20))
        meta: dict[str, Any] = {}
        for _ in range(count):
            key = _string(f)
            kind = struct.unpack("<I", f.read(4))[0]
            value = _value(f, kind)
            if key == "general.architecture":
                meta["model_type"] = value
            elif key.endswith(".context_length"):
                meta["n_ctx"] = value
            elif key.endswith(".embedding_length"):
                meta["n_embd"] = value
            if len(meta) == 3:
                break
        return meta


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", f.read(8))
    return f.read(n).decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind == 8:
        return _string(f)
    if kind == 9:
        item, n = struct.unpack("<IQ", f.read(12))
        if item in _FIXED:
            f.seek(n * struct.calcsize("<" + _FIXED[item]), 1)
        else:
            for _ in range(n):
                _value(f, item)
        return None
    fmt = "<" + _FIXED[kind]
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
