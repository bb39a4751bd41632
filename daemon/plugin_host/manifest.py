"""Reading and validating a plugin's `manifest.yaml`, reporting every problem at once.

msgspec stops at the first error, so the raw YAML is walked field by field (operation by
operation, port by port, parameter by parameter) and each piece is converted on its own.
Each problem names its field, e.g. `operations.train.params.lr.type`.
"""

from __future__ import annotations

import keyword
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from tunelog.daemon.plugin_host.params import Problems, check_value, type_problem
from tunelog.daemon.plugin_host.presets import check_presets
from tunelog.plugins.api import PORT_TYPES, Manifest, OperationSpec, ParamSpec, PortSpec

MANIFEST = "manifest.yaml"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""A plugin name: lowercase letters, digits and underscores, starting with a letter."""
_PARTS = (("inputs", PortSpec), ("outputs", PortSpec), ("params", ParamSpec))


@dataclass(frozen=True)
class ManifestResult:
    """The outcome of reading one manifest: the Manifest when valid, else every problem."""

    manifest: Manifest | None
    problems: Problems = field(default_factory=list)
    name: str | None = None
    """The declared name when it is readable and well formed, even if other fields are bad."""


def read_manifest(folder: Path) -> ManifestResult:
    """Read and validate `folder/manifest.yaml`, including the files it names."""
    try:
        raw = yaml.safe_load((folder / MANIFEST).read_bytes())
    except OSError as exc:
        return ManifestResult(None, [(MANIFEST, f"cannot be read: {exc.strerror or exc}")])
    except yaml.YAMLError as exc:
        return ManifestResult(None, [(MANIFEST, f"is not valid YAML: {_yaml_message(exc)}")])
    return check_manifest(raw, folder=folder)


def declared_name(text: bytes | None) -> str | None:
    """The well-formed `name` of a manifest's text, or None (cheap: used to spot duplicates)."""
    try:
        raw = yaml.safe_load(text) if text is not None else None
    except yaml.YAMLError:
        return None
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and NAME_RE.match(name) else None


def check_manifest(raw: Any, *, folder: Path) -> ManifestResult:
    """Validate a parsed manifest against plugins/api.Manifest plus the semantic rules."""
    if not isinstance(raw, dict):
        return ManifestResult(None, [(MANIFEST, "must be a mapping with name, version, description, operations")])
    problems: Problems = []
    top = convert_fields(raw, Manifest, "", problems, skip=("operations",))
    name = raw.get("name")
    if isinstance(name, str) and not NAME_RE.match(name):
        problems.append(("name", f"{name!r} is not a valid plugin name: use lowercase letters, digits and "
                                 "underscores, starting with a letter (at most 64 characters)"))
    operations = _check_operations(raw.get("operations"), problems)
    problems += _check_files(folder, raw.get("ui_component"))
    problems += _check_file(folder, "checks", raw.get("checks"))
    problems += _check_file(folder, "presets", raw.get("presets"))
    good_name = name if isinstance(name, str) and NAME_RE.match(name) else None
    if problems or top is None or operations is None:
        return ManifestResult(None, problems, good_name)
    manifest = Manifest(**top, operations=operations)
    problems = check_presets(folder, manifest)
    return ManifestResult(None if problems else manifest, problems, good_name)


