"""The export plugin's page submits exactly the graph `tunectl export` submits, for every format,
with the adapter merged first except for gguf-lora, and a model alone exported as it is."""

from __future__ import annotations

import pytest

from tunelog.frontends.cli.cmd_export import FORMATS, export_graph
from tunelog.plugins.export import ui_component as page

ADAPTER = "a" * 64


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_page_builds_the_cli_graph(fmt: str) -> None:
    params = page.export_params(fmt, quant="q8_0" if fmt != "hf" else "", name="mine", system="be brief")
    base = "some/model"
    assert page.export_graph(adapter=ADAPTER, model=base, fmt=fmt, params=params) == export_graph(
        ADAPTER, fmt=fmt, base=base, params=params)
    if fmt != "gguf-lora":
        assert page.export_graph(adapter="", model=base, fmt=fmt, params=params) == export_graph(
            base, fmt=fmt, base=None, params=params)


def test_the_form_sets_only_what_the_format_takes() -> None:
    assert page.export_params("hf", quant="q8_0", name="x", system="y") == {}
    assert page.export_params("gguf", quant="", name="x", system="y") == {}
    assert page.export_params("gguf-lora", quant="f16", name="x", system="") == {"outtype": "f16"}
    assert page.export_params("ollama", quant="q8_0", name="mine", system="") == {"quant": "q8_0", "name": "mine"}
    assert set(page.FORMATS) == set(FORMATS)
