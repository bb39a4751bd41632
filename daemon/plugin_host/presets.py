"""Named training presets (`plugins/presets.yaml`) and how they combine with defaults and the
parameters a user sets. Light: the daemon calls it at submit time (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelog.events.errors import ValidationError

PRESETS_FILE = Path(__file__).resolve().parent.parent / "presets.yaml"


def load_presets(path: Path = PRESETS_FILE) -> dict[str, dict[str, Any]]:
    """Preset name -> {"description": str, "params": dict}."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    presets = data.get("presets") or {}
    for name, preset in presets.items():
        if not isinstance(preset, dict) or not isinstance(preset.get("params"), dict):
            raise ValidationError(f"preset {name!r} in {path} has no params mapping")
    return dict(presets)


def resolve_params(preset: str | None, overrides: dict[str, Any], defaults: dict[str, Any], *,
                   presets: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every parameter: `defaults`, replaced by the preset's values, replaced by `overrides`.

    The result names the preset it used, so a run records exactly what it ran with.
    """
    presets = load_presets() if presets is None else presets
    chosen = preset or overrides.get("preset") or ""
    problems: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    if chosen:
        if chosen not in presets:
            raise ValidationError(f"unknown preset {chosen!r}", hint=f"presets: {', '.join(sorted(presets))}")
        values = dict(presets[chosen]["params"])
    for source, given in (("preset " + chosen, values), ("parameters", overrides)):
        problems += [(f"{source}: {key}", "unknown parameter") for key in given if key not in defaults]
    if problems:
        raise ValidationError.collect("parameters name settings the operation does not have", problems)
    resolved = {**defaults, **values, **overrides}
    if "preset" in defaults:
        resolved["preset"] = chosen
    return resolved
