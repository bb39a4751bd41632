"""Operations of the `adapter_merge` plugin.

Each operation checks its whole request first (adapter configs are plain JSON) and refuses,
with the reason, what peft would reject or get silently wrong; only then does it load torch,
the base model and the adapters (in `.merging`, imported lazily so importing this is fast).

Lineage: each merge emits one `AdapterMerged` event with `ctx.emit`. Its `merge_id` field
(`merge-<output sha256[:16]>`) names the stream the job runner appends it to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelog.events.errors import ValidationError
from tunelog.events.merges import EXACT_COMBINATIONS, AdapterMerged, MergeInput, merge_stream
from tunelog.plugins.api import JobContext
from tunelog.plugins.common.adapters import (
    DENSITY_TYPES,
    SIGN_TYPES,
    base_identity,
    combine_problems,
    is_sha,
    merge_problems,
    model_folder,
    model_lineage,
    parse_weighted,
    read_adapter_config,
)


def merge_and_unload(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Fold one adapter into a full-precision copy of its base; output a plain model folder."""
    adapter_sha = _adapter_sha(inputs.get("adapter"), where="inputs.adapter")
    adapter_dir = ctx.artifact_path(adapter_sha)
    cfg = read_adapter_config(adapter_dir, where="inputs.adapter")
    problems = [("inputs.adapter", m) for m in merge_problems(cfg)]
    if problems:  # before the base is resolved: that may download it
        raise ValidationError.collect("cannot merge this adapter into its base", problems)
    base_ref = inputs.get("model")
    base_dir = model_folder(ctx, base_ref)
    problems = _base_problems(base_dir, cfg)
    if problems:
        raise ValidationError.collect("cannot merge this adapter into its base", problems)

    from . import merging

    ctx.progress(0, 3, "loading base and adapter")
    out = Path(ctx.workdir) / "merged"
    dtype = merging.merge_into_base(base_dir, adapter_dir, out=out, dtype=params.get("dtype", "auto"),
                                    max_shard_size=params.get("max_shard_size", "5GB"))
    ctx.progress(2, 3, "storing merged model")
    sha = ctx.store_artifact("model", out)
    ctx.emit(AdapterMerged(merge_id=merge_stream(sha), merge_type="merge_and_unload",
                           inputs=[MergeInput(sha256=adapter_sha)], base_model=model_lineage(base_ref, base_dir),
                           output_sha256=sha, output_kind="model", exact=True, dtype=dtype, job_id=ctx.job_id))
    ctx.progress(3, 3, "done")
    return {"model": sha}


def combine(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Combine weighted LoRA adapters into one new peft adapter (peft add_weighted_adapter)."""
    pairs = parse_weighted(inputs.get("adapters"), where="inputs.adapters")
    ctype = params.get("combination_type", "cat")
    dirs = [ctx.artifact_path(sha) for sha, _ in pairs]
    configs = [read_adapter_config(d, where=f"inputs.adapters[{i}]") for i, d in enumerate(dirs)]
    problems = [(f"inputs.{w}" if w.startswith("adapters") else f"params.{w}", m)
                for w, m in combine_problems(configs, ctype)]
    if problems:
        raise ValidationError.collect(f"cannot combine these adapters with {ctype!r}", problems)
    base_ref = inputs.get("model")
    base_dir = model_folder(ctx, base_ref)

    from . import merging

    density = float(params.get("density", 0.5)) if ctype in DENSITY_TYPES else None
    dtype = str(params.get("dtype", "float32"))
    settings = {"svd_rank": int(params.get("svd_rank", 0)) or None, "svd_clamp": float(params.get("svd_clamp", 0)) or None,
                "majority_sign_method": params.get("majority_sign_method", "total"), "seed": int(params.get("seed", 0))}
    ctx.progress(0, 3, f"combining {len(pairs)} adapters ({ctype})")
    out = Path(ctx.workdir) / "combined"
    applied, rank = merging.combine_adapters(
        base_dir, dirs, [w for _, w in pairs], out=out, combination_type=ctype, density=density,
        base_ref=base_identity(base_ref, base_dir), dtype=dtype, **settings)
    ctx.progress(2, 3, "storing combined adapter")
    sha = ctx.store_artifact("adapter", out)
    # peft writes the new factors in the base's dtype: only a float32 base keeps them exact
    exact = dtype == "float32" and (applied in EXACT_COMBINATIONS or (applied == "linear" and len(pairs) == 1))
    if applied != ctype:
        ctx.log(f"peft applies {applied!r} to a single adapter (asked for {ctype!r})")
    used = {k: v for k, v in settings.items() if v is not None and _uses(applied, k)}
    ctx.emit(AdapterMerged(merge_id=merge_stream(sha), merge_type=applied,
                           inputs=[MergeInput(sha256=s, weight=w) for s, w in pairs],
                           base_model=model_lineage(base_ref, base_dir), output_sha256=sha, output_kind="adapter",
                           exact=exact, density=density if applied in DENSITY_TYPES else None, rank=rank, dtype=dtype,
                           params={"requested_type": ctype, **used}, job_id=ctx.job_id))
    ctx.progress(3, 3, "done")
    return {"adapter": sha}


def _uses(ctype: str, setting: str) -> bool:
    """Whether a combination type reads a setting (so the lineage records only what shaped the result)."""
    return {"svd_rank": ctype.endswith("svd"), "svd_clamp": ctype.endswith("svd"),
            "majority_sign_method": ctype in SIGN_TYPES, "seed": ctype.startswith("dare")}[setting]


def _adapter_sha(value: Any, *, where: str) -> str:
    if not is_sha(value):
        raise ValidationError(f"{where}: expected an adapter artifact hash, got {str(value)[:80]!r}")
    return str(value)


def _base_problems(base_dir: Path, adapter_cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """Why merging into this base would be wrong, read from its config.json."""
    path = base_dir / "config.json"
    cfg = json.loads(path.read_text()) if path.is_file() else {}
    out = []
    if cfg.get("quantization_config"):
        method = cfg["quantization_config"].get("quant_method", "quantized")
        out.append(("inputs.model", f"the base folder holds {method} weights: merging into them would re-quantise "
                                    "the update; give the full-precision base model"))
    targets = json.dumps([adapter_cfg.get("target_modules"), adapter_cfg.get("modules_to_save")])
    if cfg.get("tie_word_embeddings") and ("lm_head" in targets or "embed_tokens" in targets):
        out.append(("inputs.adapter", "the adapter changes lm_head/embed_tokens, which the base ties together: "
                                      "a merge would change both; load the base with tie_word_embeddings=False"))
    return out
