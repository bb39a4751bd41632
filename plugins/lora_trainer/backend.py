"""Operations of the `lora_trainer` plugin. Importing this module stays light (no torch): the
daemon imports it to validate the plugin and calls `check_supported` at submit time."""

from __future__ import annotations

from typing import Any

from tunelog.plugins.api import JobContext
from tunelog.plugins.common.presets import load_presets, resolve_params

from .launch import launch_command
from .support import check_supported, manifest_defaults

__all__ = ["check_supported", "launch_command", "load_presets", "manifest_defaults", "resolve", "train"]


def train(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune `inputs["model"]` on `inputs["dataset"]`; see manifest.yaml for every parameter."""
    from .recipe import train as run_recipe

    return run_recipe(ctx, resolve(params), inputs)


def resolve(params: dict[str, Any]) -> dict[str, Any]:
    """Apply `params["preset"]` when the caller has not resolved it yet.

    The daemon should call `resolve_params(preset, user_params, manifest_defaults())` at submit
    time, so a value set explicitly equal to the default still wins over the preset. Here, with
    defaults already applied, only values that differ from the defaults count as the user's.
    """
    defaults = manifest_defaults()
    if not params.get("preset"):
        return {**defaults, **params}
    overrides = {k: v for k, v in params.items() if k != "preset" and v != defaults.get(k)}
    return resolve_params(params["preset"], overrides, defaults)
