"""Operation inputs shared by the trainer, merge and evaluate plugins: base model and adapter
references, how a saved adapter names its base, and up-front checks of adapter configs.

Everything here reads JSON only (no torch, no peft), so an operation can refuse a bad request,
with the reason, before it loads a model.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from tunelog.events.errors import NotFoundError, ValidationError

_SHA = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

COMBINATION_TYPES = ("cat", "linear", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd",
                     "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd")
"""Every `combination_type` of peft's `add_weighted_adapter` (peft 0.21)."""
EQUAL_RANK_TYPES = frozenset({"linear", "ties", "dare_linear", "dare_ties", "magnitude_prune"})
"""Types that add A and B factors position by position, so every input needs the same rank."""
DENSITY_TYPES = frozenset(t for t in COMBINATION_TYPES if t.startswith(("ties", "dare", "magnitude")))
"""Types that prune entries and so use `density`."""
SIGN_TYPES = frozenset({"ties", "ties_svd", "dare_ties", "dare_ties_svd"})
"""Types that elect a majority sign (`majority_sign_method`)."""

_NOT_MERGEABLE = {
    "PROMPT_TUNING": "prompt tuning adds virtual tokens and has no weights to merge",
    "P_TUNING": "p-tuning adds virtual tokens and has no weights to merge",
    "PREFIX_TUNING": "prefix tuning adds key/value prefixes and has no weights to merge",
    "MULTITASK_PROMPT_TUNING": "prompt tuning adds virtual tokens and has no weights to merge",
    "CPT": "context-aware prompt tuning adds virtual tokens and has no weights to merge",
    "ADAPTION_PROMPT": "adaption prompts are gated attention prefixes and cannot be merged",
    "XLORA": "X-LoRA mixes adapters per token with a learned classifier and cannot be merged",
}
_REINIT_WRONG = ("pissa_niter_", "lora_ga", "corda")
_BASE_MUTATING = ("pissa", "olora", "lora_ga", "corda")


def is_sha(value: Any) -> bool:
    """True for a 64-digit lowercase hex artifact hash."""
    return isinstance(value, str) and bool(_SHA.match(value))


def model_folder(ctx: Any, ref: Any, *, where: str = "inputs.model") -> Path:
    """Local folder of a `model` input: an artifact hash, a local folder or GGUF file, or a hub id."""
    if is_sha(ref):
        return Path(ctx.artifact_path(ref))
    if not isinstance(ref, str) or not ref.strip():
        raise ValidationError(f"{where}: expected a model artifact hash, local path or hub id, got {ref!r}")
    from tunelog.plugins.common.models import resolve_model  # lazily: it pulls in the store package

    return Path(resolve_model(ref, cache_dir=Path(ctx.cache_dir) / "models"))


def base_identity(ref: Any, folder: Path) -> str:
    """How a saved adapter names its base model, whatever folder the base lies in on this machine:
    a hub id or an artifact hash as given, else the local folder's (or GGUF file's) name. What the
    weights were is recorded by hash with the run (`models.model_identity`)."""
    text = str(ref)
    local = Path(text).expanduser()
    if is_sha(text) or not local.exists():
        return text
    return local.resolve().name or Path(folder).name


def save_naming_base(model: Any, out: Path, identity: str, **kwargs: Any) -> None:
    """`model.save_pretrained(out, **kwargs)` for a peft model, then name its base `identity` where
    the local folder's path was written: `base_model_name_or_path` in adapter_config.json and
    `base_model` in the README.md peft writes. peft reads the base's config through that name while
    saving (to see whether the vocabulary changed), so the name changes only afterwards. Loading stays
    plain peft: `PeftModel.from_pretrained(base, adapter_dir)` with a base the user loaded."""
    local = {c.base_model_name_or_path for c in model.peft_config.values()}
    local |= {model.get_base_model().config.name_or_path}
    model.save_pretrained(out, **kwargs)
    for file in Path(out).rglob("adapter_config.json"):
        config = json.loads(file.read_text())
        config["base_model_name_or_path"] = identity
        file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for file in Path(out).rglob("README.md"):
        text = file.read_text()
        for path in sorted((p for p in local if p and p != identity), key=len, reverse=True):
            text = text.replace(path, identity)
        file.write_text(text)


def model_lineage(ref: Any, folder: Path) -> dict[str, Any]:
    """What lineage records about a base model: the reference, plus weight hashes unless it is an artifact."""
    if is_sha(ref):
        return {"ref": ref, "artifact": ref}
    from tunelog.plugins.common.models import model_identity

    return {"ref": str(ref), **model_identity(folder)}


def parse_weighted(value: Any, *, where: str) -> list[tuple[str, float]]:
    """(sha256, weight) pairs from a list of {"sha256", "weight"}, "sha:weight" or bare "sha" (weight 1)."""
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list) or not items:
        raise ValidationError(f"{where}: expected a non-empty list of adapters",
                              hint='give [{"sha256": "...", "weight": 0.5}, ...] or ["<sha>:0.5", ...]')
    out: list[tuple[str, float]] = []
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        sha, weight = _weighted_item(item)
        if not is_sha(sha):
            problems.append((f"{where}[{i}]", f"not an adapter hash: {str(sha)[:80]!r}"))
        elif not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight == 0:
            problems.append((f"{where}[{i}]", f"weight must be a non-zero number, got {weight!r}"))
        else:
            out.append((sha, float(weight)))
    if problems:
        raise ValidationError.collect("invalid adapter list", problems)
    return out


