"""Operations of the `lora_trainer` plugin. Importing this module stays light (no torch): the
daemon imports it to validate the plugin and calls `check_supported` at submit time."""

from __future__ import annotations

from typing import Any

from tunelog.plugins.api import JobContext

from .support import check_supported, manifest_defaults

__all__ = ["check_supported", "manifest_defaults", "resolve", "train"]


def train(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune `inputs["model"]` on `inputs["dataset"]`; see manifest.yaml for every parameter."""
    from .recipe import train as run_recipe

    return run_recipe(ctx, resolve(params), inputs)


def resolve(params: dict[str, Any]) -> dict[str, Any]:
    """`params` over the manifest defaults (for callers that give only some, e.g. tests, benchmarks).

    Presets are NOT applied here: the daemon resolves them when the job is submitted
    (`apply_preset(preset, given, defaults)`, which knows what the user set explicitly), and the
    job receives and records the result. Applying them again here could undo a user's choice.
    """
    return {**manifest_defaults(), **params}
