"""Checking values against an operation's declared parameters and ports.

Shared by job submission (`validate_params`, `validate_inputs`) and by manifest validation,
which checks each parameter's default and choices with the same rules. Every problem is
collected and reported at once, each naming its place (`params.lr`, `inputs.dataset`).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from tunelog.events.errors import ValidationError
from tunelog.plugins.api import OperationSpec, ParamSpec

Problems = list[tuple[str, str]]

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "list": (list,), "object": (dict,),
}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ARTIFACT_PORTS = frozenset({"dataset", "adapter", "checkpoint"})
"""Ports whose value is always the sha256 of a stored artifact."""
_STRING_PORTS = frozenset({"model", "text", "path"})
"""Ports whose value is a string (a `model` is an artifact sha256, a hub id or a local path)."""


def type_problem(kind: str, value: Any) -> str | None:
    """Why `value` is not of parameter type `kind`, or None when it is."""
    if isinstance(value, bool) and kind != "boolean":
        return f"expected {kind}, got boolean"
    if not isinstance(value, _PY_TYPES[kind]):
        return f"expected {kind}, got {json_type(value)}"
    return None


def json_type(value: Any) -> str:
    """The JSON-ish name of a value's type, for messages."""
    for name in ("boolean", "integer", "number", "string", "list", "object"):
        if isinstance(value, _PY_TYPES[name]):
            return name
    return "null" if value is None else type(value).__name__


def check_value(spec: ParamSpec, value: Any, where: str) -> Problems:
    """Every way `value` breaks `spec` (type, list items, choices, minimum, maximum)."""
    if value is None and spec.default is None:
        return []  # a parameter declared with `default: null` is optional and may stay unset
    problem = type_problem(spec.type, value)
    if problem:
        return [(where, problem)]
    out: Problems = []
    if spec.type == "list" and spec.items:
        out += [(f"{where}[{i}]", p) for i, item in enumerate(value) if (p := type_problem(spec.items, item))]
    if spec.choices is not None and value not in spec.choices:
        out.append((where, f"{value!r} is not one of the choices: {', '.join(map(repr, spec.choices))}"))
    if spec.type in ("integer", "number"):
        if spec.minimum is not None and value < spec.minimum:
            out.append((where, f"{value!r} is below the minimum {_num(spec.minimum)}"))
        if spec.maximum is not None and value > spec.maximum:
            out.append((where, f"{value!r} is above the maximum {_num(spec.maximum)}"))
    return out


def coerce(spec: ParamSpec, value: Any) -> Any:
    """A checked value in its one canonical form: integers become floats where a number is declared.

    Given values and defaults alike, so a parameter hashes the same whether it was written as 16,
    16.0 or left to its default, at submit and again when a recorded graph is replayed."""
    if spec.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if spec.type == "list" and spec.items == "number":
        return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


def validate_params(op: OperationSpec, params: Any, *, where: str = "params") -> dict[str, Any]:
    """Check `params` against the operation's schema; return them with defaults applied, every
    value in its canonical form (`coerce`): validating the result again returns it unchanged.

    Unknown keys, wrong types, values out of range or outside the choices and missing required
    parameters are all reported in one ValidationError.
    """
    if not isinstance(params, Mapping):
        raise ValidationError.collect(f"invalid {where}", [(where, f"expected an object, got {json_type(params)}")])
    problems: Problems = []
    problems += [(f"{where}.{k}", unknown_parameter(str(k), list(op.params))) for k in params if k not in op.params]
    out: dict[str, Any] = {}
    for name, spec in op.params.items():
        at = f"{where}.{name}"
        if name in params:
            found = check_value(spec, params[name], at)
            problems += found
            if not found:
                out[name] = coerce(spec, params[name])
        elif spec.default is msgspec.UNSET:
            problems.append((at, f"required {spec.type} parameter is missing ({spec.description})"))
        else:
            out[name] = coerce(spec, copy.deepcopy(spec.default))
    if problems:
        raise ValidationError.collect(f"invalid {where}: {_count(problems)}", problems)
    return out


def unknown_parameter(name: str, known: list[str]) -> str:
    """The refusal of an unknown parameter, suggesting the nearest known name when one is close."""
    near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if near:
        return f"unknown parameter; did you mean {near[0]!r}?"
    return f"unknown parameter (known: {', '.join(known) or 'none'})"


def validate_inputs(op: OperationSpec, inputs: Any, *, where: str = "inputs") -> dict[str, Any]:
    """Check `inputs` against the operation's input ports: required ones present, no unknown ones.

    Returns the inputs given (an optional port given as null is dropped).
    """
    if not isinstance(inputs, Mapping):
        raise ValidationError.collect(f"invalid {where}", [(where, f"expected an object, got {json_type(inputs)}")])
    known = ", ".join(op.inputs) or "none"
    problems: Problems = [(f"{where}.{k}", f"unknown input port (known: {known})") for k in inputs if k not in op.inputs]
    out: dict[str, Any] = {}
    for name, port in op.inputs.items():
        at, value = f"{where}.{name}", inputs.get(name)
        if value is None:
            if port.required:
                problems.append((at, f"required {port.type} input is missing ({port.description})"))
            continue
        problem = port_problem(port.type, value)
        if problem:
            problems.append((at, problem))
        else:
            out[name] = value
    if problems:
        raise ValidationError.collect(f"invalid {where}: {_count(problems)}", problems)
    return out


def port_problem(kind: str, value: Any) -> str | None:
    """Why `value` cannot be given to an input port of type `kind`, or None when it can."""
    if kind in _ARTIFACT_PORTS and not (isinstance(value, str) and _SHA256.fullmatch(value)):
        return f"a {kind} input is the sha256 of a stored artifact (64 hex digits), got {value!r}"
    if kind in _STRING_PORTS and not (isinstance(value, str) and value):
        return f"a {kind} input is a non-empty string, got {json_type(value)}"
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _count(problems: Problems) -> str:
    return "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
