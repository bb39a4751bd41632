"""The torch/peft side of `adapter_merge`: load, merge, save. Imported only inside operations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tunelog.events.errors import ValidationError
from tunelog.plugins.common.adapters import save_naming_base
from tunelog.plugins.common.models import TOKENIZER_FILES, load_model

_DTYPES = ("float32", "bfloat16", "float16")


def merge_into_base(base_dir: Path, adapter_dir: Path, *, out: Path, dtype: str, max_shard_size: str) -> str:
    """Load the base unquantised in `dtype`, fold the adapter in, save a plain model folder; returns the dtype."""
    from peft import PeftModel

    name = _dtype_name(dtype, base_dir)
    model = PeftModel.from_pretrained(load_model(base_dir, dtype=name), str(adapter_dir))
    try:
        merged = model.merge_and_unload(safe_merge=True)
    except (ValueError, NotImplementedError) as e:
        raise ValidationError(f"peft cannot merge this adapter: {e}") from e
    merged.save_pretrained(out, max_shard_size=max_shard_size)
    _copy_tokenizer(adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_dir, out)
    return name


def combine_adapters(base_dir: Path, adapter_dirs: list[Path], weights: list[float], *, out: Path,
                     combination_type: str, density: float | None, majority_sign_method: str,
                     svd_rank: int | None, svd_clamp: float | None, seed: int, dtype: str,
                     base_ref: str) -> tuple[str, int]:
    """Combine adapters with peft's add_weighted_adapter and save the result as a peft adapter folder.

    Returns (combination type peft applied, rank of the result). The inputs load under the names
    `in0`, `in1`, ...; the result is named `default` so it saves at the top of `out`.
    """
    import torch
    from peft import PeftModel

    names = [f"in{i}" for i in range(len(adapter_dirs))]
    model = PeftModel.from_pretrained(load_model(base_dir, dtype=_dtype_name(dtype, base_dir)),
                                      str(adapter_dirs[0]), adapter_name=names[0])
    for name, folder in zip(names[1:], adapter_dirs[1:], strict=True):
        model.load_adapter(str(folder), adapter_name=name)
    torch.manual_seed(seed)  # dare types drop entries at random
    try:
        model.add_weighted_adapter(adapters=names, weights=weights, adapter_name="default",
                                   combination_type=combination_type, svd_rank=svd_rank, svd_clamp=svd_clamp,
                                   density=density, majority_sign_method=majority_sign_method)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ValidationError(f"peft cannot combine these adapters with {combination_type!r}: {e}") from e
    _undo_rslora(model, "default")
    config = model.peft_config["default"]
    config.inference_mode = True
    save_naming_base(model, out, base_ref, selected_adapters=["default"])
    applied = "linear" if len(adapter_dirs) == 1 else combination_type
    return applied, int(getattr(config, "r"))  # noqa: B009 - a LoraConfig behind the PeftConfig type


def _undo_rslora(model: Any, name: str) -> None:
    """Give the combined adapter the scaling 1 its factors were computed for.

    add_weighted_adapter folds every input's scaling into the new factors and sets lora_alpha = r,
    i.e. scaling 1, but it copies `use_rslora` from the first input, which makes the scaling
    sqrt(r) instead: the result would be sqrt(r) times too large (measured with peft 0.21.2).
    """
    from peft.tuners.lora import LoraLayer

    config = model.peft_config[name]
    if not config.use_rslora:
        return
    config.use_rslora = False
    for module in model.modules():
        if isinstance(module, LoraLayer) and name in module.scaling:
            module.scaling[name] = 1.0


def _dtype_name(dtype: str, base_dir: Path) -> str:
    """Resolve `auto` to the floating dtype the base's config names (float32 when none)."""
    if dtype != "auto":
        return dtype
    path = base_dir / "config.json"
    cfg = json.loads(path.read_text()) if path.is_file() else {}
    named = cfg.get("dtype") or cfg.get("torch_dtype")
    return named if named in _DTYPES else "float32"


def _copy_tokenizer(src: Path, out: Path) -> None:
    """Ship the tokenizer files byte for byte (the adapter's own when training changed it)."""
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
