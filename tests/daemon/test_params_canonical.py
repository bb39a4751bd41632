"""Parameters have one canonical form: validated values and defaults alike are in their declared
type, so a recorded (resolved) graph validates to the same bytes when it is replayed, and the
trainer's typed parameter struct agrees with its manifest field by field."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest

from tests.support.adapters import manifest
from tunelog.daemon.plugin_host.params import validate_params

BUILTINS = ("lora_trainer", "datasets", "evaluate", "adapter_merge")


def _required(spec: Any) -> dict[str, Any]:
    """The smallest valid parameters: a value for each parameter without a default."""
    samples = {"string": "x", "integer": 1, "number": 1, "boolean": True, "list": [], "object": {}}
    return {n: (p.choices[0] if p.choices else samples[p.type]) for n, p in spec.params.items()
            if p.default is msgspec.UNSET}


@pytest.mark.parametrize("plugin", BUILTINS)
def test_validating_resolved_parameters_again_changes_no_byte(plugin: str) -> None:
    for name, op in manifest(plugin).operations.items():
        once = validate_params(op, _required(op))
        twice = validate_params(op, once)
        assert msgspec.json.encode(twice, order="sorted") == msgspec.json.encode(once, order="sorted"), name


def test_a_number_is_a_float_whether_given_as_16_16_0_or_left_to_its_default() -> None:
    op = manifest("lora_trainer").operations["train"]
    assert op.params["alpha"].default == 16 and isinstance(op.params["alpha"].default, int)
    forms = [validate_params(op, {}), validate_params(op, {"alpha": 16}), validate_params(op, {"alpha": 16.0})]
    assert {msgspec.json.encode(f, order="sorted") for f in forms} == {msgspec.json.encode(forms[0], order="sorted")}
    assert all(type(f["alpha"]) is float and type(f["r"]) is int for f in forms)


def test_the_trainer_struct_and_the_settings_hash_follow_the_manifest() -> None:
    from tunelog.plugins.lora_trainer.params import TrainParams, settings_hash

    op = manifest("lora_trainer").operations["train"]
    hints = typing.get_type_hints(TrainParams)
    assert list(hints) == list(op.params)
    python = {"string": str, "integer": int, "number": float, "boolean": bool}
    for name, spec in op.params.items():
        hint = hints[name]
        item = python[spec.items or "string"]
        if spec.type == "list":
            assert hint == list[item], name
        elif spec.choices is not None and spec.type == "string":
            assert typing.get_origin(hint) is typing.Literal and list(typing.get_args(hint)) == spec.choices, name
        else:
            assert hint is python[spec.type], name
    resolved = validate_params(op, {})
    assert TrainParams.from_params(resolved).to_dict() == resolved
    raw = {n: s.default for n, s in op.params.items()}  # alpha an int here, a float above
    assert settings_hash(TrainParams.from_params(raw)) == settings_hash(TrainParams.from_params(resolved))
