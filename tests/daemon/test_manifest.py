"""Manifest validation and parameter/input validation: every problem at once, each naming its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from tunelog.daemon.plugin_host.manifest import check_manifest, declared_name, read_manifest
from tunelog.daemon.plugin_host.params import validate_inputs, validate_params
from tunelog.events.errors import ValidationError
from tunelog.plugins.api import OperationSpec

GOOD: dict[str, Any] = {
    "name": "toy",
    "version": "1.0",
    "description": "A toy plugin.",
    "operations": {
        "train": {
            "description": "Train.",
            "resource": "cpu",
            "inputs": {"data": {"type": "dataset", "description": "Training data."},
                       "base": {"type": "model", "description": "Base model.", "required": False}},
            "outputs": {"adapter": {"type": "adapter", "description": "The adapter."}},
            "params": {
                "lr": {"type": "number", "description": "Learning rate.", "default": 0.001, "minimum": 0, "maximum": 1},
                "epochs": {"type": "integer", "description": "Epochs.", "default": 1, "minimum": 1},
                "method": {"type": "string", "description": "Method.", "default": "lora", "choices": ["lora", "dora"]},
                "modules": {"type": "list", "items": "string", "description": "Target modules.", "default": ["q"]},
                "seed": {"type": "integer", "description": "Seed (required)."},
                "max_steps": {"type": "integer", "description": "Optional cap.", "default": None},
            },
        },
    },
}


def plugin_dir(tmp_path: Path, manifest: Any, *, backend: bool = True) -> Path:
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest) if not isinstance(manifest, str) else manifest)
    if backend:
        (folder / "backend.py").write_text("def train(ctx, params, inputs):\n    return {}\n")
    return folder


def wheres(problems: list[tuple[str, str]]) -> set[str]:
    return {w for w, _ in problems}


def test_a_good_manifest_decodes(tmp_path: Path) -> None:
    result = read_manifest(plugin_dir(tmp_path, GOOD))
    assert result.problems == []
    assert result.manifest is not None and result.name == "toy"
    assert result.manifest.operations["train"].params["lr"].default == 0.001
    assert msgspec.to_builtins(result.manifest)["operations"]["train"]["params"]["max_steps"] == {
        "type": "integer", "description": "Optional cap.", "default": None}


def test_every_problem_is_reported_at_once_naming_its_field(tmp_path: Path) -> None:
    bad = {
        "name": "Bad Name",
        "version": 1.0,
        "descripton": "typo",
        "ui_component": "ui_missing.py",
        "operations": {
            "train": {
                "description": "Train.",
                "resource": "tpu",
                "inputs": {"data": {"type": "tensor", "description": "x"}},
                "outputs": {"out": {"description": "no type"}},
                "params": {
                    "lr": {"type": "strin", "description": "x"},
                    "epochs": {"type": "integer", "description": "x", "default": "3"},
                    "warmup": {"type": "number", "description": "x", "default": 5, "minimum": 0, "maximum": 1},
                    "method": {"type": "string", "description": "x", "default": "qlora", "choices": ["lora", "dora"]},
                    "flag": {"type": "boolean", "description": "x", "extra": 1},
                    "tags": {"type": "list", "items": "integer", "description": "x", "default": [1, "a"]},
                },
            },
            "_private": {"description": "hidden"},
        },
    }
    result = check_manifest(bad, folder=plugin_dir(tmp_path, bad, backend=False))
    assert result.manifest is None and result.name is None
    got = wheres(result.problems)
    assert got >= {
        "name", "version", "descripton", "description", "ui_component", "backend.py",
        "operations.train.resource",
        "operations.train.inputs.data.type",
        "operations.train.outputs.out.type",
        "operations.train.params.lr.type",
        "operations.train.params.epochs.default",
        "operations.train.params.warmup.default",
        "operations.train.params.method.default",
        "operations.train.params.flag.extra",
        "operations.train.params.tags.default[1]",
        "operations._private",
    }
    messages = dict(result.problems)
    assert "quote it" in messages["version"]
    assert "above the maximum 1" in messages["operations.train.params.warmup.default"]
    assert "not one of the choices" in messages["operations.train.params.method.default"]
    assert "unknown port type 'tensor'" in messages["operations.train.inputs.data.type"]
    assert "required field is missing" == messages["description"]


def test_parameter_schema_rules(tmp_path: Path) -> None:
    bad = {**GOOD, "operations": {"train": {"description": "x", "params": {
        "a": {"type": "string", "description": "x", "minimum": 1},
        "b": {"type": "integer", "description": "x", "minimum": 5, "maximum": 1},
        "c": {"type": "integer", "description": "x", "items": "string"},
        "d": {"type": "integer", "description": "x", "choices": [1, "two"]},
        "e": {"type": "string", "description": "x", "choices": []},
    }}}}
    got = wheres(check_manifest(bad, folder=plugin_dir(tmp_path, bad)).problems)
    assert got == {"operations.train.params.a.minimum", "operations.train.params.b.minimum",
                   "operations.train.params.c.items", "operations.train.params.d.choices[1]",
                   "operations.train.params.e.choices"}


def test_unreadable_manifests(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, "name: toy\noperations: [unclosed\n")
    result = read_manifest(folder)
    assert result.manifest is None
    assert result.problems[0][0] == "manifest.yaml" and "line 3" in result.problems[0][1]
    assert check_manifest(["a list"], folder=folder).problems[0][0] == "manifest.yaml"
    assert wheres(check_manifest({**GOOD, "operations": {}}, folder=folder).problems) == {"operations"}


def test_declared_name_is_read_even_from_an_invalid_manifest() -> None:
    assert declared_name(b"name: toy\nversion: 1\n") == "toy"
    assert declared_name(b"name: Not A Slug\n") is None
    assert declared_name(b"name: [broken\n") is None
    assert declared_name(None) is None


# -- parameters and inputs ------------------------------------------------------------------

OP = msgspec.convert(GOOD["operations"]["train"], OperationSpec)


def test_params_defaults_applied_and_ints_coerced_to_float() -> None:
    got = validate_params(OP, {"seed": 7, "lr": 1})
    assert got == {"lr": 1.0, "epochs": 1, "method": "lora", "modules": ["q"], "seed": 7, "max_steps": None}
    assert isinstance(got["lr"], float)
    got["modules"].append("k")  # defaults are copied, never shared between calls
    assert validate_params(OP, {"seed": 1})["modules"] == ["q"]


def test_every_param_problem_in_one_error() -> None:
    with pytest.raises(ValidationError) as info:
        validate_params(OP, {"lr": 2.0, "epochs": "3", "method": "qlora", "modules": ["q", 5], "bogus": 1,
                             "max_steps": True})
    problems = {p["where"]: p["message"] for p in info.value.problems}
    assert set(problems) == {"params.lr", "params.epochs", "params.method", "params.modules[1]", "params.bogus",
                             "params.seed", "params.max_steps"}
    assert "above the maximum 1" in problems["params.lr"]
    assert problems["params.epochs"] == "expected integer, got string"
    assert "not one of the choices" in problems["params.method"]
    assert "unknown parameter" in problems["params.bogus"] and "lr" in problems["params.bogus"]
    assert "required integer parameter is missing" in problems["params.seed"]
    assert problems["params.max_steps"] == "expected integer, got boolean"
    assert info.value.message == "invalid params: 7 problems"


def test_param_edge_cases() -> None:
    assert validate_params(OP, {"seed": 1, "max_steps": None})["max_steps"] is None
    with pytest.raises(ValidationError) as info:
        validate_params(OP, {"seed": 1.5, "epochs": 0}, where="nodes.t.params")
    assert {p["where"] for p in info.value.problems} == {"nodes.t.params.seed", "nodes.t.params.epochs"}
    with pytest.raises(ValidationError):
        validate_params(OP, ["not", "a", "dict"])


def test_inputs_required_unknown_and_types() -> None:
    sha = "a" * 64
    assert validate_inputs(OP, {"data": sha}) == {"data": sha}
    assert validate_inputs(OP, {"data": sha, "base": "HuggingFaceTB/SmolLM2-135M"})["base"].endswith("135M")
    assert validate_inputs(OP, {"data": sha, "base": None}) == {"data": sha}
    with pytest.raises(ValidationError) as info:
        validate_inputs(OP, {"extra": 1, "base": 3})
    problems = {p["where"]: p["message"] for p in info.value.problems}
    assert set(problems) == {"inputs.extra", "inputs.data", "inputs.base"}
    assert "required dataset input is missing" in problems["inputs.data"]
    with pytest.raises(ValidationError) as info:
        validate_inputs(OP, {"data": "not-a-sha"})
    assert "sha256" in info.value.problems[0]["message"]



def test_a_presets_file_is_checked_with_its_manifest(tmp_path: Path) -> None:
    raw = copy.deepcopy(GOOD)
    raw["presets"] = "presets.yaml"
    raw["operations"]["train"]["params"]["preset"] = {"type": "string", "description": "Preset.", "default": ""}
    folder = plugin_dir(tmp_path, raw)
    assert read_manifest(folder).problems == [("presets", "names 'presets.yaml', which is not a file in the plugin folder")]
    presets = folder / "presets.yaml"
    presets.write_text(yaml.safe_dump({"presets": {"fast": {"description": "Fast.", "params": {"lr": 0.01}},
                                                   "bare": {"description": "No params."}}}))
    assert read_manifest(folder).problems == [("presets.bare", "needs a `params` mapping")]
    presets.write_text(yaml.safe_dump({"presets": {"fast": {"description": "Fast.", "params": {"lr": 0.01}},
                                                   "typo": {"description": "Typo.", "params": {"learning_rate": 1}}}}))
    result = read_manifest(folder)
    assert result.manifest is None
    assert result.problems == [("presets.typo.params.learning_rate", "operation 'train' has no parameter 'learning_rate'")]
    presets.write_text(yaml.safe_dump({"presets": {"fast": {"description": "Fast.", "params": {"lr": 0.01}}}}))
    result = read_manifest(folder)
    assert result.problems == [] and result.manifest is not None and result.manifest.presets == "presets.yaml"
    del raw["operations"]["train"]["params"]["preset"]
    (tmp_path / "other").mkdir()
    other = plugin_dir(tmp_path / "other", raw)
    (other / "presets.yaml").write_text(presets.read_text())
    assert read_manifest(other).problems == [
        ("presets", "no operation has a `preset` parameter to choose them with")]


def test_devices_param_must_name_an_integer_parameter(tmp_path: Path) -> None:
    raw = copy.deepcopy(GOOD)
    raw["operations"]["train"]["devices_param"] = "method"
    assert read_manifest(plugin_dir(tmp_path, raw)).problems == [
        ("operations.train.devices_param", "must name an integer parameter of the operation, got 'method'")]
    raw["operations"]["train"]["devices_param"] = "epochs"
    (tmp_path / "ok").mkdir()
    op = read_manifest(plugin_dir(tmp_path / "ok", raw)).manifest.operations["train"]  # type: ignore[union-attr]
    assert (op.devices({"epochs": 3}), op.devices({})) == (3, 1)
    assert OperationSpec(description="x").devices({"devices": 4}) == 1  # only a declared parameter counts


def test_uses_param_must_name_a_list_of_strings_parameter(tmp_path: Path) -> None:
    raw = copy.deepcopy(GOOD)
    raw["operations"]["train"]["uses_param"] = "epochs"
    assert read_manifest(plugin_dir(tmp_path, raw)).problems == [
        ("operations.train.uses_param", "must name a list-of-strings parameter of the operation, got 'epochs'")]
    raw["operations"]["train"]["params"]["rewards"] = {"type": "list", "items": "string", "description": "ops",
                                                       "default": []}
    raw["operations"]["train"]["uses_param"] = "rewards"
    (tmp_path / "ok").mkdir()
    op = read_manifest(plugin_dir(tmp_path / "ok", raw)).manifest.operations["train"]  # type: ignore[union-attr]
    assert op.uses_param == "rewards"


# -- each rule's edge and text ------------------------------------------------------------------

def with_op(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(GOOD)
    raw["operations"]["train"].update(changes)
    return raw


def fresh_dir(tmp_path: Path) -> Path:
    """A new plugin folder (with its backend.py) on each call."""
    parent = tmp_path / str(len(list(tmp_path.iterdir())))
    parent.mkdir()
    return plugin_dir(parent, {})


def problems(tmp_path: Path, raw: Any) -> list[tuple[str, str]]:
    return check_manifest(raw, folder=fresh_dir(tmp_path)).problems


def test_a_missing_manifest_says_why_it_cannot_be_read(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) == type(read_manifest(tmp_path))(
        None, [("manifest.yaml", "cannot be read: No such file or directory")])
    assert check_manifest(None, folder=tmp_path).problems == [
        ("manifest.yaml", "must be a mapping with name, version, description, operations")]


@pytest.mark.parametrize(("name", "ok"), [("a", True), ("a" * 64, True), ("a_1", True), ("a" * 65, False),
                                          ("1a", False), ("_a", False), ("aB", False), ("a-b", False), ("", False)])
def test_plugin_names(tmp_path: Path, name: str, ok: bool) -> None:
    result = check_manifest({**GOOD, "name": name}, folder=plugin_dir(tmp_path, GOOD))
    assert (result.manifest is not None, result.name) == (ok, name if ok else None)
    assert declared_name(yaml.safe_dump({"name": name}).encode()) == (name if ok else None)
    if not ok:
        assert result.problems == [("name", f"{name!r} is not a valid plugin name: use lowercase letters, digits and "
                                            "underscores, starting with a letter (at most 64 characters)")]


def test_a_well_formed_name_is_kept_even_when_other_fields_are_bad(tmp_path: Path) -> None:
    result = check_manifest({**GOOD, "version": None}, folder=plugin_dir(tmp_path, GOOD))
    assert (result.manifest, result.name) == (None, "toy")
    assert result.problems == [("version", "expected str, got null")]
    assert check_manifest({**GOOD, "name": 5}, folder=fresh_dir(tmp_path)).name is None
    assert declared_name(b"- name: toy\n") is None and declared_name(b"name: 5\n") is None


def test_top_level_field_texts(tmp_path: Path) -> None:
    raw = {"name": "toy", "version": 2, "descr": "x", 5: "y", "operations": GOOD["operations"]}
    assert problems(tmp_path, raw) == [
        ("version", 'expected str, got int (quote it in YAML: "2")'),
        ("descr", "unknown field (expected one of: name, version, description, operations, ui_component, presets, "
                  "checks)"),
        ("5", "unknown field (expected one of: name, version, description, operations, ui_component, presets, "
              "checks)"),
        ("description", "required field is missing"),
    ]
    assert problems(tmp_path, {**GOOD, "version": True}) == [("version", "expected str, got bool")]


@pytest.mark.parametrize("ops", [None, {}, ["train"], "train"])
def test_operations_must_be_a_non_empty_mapping(tmp_path: Path, ops: Any) -> None:
    assert problems(tmp_path, {**GOOD, "operations": ops}) == [
        ("operations", "must map each operation name to its description, ports and params")]


def test_operation_names_and_shapes(tmp_path: Path) -> None:
    raw = {**GOOD, "operations": {"class": {"description": "x"}, "_hidden": {"description": "x"},
                                  "two words": {"description": "x"}, "ok": "not a mapping", 3: {"description": "x"}}}
    named = "an operation name must be a Python identifier not starting with `_`: backend.py defines a function of " \
            "that name"
    assert problems(tmp_path, raw) == [
        ("operations.class", named), ("operations._hidden", named), ("operations.two words", named),
        ("operations.ok", "must be a mapping with description, inputs, outputs and params"),
        ("operations.3", named)]


def test_ports_and_params_must_be_mappings_of_named_specs(tmp_path: Path) -> None:
    raw = with_op(inputs=["data"], outputs={"for": {"type": "json", "description": "x"}, "ok": "json"},
                  params={"lr": {"type": "number", "description": "x", "minimum": "0"}, "b": None})
    assert problems(tmp_path, raw) == [
        ("operations.train.inputs", "must be a mapping of names to specs"),
        ("operations.train.outputs.for", "a port or parameter name must be a Python identifier"),
        ("operations.train.outputs.ok", "must be a mapping with at least `type` and `description`"),
        ("operations.train.params.lr.minimum", 'expected float | null, got str'),
        ("operations.train.params.b", "must be a mapping with at least `type` and `description`"),
    ]
    ok = with_op(inputs=None, outputs={}, params=None)  # empty or null parts are no ports, no params
    result = check_manifest(ok, folder=fresh_dir(tmp_path))
    op = result.manifest.operations["train"]  # type: ignore[union-attr]
    assert (op.inputs, op.outputs, op.params) == ({}, {}, {})


def test_enum_fields_list_their_choices(tmp_path: Path) -> None:
    raw = with_op(resource="tpu", params={"a": {"type": "list", "items": "strin", "description": "x"},
                                          "b": {"type": "float", "description": "x"}})
    assert problems(tmp_path, raw) == [
        ("operations.train.resource", "'tpu' is not one of: cpu, gpu, any"),
        ("operations.train.params.a.items", "'strin' is not one of: string, integer, number, boolean, list, object"),
        ("operations.train.params.b.type", "'float' is not one of: string, integer, number, boolean, list, object"),
    ]


@pytest.mark.parametrize(("knob", "kind"), [("devices_param", "an integer"), ("nodes_param", "an integer"),
                                            ("gpu_type_param", "a string")])
def test_resource_knobs_name_a_parameter_of_their_type(tmp_path: Path, knob: str, kind: str) -> None:
    wrong = "method" if kind == "an integer" else "epochs"
    assert problems(tmp_path, with_op(**{knob: wrong})) == [
        (f"operations.train.{knob}", f"must name {kind} parameter of the operation, got {wrong!r}")]
    right = "epochs" if kind == "an integer" else "method"
    assert problems(tmp_path, with_op(**{knob: right})) == []
    assert problems(tmp_path, with_op(**{knob: "nope"}))[0][1].endswith("got 'nope'")


def test_uses_param_names_a_list_of_strings(tmp_path: Path) -> None:
    params = {**GOOD["operations"]["train"]["params"],
              "ints": {"type": "list", "items": "integer", "description": "x", "default": []},
              "names": {"type": "list", "items": "string", "description": "x", "default": []}}
    for uses, ok in [("ints", False), ("modules", True), ("names", True), ("nope", False)]:
        got = problems(tmp_path, with_op(params=params, uses_param=uses))
        assert got == ([] if ok else [("operations.train.uses_param",
                                       f"must name a list-of-strings parameter of the operation, got {uses!r}")]), uses
    assert problems(tmp_path, with_op(params=params, uses_param=3)) == [
        ("operations.train.uses_param", 'expected str | null, got int (quote it in YAML: "3")'),
        ("operations.train.uses_param", "must name a list-of-strings parameter of the operation, got 3")]


def test_param_defaults_are_checked_only_when_the_spec_itself_is_sound(tmp_path: Path) -> None:
    raw = with_op(params={
        "a": {"type": "integer", "description": "x", "choices": [1, "2"], "default": 3},
        "b": {"type": "integer", "description": "x", "choices": [1, 2], "default": 3},
        "c": {"type": "number", "description": "x", "minimum": 0.5, "maximum": 0.5, "default": 0.5},
        "d": {"type": "string", "description": "x", "maximum": 1},
    })
    assert problems(tmp_path, raw) == [
        ("operations.train.params.a.choices[1]", "expected integer, got string"),
        ("operations.train.params.b.default", "3 is not one of the choices: 1, 2"),
        ("operations.train.params.d.maximum", "only integer and number parameters have bounds"),
    ]


def test_files_a_manifest_names_must_be_files_inside_its_folder(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, GOOD)
    (folder / "ui").mkdir()
    (tmp_path / "outside.py").write_text("")
    for name, problem in [("../outside.py", "'../outside.py' must be a file inside the plugin folder"),
                          (str(tmp_path / "outside.py"), f"{str(tmp_path / 'outside.py')!r} must be a file inside the "
                                                         "plugin folder"),
                          ("ui", "names 'ui', which is not a file in the plugin folder")]:
        for field in ("ui_component", "checks", "presets"):
            assert check_manifest({**GOOD, field: name}, folder=folder).problems == [(field, problem)]
    (folder / "ui" / "view.py").write_text("")
    assert check_manifest({**GOOD, "ui_component": "ui/view.py"}, folder=folder).problems == []
    assert check_manifest({**GOOD, "ui_component": None}, folder=folder).problems == []
    (folder / "backend.py").unlink()
    (folder / "backend.py").mkdir()
    assert check_manifest(GOOD, folder=folder).problems == [
        ("backend.py", "is missing: a plugin implements each operation as a function in backend.py")]


def test_a_yaml_error_without_a_place_is_still_explained(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, "name: toy\n")
    (folder / "manifest.yaml").write_bytes(b"name: \xff\xfe\n")  # not UTF-8: a reader error, no problem mark
    result = read_manifest(folder)
    assert result.manifest is None and result.problems[0][0] == "manifest.yaml"
    assert result.problems[0][1].startswith("is not valid YAML: ")
    assert result.problems[0][1].startswith("is not valid YAML: unacceptable character #x00ff")


def test_a_yaml_error_names_its_line_and_column(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, "name: toy\n  bad: indent\n")
    assert read_manifest(folder).problems == [
        ("manifest.yaml", "is not valid YAML: line 2, column 6: mapping values are not allowed here")]


def test_a_good_operation_keeps_its_ports(tmp_path: Path) -> None:
    op = read_manifest(plugin_dir(tmp_path, GOOD)).manifest.operations["train"]  # type: ignore[union-attr]
    assert (sorted(op.inputs), list(op.outputs), op.inputs["base"].required) == (["base", "data"], ["adapter"], False)


def test_knobs_naming_parameters_of_an_operation_whose_params_are_not_a_mapping(tmp_path: Path) -> None:
    got = problems(tmp_path, with_op(params=["epochs"], devices_param="epochs", uses_param="epochs"))
    assert got == [("operations.train.params", "must be a mapping of names to specs"),
                   ("operations.train.devices_param", "must name an integer parameter of the operation, got 'epochs'"),
                   ("operations.train.uses_param", "must name a list-of-strings parameter of the operation, got 'epochs'")]
    assert problems(tmp_path, with_op(uses_param=["modules"])) == [
        ("operations.train.uses_param", "expected str | null, got array"),
        ("operations.train.uses_param", "must name a list-of-strings parameter of the operation, got ['modules']")]


def test_parameter_spec_texts(tmp_path: Path) -> None:
    raw = with_op(params={"c": {"type": "integer", "description": "x", "items": "string"},
                          "e": {"type": "string", "description": "x", "choices": []}},
                  outputs={"o": {"type": "tensor", "description": "x"}})
    assert problems(tmp_path, raw) == [
        ("operations.train.outputs.o.type", "unknown port type 'tensor' (one of: dataset, model, adapter, checkpoint, "
                                            "report, text, path, json, any)"),
        ("operations.train.params.c.items", "only a list parameter declares `items`"),
        ("operations.train.params.e.choices", "must list at least one value"),
    ]