def convert_fields(raw: dict[Any, Any], cls: type[msgspec.Struct], where: str, problems: Problems, *,
                   skip: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Convert each field of `raw` to its type in `cls` separately, so every bad field is reported.

    Returns constructor keyword arguments, or None when anything was wrong.
    """
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    before = len(problems)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        at = _join(where, str(key))
        f = fields.get(key) if isinstance(key, str) else None
        if f is None:
            problems.append((at, f"unknown field (expected one of: {', '.join(fields)})"))
        elif key not in skip:
            try:
                out[f.name] = msgspec.convert(value, f.type)
            except msgspec.ValidationError as exc:
                problems.append(_conversion_problem(at, value, exc, f.type))
    missing = [k for k, f in fields.items() if f.required and k not in raw and k not in skip]
    problems += [(_join(where, k), "required field is missing") for k in missing]
    return out if len(problems) == before else None


def _check_operations(raw: Any, problems: Problems) -> dict[str, OperationSpec] | None:
    if not isinstance(raw, dict) or not raw:
        problems.append(("operations", "must map each operation name to its description, ports and params"))
        return None
    before = len(problems)
    ops = {}
    for name, raw_op in raw.items():
        op = _check_operation(name, raw_op, problems)
        if op is not None:
            ops[name] = op
    return ops if len(problems) == before else None


def _check_operation(name: Any, raw: Any, problems: Problems) -> OperationSpec | None:
    where = f"operations.{name}"
    before = len(problems)
    if not _is_identifier(name):
        problems.append((where, "an operation name must be a Python identifier not starting with `_`: "
                                "backend.py defines a function of that name"))
    if not isinstance(raw, dict):
        problems.append((where, "must be a mapping with description, inputs, outputs and params"))
        return None
    top = convert_fields(raw, OperationSpec, where, problems, skip=tuple(p for p, _ in _PARTS))
    parts: dict[str, dict[str, Any]] = {}
    for part, cls in _PARTS:
        items = raw.get(part) or {}
        if not isinstance(items, dict):
            problems.append((f"{where}.{part}", "must be a mapping of names to specs"))
            continue
        parts[part] = {k: spec for k, v in items.items()
                       if (spec := _check_item(f"{where}.{part}.{k}", k, v, cls, problems)) is not None}
    for knob, kind in (("devices_param", "integer"), ("nodes_param", "integer"), ("gpu_type_param", "string")):
        named = raw.get(knob)
        if named is not None and getattr(parts.get("params", {}).get(named), "type", None) != kind:
            problems.append((f"{where}.{knob}", f"must name {'an' if kind == 'integer' else 'a'} {kind} parameter "
                                                 f"of the operation, got {named!r}"))
    uses = raw.get("uses_param")
    used = parts.get("params", {}).get(uses) if isinstance(uses, str) else None
    if uses is not None and (getattr(used, "type", None) != "list" or getattr(used, "items", None) != "string"):
        problems.append((f"{where}.uses_param", f"must name a list-of-strings parameter of the operation, got {uses!r}"))
    if len(problems) > before or top is None:
        return None
    return OperationSpec(**top, inputs=parts["inputs"], outputs=parts["outputs"], params=parts["params"])


def _check_item(where: str, key: Any, raw: Any, cls: type[PortSpec] | type[ParamSpec],
                problems: Problems) -> PortSpec | ParamSpec | None:
    """One port or parameter: its fields, then the rules msgspec cannot express."""
    if not _is_identifier(key):
        problems.append((where, "a port or parameter name must be a Python identifier"))
    if not isinstance(raw, dict):
        problems.append((where, "must be a mapping with at least `type` and `description`"))
        return None
    fields = convert_fields(raw, cls, where, problems)
    if fields is None:
        return None
    item = cls(**fields)
    found = _check_port(item, where) if isinstance(item, PortSpec) else _check_param(item, where)
    problems += found
    return None if found else item


def _check_port(port: PortSpec, where: str) -> Problems:
    if port.type not in PORT_TYPES:
        return [(f"{where}.type", f"unknown port type {port.type!r} (one of: {', '.join(PORT_TYPES)})")]
    return []


def _check_param(spec: ParamSpec, where: str) -> Problems:
    out: Problems = []
    if spec.items is not None and spec.type != "list":
        out.append((f"{where}.items", "only a list parameter declares `items`"))
    numeric = spec.type in ("integer", "number")
    for bound in ("minimum", "maximum"):
        if getattr(spec, bound) is not None and not numeric:
            out.append((f"{where}.{bound}", "only integer and number parameters have bounds"))
    if spec.minimum is not None and spec.maximum is not None and spec.minimum > spec.maximum:
        out.append((f"{where}.minimum", f"is above the maximum ({spec.minimum} > {spec.maximum})"))
    if spec.choices is not None:
        if not spec.choices:
            out.append((f"{where}.choices", "must list at least one value"))
        out += [(f"{where}.choices[{i}]", p) for i, c in enumerate(spec.choices) if (p := type_problem(spec.type, c))]
    if spec.default is not msgspec.UNSET and not out:
        out += check_value(spec, spec.default, f"{where}.default")
    return out


def _check_files(folder: Path, ui_component: Any) -> Problems:
    out: Problems = []
    if not (folder / "backend.py").is_file():
        out.append(("backend.py", "is missing: a plugin implements each operation as a function in backend.py"))
    return out + _check_file(folder, "ui_component", ui_component)


def _check_file(folder: Path, field: str, name: Any) -> Problems:
    """A manifest field naming a file of the plugin: it must be one, inside the folder."""
    if not isinstance(name, str):
        return []
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()):
        return [(field, f"{name!r} must be a file inside the plugin folder")]
    if not target.is_file():
        return [(field, f"names {name!r}, which is not a file in the plugin folder")]
    return []


def _conversion_problem(where: str, value: Any, exc: msgspec.ValidationError, kind: Any) -> tuple[str, str]:
    """Turn msgspec's message (`Expected str, got int - at $.type`) into (field, message)."""
    message, _, path = str(exc).partition(" - at `")
    path = path.rstrip("`").removeprefix("$")
    if message.startswith("Invalid enum value") and not path and (allowed := _literals(kind)):
        return where, f"{value!r} is not one of: {', '.join(map(str, allowed))}"
    unknown = re.match(r"Object (contains unknown|missing required) field `(.+)`", message)
    if unknown:
        what = "unknown field" if unknown.group(1) == "contains unknown" else "required field is missing"
        return f"{where}{path}.{unknown.group(2)}", what
    message = message.replace("`", "")
    if isinstance(value, int | float) and not isinstance(value, bool) and "Expected str" in message:
        message += f' (quote it in YAML: "{value}")'
    return f"{where}{path}", message[:1].lower() + message[1:]


def _literals(kind: Any) -> list[Any]:
    """The values a Literal type (or an optional one) allows."""
    if typing.get_origin(kind) is typing.Literal:
        return list(typing.get_args(kind))
    return [v for arg in typing.get_args(kind) for v in _literals(arg)]


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _is_identifier(name: Any) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
