"""tests/PROMISES.md stays true: every test it names exists, and every README promise of the kinds
listed below has a row (with a test, or marked untested with the reason)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = (ROOT / "tests" / "PROMISES.md").read_text()
README = (ROOT / "README.md").read_text()
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def rows() -> list[str]:
    return [line for line in TABLE.splitlines() if line.startswith("| ") and not line.startswith("| ---")]


def section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_every_test_named_in_the_table_exists() -> None:
    defined: dict[str, set[str]] = {}
    missing = []
    for path, name in NAMED.findall(TABLE):
        if path not in defined:
            file = ROOT / path
            tree = ast.parse(file.read_text()) if file.is_file() else ast.Module(body=[], type_ignores=[])
            defined[path] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        if name not in defined[path] or not name.startswith("test_"):
            missing.append(f"{path}::{name}")
    assert NAMED.findall(TABLE), "the table names no test"
    assert missing == [], f"tests/PROMISES.md names tests that do not exist: {missing}"


def test_every_row_names_a_test_or_says_why_it_has_none() -> None:
    bare = [r for r in rows()[1:] if r.split("|")[1].strip() not in ("promise", "command")
            and not NAMED.search(r) and not re.search(r"\*\*untested\*\*: \w+", r)]
    assert bare == [], f"rows without a test or a reason: {bare}"


def test_every_how_it_fits_together_bullet_has_rows() -> None:
    bullets = re.findall(r"^- (\*\*[^*]+\*\*)", section(README, "How it fits together"), flags=re.M)
    assert len(bullets) >= 5, bullets
    table = section(TABLE, "How it fits together")
    assert [b for b in bullets if f"| {b}" not in table] == []


def test_every_exit_code_has_a_row() -> None:
    codes = re.findall(r"^\| (\d+) \|", section(README, "Errors"), flags=re.M)
    assert {"0", "2", "69", "130"} <= set(codes)
    table = section(TABLE, "Errors and exit codes")
    assert [c for c in codes if f"| exit {c} " not in table] == []


def test_every_configuration_variable_has_a_row() -> None:
    names = re.findall(r"^\| `([A-Z_]+)(?:=1)?` \|", section(README, "Configuration"), flags=re.M)
    assert "TUNELOG_HOME" in names and len(names) >= 7, names
    table = section(TABLE, "Configuration")
    assert [n for n in names if f"`{n}" not in table] == []


def test_every_command_of_the_cli_reference_has_a_row() -> None:
    commands = {c.split()[1] for c in re.findall(r"^\| `(tunectl [a-z]+)", section(README, "CLI reference"), flags=re.M)}
    assert {"train", "replay", "demo", "state"} <= commands
    table = section(TABLE, "CLI reference")
    listed = {c.split()[1] for c in re.findall(r"^\| `(tunectl [a-z]+)", table, flags=re.M)}
    assert sorted(commands - listed) == []
