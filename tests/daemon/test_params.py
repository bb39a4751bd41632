"""Checking values against declared parameters and ports (daemon/plugin_host/params.py): each rule's
edge, each refusal's place and exact text, and the canonical form a checked value is kept in."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tunelog.daemon.plugin_host.params import (
    check_value,
    coerce,
    json_type,
    port_problem,
    type_problem,
    unknown_parameter,
    validate_inputs,
    validate_params,
)
from tunelog.events.errors import ValidationError
from tunelog.plugins.api import OperationSpec, ParamSpec

SHA = "0123456789abcdef" * 4


def spec(kind: str, **fields: Any) -> ParamSpec:
    return ParamSpec(type=kind, description=f"a {kind}", **fields)  # type: ignore[arg-type]


def op(params: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None) -> OperationSpec:
    return msgspec.convert({"description": "op", "params": params or {}, "inputs": inputs or {}}, OperationSpec)


def problems_of(info: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, str]]:
    return [(p["where"], p["message"]) for p in info.value.problems]


@pytest.mark.parametrize(("kind", "value"), [
    ("string", "x"), ("integer", 3), ("number", 3), ("number", 2.5), ("boolean", True), ("boolean", False),
    ("list", [1]), ("object", {"a": 1}),
])
def test_a_value_of_its_type_has_no_type_problem(kind: str, value: Any) -> None:
    assert type_problem(kind, value) is None


@pytest.mark.parametrize(("kind", "value", "problem"), [
    ("integer", True, "expected integer, got boolean"),  # bool is an int in Python, not here
    ("number", False, "expected number, got boolean"),
    ("string", True, "expected string, got boolean"),
    ("integer", 2.5, "expected integer, got number"),
    ("string", 3, "expected string, got integer"),
    ("boolean", 1, "expected boolean, got integer"),
    ("list", {"a": 1}, "expected list, got object"),
    ("object", [1], "expected object, got list"),
    ("number", "1", "expected number, got string"),
    ("integer", None, "expected integer, got null"),
])
def test_a_value_of_another_type_is_refused_naming_both(kind: str, value: Any, problem: str) -> None:
    assert type_problem(kind, value) == problem


@pytest.mark.parametrize(("value", "name"), [
    (True, "boolean"), (1, "integer"), (1.5, "number"), ("s", "string"), ([], "list"), ({}, "object"),
    (None, "null"), ((1, 2), "tuple"), (b"x", "bytes"),
])
def test_json_type_names(value: Any, name: str) -> None:
    assert json_type(value) == name


def test_check_value_reports_type_first_then_every_other_rule() -> None:
    assert check_value(spec("integer", minimum=1), "2", "p") == [("p", "expected integer, got string")]
    assert check_value(spec("integer"), None, "p") == [("p", "expected integer, got null")]
    assert check_value(spec("integer", default=None), None, "p") == []  # `default: null` makes it optional
    assert check_value(spec("integer", default=None), 1.5, "p") == [("p", "expected integer, got number")]
    items = spec("list", items="integer", choices=[[1, "a"]])
    assert check_value(items, [1, "a", True], "p") == [("p[1]", "expected integer, got string"),
                                                      ("p[2]", "expected integer, got boolean"),
                                                      ("p", "[1, 'a', True] is not one of the choices: [1, 'a']")]
    assert check_value(spec("list"), [1, "a"], "p") == []  # no `items`: anything goes in the list
    assert check_value(spec("string", choices=["a", "b"]), "c", "p") == [("p", "'c' is not one of the choices: 'a', 'b'")]
    assert check_value(spec("string", choices=["a", "b"]), "b", "p") == []


def test_bounds_are_inclusive_and_named_in_their_shortest_form() -> None:
    n = spec("number", minimum=0.5, maximum=2.0)
    assert check_value(n, 0.5, "p") == [] and check_value(n, 2.0, "p") == []
    assert check_value(n, 0.25, "p") == [("p", "0.25 is below the minimum 0.5")]
    assert check_value(n, 3, "p") == [("p", "3 is above the maximum 2")]
    i = spec("integer", minimum=1, maximum=3)
    assert [check_value(i, v, "p") for v in (1, 3)] == [[], []]
    assert check_value(i, 0, "p") == [("p", "0 is below the minimum 1")]
    assert check_value(i, 4, "p") == [("p", "4 is above the maximum 3")]
    assert check_value(spec("integer", minimum=0), -1, "p") == [("p", "-1 is below the minimum 0")]
    assert check_value(spec("integer", maximum=0), 1, "p") == [("p", "1 is above the maximum 0")]
    both = spec("integer", minimum=5, maximum=1)  # refused in a manifest; both rules still apply here
    assert check_value(both, 3, "p") == [("p", "3 is below the minimum 5"), ("p", "3 is above the maximum 1")]


def test_coerce_keeps_one_canonical_form() -> None:
    assert type(coerce(spec("number"), 16)) is float and coerce(spec("number"), 16) == 16.0
    assert coerce(spec("number"), True) is True  # a boolean is never turned into a number
    assert coerce(spec("integer"), 16) == 16 and type(coerce(spec("integer"), 16)) is int
    got = coerce(spec("list", items="number"), [1, 2.5, True])
    assert got == [1.0, 2.5, True] and [type(v) for v in got] == [float, float, bool]
    assert [type(v) for v in coerce(spec("list", items="integer"), [1, 2])] == [int, int]
    assert [type(v) for v in coerce(spec("list"), [1, 2])] == [int, int]


def test_validate_params_applies_copied_defaults_and_counts_problems() -> None:
    o = op({"tags": {"type": "list", "description": "tags", "default": [1]},
            "nested": {"type": "object", "description": "nested", "default": {"a": [1]}},
            "lr": {"type": "number", "description": "rate", "default": 1},
            "seed": {"type": "integer", "description": "the seed"}})
    got = validate_params(o, {"seed": 2})
    assert got == {"tags": [1], "nested": {"a": [1]}, "lr": 1.0, "seed": 2} and type(got["lr"]) is float
    got["tags"].append(2)
    got["nested"]["a"].append(2)  # a job changing its parameters never changes the declared defaults
    assert (o.params["tags"].default, o.params["nested"].default) == ([1], {"a": [1]})
    with pytest.raises(ValidationError) as info:
        validate_params(o, {})
    assert info.value.message == "invalid params: 1 problem"
    assert problems_of(info) == [("params.seed", "required integer parameter is missing (the seed)")]
    with pytest.raises(ValidationError) as info:
        validate_params(o, {"lr": "x", "lrr": 1}, where="nodes.a.params")
    assert info.value.message == "invalid nodes.a.params: 3 problems"
    assert problems_of(info) == [("nodes.a.params.lrr", "unknown parameter; did you mean 'lr'?"),
                                 ("nodes.a.params.lr", "expected number, got string"),
                                 ("nodes.a.params.seed", "required integer parameter is missing (the seed)")]
    with pytest.raises(ValidationError) as info:
        validate_params(o, ["seed"])
    assert info.value.message == "invalid params"
    assert problems_of(info) == [("params", "expected an object, got list")]
    with pytest.raises(ValidationError) as info:
        validate_params(o, None, where="nodes.a.params")
    assert problems_of(info) == [("nodes.a.params", "expected an object, got null")]


def test_validated_params_validate_to_themselves() -> None:
    o = op({"lr": {"type": "number", "description": "rate", "default": 1, "minimum": 0}})
    once = validate_params(o, {})
    assert validate_params(o, once) == once and type(validate_params(o, once)["lr"]) is float


def test_unknown_parameters_suggest_the_nearest_name() -> None:
    assert unknown_parameter("lrr", ["lr", "epochs"]) == "unknown parameter; did you mean 'lr'?"
    assert unknown_parameter("epoch", ["lr", "epochs", "epoch_count"]) == "unknown parameter; did you mean 'epochs'?"
    assert unknown_parameter("zzz", ["lr", "epochs"]) == "unknown parameter (known: lr, epochs)"
    assert unknown_parameter("abcd", ["abxy"]) == "unknown parameter (known: abxy)"  # ratio 0.5: not near
    assert unknown_parameter("abcde", ["abcxy"]) == "unknown parameter; did you mean 'abcxy'?"  # ratio 0.6
    assert unknown_parameter("x", []) == "unknown parameter (known: none)"


def test_validate_inputs_checks_every_port_at_once() -> None:
    o = op(inputs={"data": {"type": "dataset", "description": "rows"},
                   "base": {"type": "model", "description": "the base", "required": False},
                   "note": {"type": "text", "description": "a note", "required": False},
                   "blob": {"type": "any", "description": "anything", "required": False}})
    assert validate_inputs(o, {"data": SHA, "base": None, "blob": 0}) == {"data": SHA, "blob": 0}
    with pytest.raises(ValidationError) as info:
        validate_inputs(o, {"extra": 1, "base": "", "note": 3})
    assert info.value.message == "invalid inputs: 4 problems"
    assert problems_of(info) == [
        ("inputs.extra", "unknown input port (known: data, base, note, blob)"),
        ("inputs.data", "required dataset input is missing (rows)"),
        ("inputs.base", "a model input is a non-empty string, got string"),
        ("inputs.note", "a text input is a non-empty string, got integer"),
    ]
    with pytest.raises(ValidationError) as info:
        validate_inputs(op(), {"x": SHA}, where="nodes.a.inputs")
    assert info.value.message == "invalid nodes.a.inputs: 1 problem"
    assert problems_of(info) == [("nodes.a.inputs.x", "unknown input port (known: none)")]
    with pytest.raises(ValidationError) as info:
        validate_inputs(o, "data")
    assert info.value.message == "invalid inputs"
    assert problems_of(info) == [("inputs", "expected an object, got string")]
    with pytest.raises(ValidationError) as info:
        validate_inputs(o, [], where="nodes.a.inputs")
    assert problems_of(info) == [("nodes.a.inputs", "expected an object, got list")]


@pytest.mark.parametrize("kind", ["dataset", "adapter", "checkpoint"])
def test_an_artifact_port_takes_only_a_sha256(kind: str) -> None:
    assert port_problem(kind, SHA) is None
    for bad in (SHA.upper(), SHA[:-1], SHA + "0", SHA + "\n", "x" * 64, 5, None):
        assert port_problem(kind, bad) == (f"a {kind} input is the sha256 of a stored artifact (64 hex digits), "
                                           f"got {bad!r}"), bad


@pytest.mark.parametrize("kind", ["model", "text", "path"])
def test_a_string_port_takes_a_non_empty_string(kind: str) -> None:
    assert port_problem(kind, "x") is None
    assert port_problem(kind, "") == f"a {kind} input is a non-empty string, got string"
    assert port_problem(kind, 1) == f"a {kind} input is a non-empty string, got integer"


@pytest.mark.parametrize("kind", ["json", "report", "any"])
def test_other_ports_take_anything(kind: str) -> None:
    assert [port_problem(kind, v) for v in ("", 0, [], {"a": 1})] == [None] * 4