def _weighted_item(item: Any) -> tuple[Any, Any]:
    if isinstance(item, dict):
        return item.get("sha256"), item.get("weight", 1.0)
    if isinstance(item, str) and ":" in item:
        sha, _, weight = item.partition(":")
        try:
            return sha, float(weight)
        except ValueError:
            return sha, weight
    return item, 1.0


def parse_named(value: Any, *, where: str) -> list[tuple[str, str]]:
    """(name, sha256) pairs from {name: sha}, [{"name", "sha256"}], ["name=sha"] or bare shas (named sha[:12])."""
    if value is None:
        return []
    if isinstance(value, dict) and "sha256" not in value:
        items: list[Any] = [{"name": k, "sha256": v} for k, v in value.items()]
    else:
        items = [value] if isinstance(value, (str, dict)) else list(value)
    out: list[tuple[str, str]] = []
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            name, sha = item.get("name"), item.get("sha256")
        elif isinstance(item, str) and "=" in item:
            name, _, sha = item.partition("=")
        else:
            name, sha = (f"a{item[:12]}" if isinstance(item, str) else None), item
        if not is_sha(sha):
            problems.append((f"{where}[{i}]", f"not an adapter hash: {str(sha)[:80]!r}"))
        elif not isinstance(name, str) or not _NAME.match(name) or name == "base":
            problems.append((f"{where}[{i}]", f"bad adapter name {name!r}: letters, digits, _ or -, "
                                              "starting with a letter, and not 'base'"))
        elif any(name == n for n, _ in out):
            problems.append((f"{where}[{i}]", f"adapter name {name!r} is used twice"))
        else:
            out.append((name, str(sha)))
    if problems:
        raise ValidationError.collect("invalid adapter list", problems)
    return out


def read_adapter_config(folder: Path, *, where: str) -> dict[str, Any]:
    """The `adapter_config.json` of a peft adapter folder."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        raise NotFoundError(f"{where}: {folder} is not a peft adapter folder (no adapter_config.json)")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValidationError(f"{where}: adapter_config.json is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: adapter_config.json does not hold an object")
    return data


def adapter_rank(cfg: dict[str, Any]) -> int:
    """The rank peft allocates for an adapter when combining (largest of `r` and its rank_pattern)."""
    return max([int(cfg.get("r") or 0), *(int(v) for v in (cfg.get("rank_pattern") or {}).values())])


def merge_problems(cfg: dict[str, Any]) -> list[str]:
    """Why peft's merge_and_unload would raise or be silently wrong for this adapter (empty: fine)."""
    out = []
    if cfg.get("peft_type") in _NOT_MERGEABLE:
        out.append(_NOT_MERGEABLE[cfg["peft_type"]])
    if cfg.get("lora_bias"):
        out.append("lora_bias=True: the adapter trains a bias the base layers lack, so peft cannot merge it")
    if cfg.get("alora_invocation_tokens"):
        out.append("aLoRA adapter: it acts only after its invocation tokens; a merge would apply it everywhere")
    if cfg.get("layer_replication"):
        out.append("layer_replication: the adapter stacks replicated base layers; merging it is wrong")
    init = cfg.get("init_lora_weights")
    if isinstance(init, str) and init.startswith(_REINIT_WRONG):
        out.append(f"init_lora_weights={init!r} changed the base weights during training and does not reload "
                   "correctly; save it with path_initial_model_for_weight_conversion and merge that")
    return out


def reload_problems(cfg: dict[str, Any]) -> list[str]:
    """Why an adapter cannot be loaded next to the unchanged base (evaluate compares both)."""
    init = cfg.get("init_lora_weights")
    if isinstance(init, str) and init.startswith(_BASE_MUTATING):
        return [f"init_lora_weights={init!r}: loading it rewrites the base weights (and some variants reload "
                "wrong), so base and adapter cannot be compared on one model; save it with "
                "path_initial_model_for_weight_conversion"]
    return []


def combine_problems(configs: list[dict[str, Any]], combination_type: str) -> list[tuple[str, str]]:
    """Why peft's add_weighted_adapter would raise or be silently wrong for these adapters."""
    problems = [(f"adapters[{i}]", m) for i, cfg in enumerate(configs) for m in _combine_one(cfg)]
    ranks = [adapter_rank(c) for c in configs]
    if combination_type in EQUAL_RANK_TYPES and len(configs) > 1 and len(set(ranks)) > 1:
        problems.append(("combination_type", f"{combination_type!r} adds the A and B factors entry by entry, so all "
                         f"adapters need the same rank, got ranks {ranks}; use 'cat' (exact) or an svd type"))
    if len({isinstance(c.get("target_modules"), str) for c in configs}) > 1:
        problems.append(("adapters", "target_modules mix a regex string and a list across adapters; peft "
                                     "cannot combine them"))
    return problems


def _combine_one(cfg: dict[str, Any]) -> list[str]:
    if cfg.get("peft_type") != "LORA":
        return [f"peft_type {cfg.get('peft_type')!r}: only LoRA adapters can be combined"]
    out = merge_problems(cfg)
    if cfg.get("use_dora"):
        out.append("DoRA: add_weighted_adapter does not combine the magnitude vectors, the result would be wrong")
    if cfg.get("target_parameters"):
        out.append("target_parameters: add_weighted_adapter does not support adapters on nn.Parameter")
    if cfg.get("modules_to_save") or cfg.get("trainable_token_indices"):
        out.append("modules_to_save/trainable_token_indices: these trained copies would not be combined")
    init = cfg.get("init_lora_weights")
    if isinstance(init, str) and init.startswith(_BASE_MUTATING) and not init.startswith(_REINIT_WRONG):
        out.append(f"init_lora_weights={init!r} trains against changed base weights; adapters with different "
                   "residual bases cannot be combined")
    return out
