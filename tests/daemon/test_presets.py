"""Named parameter presets (daemon/plugin_host/presets.py) from real files on tmp_path: a malformed file
is refused naming the file and the preset, a manifest's presets must name parameters its operations
have, and a run's parameters resolve as defaults, then the preset, then what the user set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from tunelog.daemon.plugin_host.presets import apply_preset, check_presets, load_presets, snapshot_presets
from tunelog.events.errors import ValidationError
from tunelog.plugins.api import Manifest

FAST = {"description": "Fast.", "params": {"lr": 0.5}}


def write(tmp_path: Path, data: Any, name: str = "presets.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def manifest(**ops: dict[str, Any]) -> Manifest:
    operations = {name: {"description": name, "params": {p: {"type": "number", "description": p, "default": 0}
                                                         for p in params}}
                  for name, params in ops.items()}
    return msgspec.convert({"name": "p", "version": "1", "description": "d", "presets": "presets.yaml",
                            "operations": operations}, Manifest)


def test_a_good_file_loads_as_a_mapping_of_presets(tmp_path: Path) -> None:
    got = load_presets(write(tmp_path, {"presets": {"fast": FAST, "bare": {"params": {}}}}))
    assert got == {"fast": FAST, "bare": {"params": {}}}


@pytest.mark.parametrize("text", ["", "presets: [fast]\n", "- presets\n", "presets:\n", "other: {}\n"])
def test_a_file_without_a_presets_mapping_is_refused_naming_it(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValidationError) as info:
        load_presets(path)
    assert info.value.message == f"presets file {path} has no `presets:` mapping" and info.value.problems == []


def test_an_unreadable_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ValidationError) as info:
        load_presets(missing)
    assert info.value.message.startswith(f"presets file {missing} cannot be read: ")
    assert "No such file" in info.value.message
    broken = write(tmp_path, "presets: {fast: [unclosed\n")
    with pytest.raises(ValidationError) as info:
        load_presets(broken)
    assert info.value.message.startswith(f"presets file {broken} cannot be read: ")
    assert "line 1" in info.value.message


def test_every_preset_without_a_params_mapping_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, {"presets": {"fast": FAST, "bare": {"description": "no params"}, "flat": "lr=1",
                                        "listed": {"params": ["lr"]}}})
    with pytest.raises(ValidationError) as info:
        load_presets(path)
    assert info.value.message == f"presets file {path} is malformed"
    assert [(p["where"], p["message"]) for p in info.value.problems] == [
        ("presets.bare", "needs a `params` mapping"), ("presets.flat", "needs a `params` mapping"),
        ("presets.listed", "needs a `params` mapping")]


def test_a_snapshot_s_presets_are_read_once(tmp_path: Path) -> None:
    path = write(tmp_path, {"presets": {"fast": FAST}})
    first = snapshot_presets(path)
    path.write_text(yaml.safe_dump({"presets": {}}))  # a snapshot never changes: its path names its code hash
    assert snapshot_presets(path) is first and first == {"fast": FAST}


def test_check_presets_of_a_manifest(tmp_path: Path) -> None:
    m = manifest(train={"preset", "lr"}, tune={"preset", "lr", "r"}, other={"r"})
    assert check_presets(tmp_path, msgspec.structs.replace(m, presets=None)) == []
    assert check_presets(tmp_path, m) == [
        ("presets", f"presets file {tmp_path / 'presets.yaml'} cannot be read: "
                    f"[Errno 2] No such file or directory: '{tmp_path / 'presets.yaml'}'")]
    write(tmp_path, {"presets": {"a": {"params": {}}, "b": []}})
    assert check_presets(tmp_path, m) == [("presets.b", "needs a `params` mapping")]
    write(tmp_path, {"presets": {"fast": FAST, "big": {"params": {"r": 8, "lr": 1}}, "odd": {"params": {"x": 1}}}})
    assert check_presets(tmp_path, m) == [  # each preset is checked against every operation that takes one
        ("presets.big.params.r", "operation 'train' has no parameter 'r'"),
        ("presets.odd.params.x", "operation 'train' has no parameter 'x'"),
        ("presets.odd.params.x", "operation 'tune' has no parameter 'x'"),
    ]
    assert check_presets(tmp_path, manifest(other={"r"})) == [
        ("presets", "no operation has a `preset` parameter to choose them with")]


def test_parameters_resolve_defaults_then_preset_then_given() -> None:
    presets = {"fast": {"params": {"lr": 0.5, "r": 4}}, "slow": {"params": {"lr": 0.01}}}
    defaults = {"preset": "", "lr": 0.1, "r": 8, "steps": 10}
    assert apply_preset("fast", {"r": 2}, defaults, presets=presets) == {"preset": "fast", "lr": 0.5, "r": 2,
                                                                         "steps": 10}
    assert apply_preset("", {"r": 2}, defaults, presets=presets) == {"preset": "", "lr": 0.1, "r": 2, "steps": 10}
    no_preset_param = {"lr": 0.1, "r": 8}
    assert apply_preset("slow", {}, no_preset_param, presets=presets) == {"lr": 0.01, "r": 8}
    assert presets["fast"]["params"] == {"lr": 0.5, "r": 4}  # the presets themselves are left as they were


def test_an_unknown_preset_is_refused_listing_those_there_are() -> None:
    with pytest.raises(ValidationError) as info:
        apply_preset("quick", {}, {"preset": ""}, presets={"slow": {"params": {}}, "fast": {"params": {}}})
    assert (info.value.message, info.value.hint) == ("unknown preset 'quick'", "presets: fast, slow")
    with pytest.raises(ValidationError) as info:
        apply_preset("quick", {}, {"preset": ""}, presets={})
    assert info.value.hint == "presets: none"


def test_settings_the_operation_does_not_have_are_refused_naming_where_they_came_from() -> None:
    presets = {"fast": {"params": {"lr": 0.5, "warmup": 3}}}
    with pytest.raises(ValidationError) as info:
        apply_preset("fast", {"lr": 1, "rank": 2}, {"preset": "", "lr": 0.1}, presets=presets)
    assert info.value.message == "parameters name settings the operation does not have"
    assert [(p["where"], p["message"]) for p in info.value.problems] == [
        ("preset fast: warmup", "unknown parameter"), ("parameters: rank", "unknown parameter")]
