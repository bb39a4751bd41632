"""Tool definitions reach the training text: through a chat template that renders `tools`, or, for
one that does not, in a system message (the format in `tunelog.plugins.common.data`); the
encoding counts say which. Real tiny tokenizer, two real templates."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.tiny import CHAT_TEMPLATE
from tunelog.plugins.common.data import (
    TOOLS_HEADER,
    counts_text,
    encode_chat,
    encode_dataset,
    template_takes_tools,
)

TOOLS_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\n# Tools\n' }}{% for tool in tools %}{{ tool | tojson }}{{ '\n' }}"
    "{% endfor %}{{ '<|im_end|>\n' }}{% endif %}" + CHAT_TEMPLATE
)
"""The tiny ChatML template plus a tools block, as Qwen-style templates render one."""
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "weather of a city",
                                           "parameters": {"type": "object", "properties": {}}}}]
RECORD = {"messages": [{"role": "system", "content": "be calm"}, {"role": "user", "content": "weather in paris"},
                       {"role": "assistant", "content": '[{"name": "weather", "arguments": {"city": "paris"}}]'},
                       {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "it is sunny"}],
          "tools": TOOLS}


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    with_tools = copy.deepcopy(plain)
    with_tools.chat_template = TOOLS_TEMPLATE
    return {"plain": plain, "tools": with_tools}


def text(tok: Any, feature: dict[str, list[int]] | None) -> str:
    assert feature is not None
    return str(tok.decode(feature["input_ids"]))


def test_a_template_with_tools_renders_them_itself(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["tools"]
    assert template_takes_tools(tok)
    rendered = text(tok, encode_chat(tok, RECORD, max_length=512))
    assert "# Tools\n" + json.dumps(TOOLS[0]) in rendered and TOOLS_HEADER not in rendered
    features = encode_dataset(tok, [RECORD], max_length=512)
    assert features.counts["tools_in_system"] == 0 and "system message" not in counts_text(features.counts)


def test_a_template_without_tools_gets_them_in_the_system_message(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["plain"]
    assert not template_takes_tools(tok)
    rendered = text(tok, encode_chat(tok, RECORD, max_length=512))
    assert rendered.startswith(f"<|im_start|>system\nbe calm\n\n{TOOLS_HEADER}\n{json.dumps(TOOLS[0])}<|im_end|>")
    no_system = {**RECORD, "messages": RECORD["messages"][1:]}
    assert text(tok, encode_chat(tok, no_system, max_length=512)).startswith(
        f"<|im_start|>system\n{TOOLS_HEADER}\n{json.dumps(TOOLS[0])}<|im_end|>\n<|im_start|>user")
    features = encode_dataset(tok, [RECORD, no_system, {"messages": RECORD["messages"]}], max_length=512)
    assert features.counts["tools_in_system"] == 2
    assert counts_text(features.counts) == ("3 records: 3 used; tools of 2 went into a system message (the chat "
                                            "template does not render tools)")
