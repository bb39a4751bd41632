"""Import a plugin's backend.py in a throwaway process and check that its operations exist; run a
plugin's up-front checks of a submitted request the same way.

The daemon never imports plugin code itself; it runs

    python -B -m tunelog.daemon.plugin_host.check <code_dir> <package> <operation>...

on an immutable snapshot (`run_check`, the daemon's side) and reads the one JSON line the child
prints: `{"ok": true}` or `{"ok": false, "error": ..., "traceback": ..., "missing": [...]}`.
The child's side imports only the standard library, so it starts fast. `import_backend` is
also how a worker loads a plugin to run it.

A plugin whose manifest names a checks module (`checks: checks.py`) gets its requests checked
at submit: `python -B -m tunelog.daemon.plugin_host.check --checks <code_dir> <package> <module>`
reads `{"facts": {...}, "nodes": [{"node", "operation", "params", "inputs", "facts"}]}` on stdin,
calls `<module>.<operation>(params, inputs, facts)` for each node (the shared facts with the node's
own, e.g. its `consumers`) (an operation without such a
function has no checks) and prints `{"ok": true, "nodes": {node: {"problems": [[where, message],
...], "warnings": [...]}}}` (`run_checks`, the daemon's side).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    """Outcome of importing a backend in a throwaway process."""

    ok: bool
    error: str = ""
    traceback: str = ""
    missing: tuple[str, ...] = ()


async def run_check(python: str, code_dir: Path, *, package: str, operations: list[str],
                    timeout: float) -> CheckResult:
    """Import `code_dir/backend.py` in a throwaway process and check its operations are callables.

    Runs in the daemon; anyio is imported here rather than at the top so the child stays light.
    """
    import anyio

    cmd = [python, "-B", "-m", "tunelog.daemon.plugin_host.check", str(code_dir), package, *operations]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1"}
    with anyio.move_on_after(timeout) as scope:
        done = await anyio.run_process(cmd, check=False, env=env, cwd=code_dir)
    if scope.cancelled_caught:
        return CheckResult(False, error=f"importing backend.py took longer than {timeout:g} s")
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    try:
        got = json.loads(lines[-1])
        if not isinstance(got, dict):
            raise ValueError("not a result object")
    except (IndexError, ValueError):
        stderr = done.stderr.decode(errors="replace")
        return CheckResult(False, error=f"the import check exited with status {done.returncode} and no result",
                           traceback=stderr[-4000:])
    return CheckResult(bool(got.get("ok")), error=got.get("error", ""), traceback=got.get("traceback", ""),
                       missing=tuple(got.get("missing", ())))


async def run_checks(python: str, code_dir: Path, *, package: str, module: str, request: dict[str, Any],
                     timeout: float) -> dict[str, Any]:
    """Run a plugin's checks module on `request` in a throwaway process; the child's answer object.

    A check module that fails to import, raises or answers nothing gives `{"ok": false, "error": ...}`.
    """
    import anyio

    cmd = [python, "-B", "-m", "tunelog.daemon.plugin_host.check", "--checks", str(code_dir), package, module]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1"}
    with anyio.move_on_after(timeout) as scope:
        done = await anyio.run_process(cmd, input=json.dumps(request).encode(), check=False, env=env, cwd=code_dir)
    if scope.cancelled_caught:
        return {"ok": False, "error": f"the plugin's checks took longer than {timeout:g} s"}
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    try:
        got = json.loads(lines[-1])
        if not isinstance(got, dict):
            raise ValueError("not a result object")
    except (IndexError, ValueError):
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return {"ok": False, "error": f"the checks exited with status {done.returncode} and no result"
                                      + (f": {tail[0]}" if tail else "")}
    return got


def import_backend(folder: Path, package: str, name: str = "backend") -> ModuleType:
    """Load `folder` as the package `package` and import its `backend` (or another) module.

    Relative imports between the folder's modules work; no bytecode is written, because a
    `.pyc` validated by whole-second mtimes can serve stale code after a quick edit.
    """
    sys.dont_write_bytecode = True
    init = folder / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(package, init, submodule_search_locations=[str(folder)])
    else:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    if spec is None:
        raise ImportError(f"cannot load {folder} as a package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    if spec.loader is not None:
        spec.loader.exec_module(module)
    return importlib.import_module(f"{package}.{name}")


def check(folder: Path, package: str, operations: list[str]) -> dict[str, Any]:
    """Import the backend and report whether every operation is a callable in it."""
    try:
        with contextlib.redirect_stdout(sys.stderr):  # our stdout carries only the result line
            backend = import_backend(folder, package)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from plugin code are failures too
        return {"ok": False, "error": f"backend.py failed to import: {type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
    missing = [op for op in operations if not callable(getattr(backend, op, None))]
    if missing:
        return {"ok": False, "missing": missing,
                "error": f"backend.py does not define the operation(s) {', '.join(missing)} as functions"}
    return {"ok": True}


def check_requests(folder: Path, package: str, module: str, request: dict[str, Any]) -> dict[str, Any]:
    """Call the checks module's function for each node's operation; every node's problems and warnings."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            checks = import_backend(folder, package, module.removesuffix(".py"))
            out = {}
            for node in request["nodes"]:
                fn = getattr(checks, node["operation"], None)
                if callable(fn):
                    facts = {**request["facts"], **node.get("facts", {})}
                    problems, warnings = fn(node["params"], node["inputs"], facts)
                    out[node["node"]] = {"problems": [list(p) for p in problems],
                                         "warnings": [list(w) for w in warnings]}
    except BaseException as exc:
        return {"ok": False, "error": f"{module} failed: {type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
    return {"ok": True, "nodes": out}


def main(argv: list[str]) -> None:
    """Entry point: prints the result as one JSON line and exits without running plugin atexit hooks."""
    if argv[0] == "--checks":
        folder, package, module = argv[1:4]
        result = check_requests(Path(folder), package, module, json.loads(sys.stdin.read()))
    else:
        folder, package, *operations = argv
        result = check(Path(folder), package, operations)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # threads a plugin started at import must not keep this process alive


if __name__ == "__main__":
    main(sys.argv[1:])
