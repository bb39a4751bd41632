"""A plugin's up-front checks (manifest `checks:`): run by the daemon in a real throwaway process,
their problems and warnings read back per node; a broken checks module is reported, not fatal."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import yaml

from tunelog.daemon.plugin_host.check import run_checks
from tunelog.daemon.plugin_host.manifest import read_manifest

MANIFEST = {"name": "toy", "version": "1", "description": "d", "checks": "checks.py",
            "operations": {"train": {"description": "t"}, "other": {"description": "o"}}}
CHECKS = '''
from .rules import too_big


def train(params, inputs, facts):
    problems = [("size", "too big")] if too_big(params["size"]) else []
    return problems, [("size", f"cuda={facts['cuda']} model={inputs.get('model')}")]
'''


def toy(tmp_path: Path, checks: str) -> Path:
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(yaml.safe_dump(MANIFEST))
    (folder / "backend.py").write_text("def train(ctx, params, inputs):\n    return {}\n\n\nother = train\n")
    (folder / "rules.py").write_text("def too_big(n):\n    return n > 3\n")
    (folder / "checks.py").write_text(checks)
    return folder


def check(folder: Path, *nodes: tuple[str, str, int]) -> dict[str, object]:
    request = {"facts": {"cuda": False}, "nodes": [
        {"node": node, "operation": op, "params": {"size": size}, "inputs": {"model": "/m"}} for node, op, size in nodes]}

    async def go() -> dict[str, object]:
        return await run_checks(sys.executable, folder, package="tunelog_checks_toy", module="checks.py",
                                request=request, timeout=60)

    return anyio.run(go)


def test_problems_and_warnings_come_back_per_node(tmp_path: Path) -> None:
    got = check(toy(tmp_path, CHECKS), ("a", "train", 5), ("b", "train", 1), ("c", "other", 9))
    assert got == {"ok": True, "nodes": {
        "a": {"problems": [["size", "too big"]], "warnings": [["size", "cuda=False model=/m"]]},
        "b": {"problems": [], "warnings": [["size", "cuda=False model=/m"]]},
    }}  # `other` declares no check function: nothing to check


def test_a_failing_checks_module_is_reported(tmp_path: Path) -> None:
    got = check(toy(tmp_path, "def train(params, inputs, facts):\n    raise RuntimeError('boom')\n"),
                ("a", "train", 1))
    assert got["ok"] is False and "checks.py failed: RuntimeError: boom" in str(got["error"])


def test_a_manifest_naming_a_missing_checks_file_is_refused(tmp_path: Path) -> None:
    folder = toy(tmp_path, CHECKS)
    (folder / "checks.py").unlink()
    result = read_manifest(folder)
    assert result.manifest is None
    assert ("checks", "names 'checks.py', which is not a file in the plugin folder") in result.problems
