"""The playground's generation controls: the form's text becomes the same evaluate.generate parameters
`tunectl generate` sends for the same settings, the evaluate manifest (the validation the page runs as
you type) accepts them, names every bad field at once, and blank fields leave the node's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelog.daemon.plugin_host.manifest import read_manifest
from tunelog.daemon.plugin_host.params import validate_params
from tunelog.events.errors import ValidationError
from tunelog.frontends.web.pages.playground import control_params, generate_graph

EVALUATE = Path(__file__).resolve().parents[2] / "plugins" / "evaluate"
SHA = "ab" * 32


def _validate(params: dict[str, object]) -> dict[str, object]:
    manifest = read_manifest(EVALUATE).manifest
    assert manifest is not None
    return validate_params(manifest.operations["generate"], params)  # type: ignore[no-any-return]


def _params(**controls: str) -> dict[str, object]:
    graph = generate_graph("some-model", "what is the capital of france", [SHA], max_new_tokens="10",
                           controls=controls)
    return graph["nodes"]["generate"]["params"]  # type: ignore[no-any-return]


def test_every_control_reaches_the_node_as_tunectl_generate_sends_it() -> None:
    params = _params(sample="true", temperature="1.3", top_p="0.9", top_k="30", min_p="0.02",
                     repetition_penalty="0.5", seed="5", stop="###\nUser:", system="answer small", chat="",
                     chat_template="{{ messages }}",
                     history='[{"role": "user", "content": "apple river"}, {"role": "assistant", "content": "x"}]')
    # what tests/cli/test_generate_controls.py's `tunectl generate` options become (the page also streams)
    assert params == {"prompts": ["what is the capital of france"], "max_new_tokens": 10, "stream": True,
                      "greedy": False,
                      "temperature": 1.3, "top_p": 0.9, "top_k": 30, "min_p": 0.02, "repetition_penalty": 0.5,
                      "seed": 5, "stop": ["###", "User:"], "system": "answer small",
                      "chat_template": "{{ messages }}",
                      "history": [{"role": "user", "content": "apple river"}, {"role": "assistant", "content": "x"}]}
    assert _validate(params)["top_k"] == 30


def test_blank_controls_leave_the_nodes_defaults_and_chat_off_sends_plain_text() -> None:
    assert _params() == {"prompts": ["what is the capital of france"], "max_new_tokens": 10, "stream": True}
    assert _params(chat="false")["chat"] is False
    assert control_params({"temperature": "  ", "stop": "\n\n"}) == {}


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(ValidationError) as err:
        _validate({"prompts": ["p"], **control_params({"temperature": "hot", "top_k": "2.5", "seed": "x",
                                                       "history": "[{"})})
    named = " ".join(str(p["where"]) for p in err.value.problems)
    assert all(field in named for field in ("temperature", "top_k", "seed", "history")), err.value.problems
    with pytest.raises(ValidationError) as err:
        generate_graph(" ", "", [], max_new_tokens="0")
    assert {p["where"] for p in err.value.problems} == {"model", "prompt", "max new tokens"}
