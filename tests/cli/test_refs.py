"""What users type, turned into graph values: adapter prefixes, weights, workflow files (no daemon)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from tunelog.frontends.cli.refs import (
    NotFound,
    local_or_given,
    pick_adapter,
    read_graph_file,
    resolve_adapter,
    split_weight,
)

A, B, C = "ab" + "0" * 62, "ab" + "1" * 62, "cd" + "2" * 62


def test_an_adapter_is_found_by_a_unique_prefix_of_its_hash() -> None:
    """The daemon lists a prefix's matches (tests/daemon/test_paging.py); one of them is picked."""
    assert pick_adapter("cd", [C]) == C
    with pytest.raises(click.BadParameter, match="ambiguous: ab0000000000, ab1111111111"):
        pick_adapter("ab", [A, B])
    with pytest.raises(NotFound, match="no adapter 'ef'") as exc:
        pick_adapter("ef", [])
    assert exc.value.exit_code == 4
    with pytest.raises(click.BadParameter, match="prefix of\\) its sha256"):
        resolve_adapter(None, "not-hex")  # type: ignore[arg-type]  # refused before the daemon is asked
    full = "e" * 64  # an artifact the list does not know is passed through
    assert pick_adapter(full, []) == full


def test_weights_split_off_the_last_colon() -> None:
    assert split_weight("abc", option="A") == ("abc", None)
    assert split_weight("abc:0.5", option="A") == ("abc", 0.5)
    assert split_weight("abc:-1", option="A") == ("abc", -1.0)
    with pytest.raises(click.BadParameter, match="WEIGHT"):
        split_weight("abc:heavy", option="A")


def test_local_paths_become_absolute_and_hub_ids_stay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    assert local_or_given("data.jsonl") == str(tmp_path / "data.jsonl")
    assert local_or_given("org/dataset") == "org/dataset"


def test_workflow_files_are_json_or_yaml_and_relative_inputs_are_anchored_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    yaml_file = folder / "wf.yaml"
    yaml_file.write_text("nodes:\n  a: {op: datasets.prepare, inputs: {source: ./facts.jsonl}}\n"
                         "  b: {op: lora_trainer.train, inputs: {model: org/name, dataset: {node: a, output: dataset}}}\n")
    graph = read_graph_file(str(yaml_file))
    assert graph["nodes"]["a"]["inputs"]["source"] == str(folder / "facts.jsonl")
    assert graph["nodes"]["b"]["inputs"] == {"model": "org/name", "dataset": {"node": "a", "output": "dataset"}}
    json_file = folder / "wf.json"
    json_file.write_text(json.dumps({"nodes": {"a": {"op": "x.y", "inputs": {"source": "../up.txt"}}}}))
    assert read_graph_file(str(json_file))["nodes"]["a"]["inputs"]["source"] == str(tmp_path / "up.txt")
    (folder / "broken.yaml").write_text("nodes: [unclosed\n")
    with pytest.raises(click.BadParameter, match="not valid JSON or YAML"):
        read_graph_file(str(folder / "broken.yaml"))
    (folder / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(click.BadParameter, match="must hold a mapping"):
        read_graph_file(str(folder / "list.yaml"))
