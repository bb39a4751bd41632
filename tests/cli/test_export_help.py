"""`tunectl export`, `serve` and `generate` say what README says (formats, quant types, backends,
generation controls), and the demo ends by printing an export command the CLI accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
from click.testing import CliRunner

from tunelog.frontends.cli.app import cli
from tunelog.frontends.cli.cmd_demo import export_command, print_summary
from tunelog.frontends.cli.cmd_export import FORMATS, QUANTS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _help(*command: str) -> str:
    out = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert out.exit_code == 0, out.output
    return out.output


def _section(title: str) -> str:
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _choices(command: str, option: str) -> list[str]:
    cmd = cli.commands[command]  # type: ignore[attr-defined]
    [param] = [p for p in cmd.params if option in getattr(p, "opts", ())]
    assert isinstance(param.type, click.Choice)
    return list(param.type.choices)


def test_export_formats_and_quant_types_match_the_readme() -> None:
    export = _section("Export: Hugging Face, GGUF, Ollama")
    assert re.findall(r"^\| `([a-z-]+)` \|", export, flags=re.M)[1:] == list(FORMATS)  # after the header
    reference = next(line for line in README.splitlines() if line.startswith("| `tunectl export "))
    assert "\\|".join(FORMATS) in reference
    assert set(re.findall(r"--quant ([a-z0-9_\\|]+)", export)[0].split("\\|")) <= set(QUANTS)
    assert "q4_k_m" in export and "q4_k_m" in QUANTS
    text = _help("export")
    for fmt in FORMATS:
        assert re.search(rf"^\s+{re.escape(fmt)}\s", text, flags=re.M), fmt
    for option in ("--format", "--quant", "--model", "--name", "--system", "--detach", "--json"):
        assert option in text


def test_serve_options_and_backends_match_the_readme() -> None:
    serve = _section("Serve: an OpenAI-compatible endpoint")
    usage = next(line.strip() for line in serve.splitlines() if line.strip().startswith("tunectl serve"))
    text = _help("serve")
    for option in re.findall(r"--[a-z-]+", usage):
        assert option in text, option
    assert usage.endswith("[--backend " + "|".join(_choices("serve", "--backend")) + "]")
    assert "auto" in text and "vllm" in text
    for route in ("/v1/models", "/v1/chat/completions", "/v1/completions"):
        assert route in serve and route in text


def test_generate_takes_every_control_the_readme_lists() -> None:
    serve = _section("Serve: an OpenAI-compatible endpoint")
    listed = re.findall(r"`(--[a-z-]+)", serve.split("`tunectl generate` and the", 1)[1])
    assert set(listed) >= {"--temperature", "--top-p", "--top-k", "--min-p", "--repetition-penalty", "--seed",
                           "--stop", "--system", "--history", "--no-chat-template", "--template"}
    text = _help("generate")
    for option in [*listed, "--max-new-tokens"]:
        assert option in text, option


def test_the_demo_ends_with_an_export_command_the_cli_accepts() -> None:
    adapter, model = "ab" * 32, Path("/data dir/SmolLM2-135M-Instruct.Q4_1.gguf")
    row = {"kind": "fact", "question": "q", "expect": "e", "base": "b", "tuned": "t", "base_ok": False,
           "tuned_ok": True}
    summary = {"rows": [row], "facts_learned": 1, "facts": 1, "controls_kept": 0, "controls": 0,
               "adapter": adapter, "run": "r1", "export": export_command(adapter, model)}
    out = CliRunner().invoke(click.Command("show", callback=lambda: print_summary(summary)), [])
    last = out.output.rstrip().splitlines()[-1].strip()
    argv = shlex.split(last)
    assert argv[:2] == ["tunectl", "export"]
    parsed = cli.commands["export"].make_context("export", argv[2:])  # type: ignore[attr-defined]
    assert parsed.params["target"] == adapter and parsed.params["base"] == str(model)
    assert parsed.params["fmt"] == "ollama" and parsed.params["name"] == "demo-facts"
