"""Named parameter presets: plugin data. A manifest names a YAML file in its folder
(`presets: presets.yaml`, shaped `presets: {name: {description: str, params: {...}}}`) for its
operations that have a `preset` parameter. The plugin host validates the file with the manifest
and reads it from the plugin's immutable code snapshot; a run resolves parameters as defaults,
then the preset's values, then what the user set, and records the result."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from tunelog.events.errors import ValidationError
from tunelog.plugins.api import Manifest

Presets = dict[str, dict[str, Any]]


def load_presets(path: Path) -> Presets:
    """Preset name -> {"description": str, "params": dict}; a malformed file raises ValidationError."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(f"presets file {path} cannot be read: {exc}") from exc
    presets = data.get("presets") if isinstance(data, dict) else None
    if not isinstance(presets, dict):
        raise ValidationError(f"presets file {path} has no `presets:` mapping")
    problems = [(f"presets.{name}", "needs a `params` mapping") for name, preset in presets.items()
                if not isinstance(preset, dict) or not isinstance(preset.get("params"), dict)]
    if problems:
        raise ValidationError.collect(f"presets file {path} is malformed", problems)
    return dict(presets)


@functools.lru_cache(maxsize=64)
def snapshot_presets(path: Path) -> Presets:
    """Presets of an immutable code snapshot (its path names its code hash, so caching is safe)."""
    return load_presets(path)


def check_presets(folder: Path, manifest: Manifest) -> list[tuple[str, str]]:
    """Problems of the presets file a manifest names: unreadable, or naming unknown parameters."""
    if not manifest.presets:
        return []
    try:
        presets = load_presets(folder / manifest.presets)
    except ValidationError as exc:
        return [(p["where"], p["message"]) for p in exc.problems] or [("presets", exc.message)]
    takers = {name: op for name, op in manifest.operations.items() if "preset" in op.params}
    if not takers:
        return [("presets", "no operation has a `preset` parameter to choose them with")]
    return [(f"presets.{name}.params.{key}", f"operation {op_name!r} has no parameter {key!r}")
            for name, preset in presets.items() for key in preset["params"]
            for op_name, op in takers.items() if key not in op.params]


def apply_preset(preset: str, overrides: dict[str, Any], defaults: dict[str, Any], *,
                 presets: Presets) -> dict[str, Any]:
    """Every parameter: `defaults`, replaced by the preset's values, replaced by `overrides`.

    The result names the preset it used, so a run records exactly what it ran with.
    """
    values: dict[str, Any] = {}
    if preset:
        if preset not in presets:
            raise ValidationError(f"unknown preset {preset!r}", hint=f"presets: {', '.join(sorted(presets)) or 'none'}")
        values = dict(presets[preset]["params"])
    problems = [(f"{source}: {key}", "unknown parameter")
                for source, given in (("preset " + preset, values), ("parameters", overrides))
                for key in given if key not in defaults]
    if problems:
        raise ValidationError.collect("parameters name settings the operation does not have", problems)
    resolved = {**defaults, **values, **overrides}
    if "preset" in defaults:
        resolved["preset"] = preset
    return resolved
