"""What a typed model or data reference is taken for: a hub id (`owner/name[@revision]`) or a local
path. The CLI makes paths absolute and the daemon's submit checks refuse a path that does not
exist, so a value taken for the wrong kind is either fetched from the hub or refused."""

from __future__ import annotations

import pytest

from tunelog.daemon.runs.refs import looks_like_hub_id, looks_like_path

HUB_IDS = ["HuggingFaceTB/SmolLM2-135M-Instruct", "org/model@main", "org/model@refs/pr/1", "a/b",
           "Qwen/Qwen2.5-0.5B", "org/my_model.v2", "org/model@v1.0", "o-r.g/m"]
PATHS = ["/abs/model", "./data.jsonl", "../up/model", "~/models/x", ".hidden/model", "data.jsonl",
         "train.CSV", "model.gguf", "weights.safetensors", "a/b/c", "org/data.jsonl", "org/model.GGUF@main",
         "dir/", "-org/model", "_org/model", "org/", "/org/model",
         ".", "..", ".cache", "~", "~alice"]  # no "/" and no suffix: the leading "." or "~" says path


@pytest.mark.parametrize("value", HUB_IDS)
def test_a_hub_id_is_not_a_path(value: str) -> None:
    assert looks_like_hub_id(value) and not looks_like_path(value)


@pytest.mark.parametrize("value", PATHS)
def test_a_path_or_file_name_is_not_a_hub_id(value: str) -> None:
    assert looks_like_path(value) and not looks_like_hub_id(value)


@pytest.mark.parametrize("value", ["gpt2", "model", "", "org model/x y"])
def test_a_bare_name_is_neither(value: str) -> None:
    """A bare name (a registered model's, say) is looked up by name first; `org model/x y` has
    spaces a hub id cannot have, and a `/`, so it is taken for a relative path."""
    assert not looks_like_hub_id(value)
    assert looks_like_path(value) == ("/" in value)
