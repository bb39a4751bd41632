"""Importing a plugin's code out of the daemon (daemon/plugin_host/check.py) with real plugin folders on
tmp_path: the child's side (`check`, `check_requests`, `main`, `import_backend`) called in this process,
and the daemon's side (`run_check`, `run_checks`) with a real throwaway process, its timeouts and the
answers of a child that dies or prints something else."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tunelog.daemon.plugin_host import check as C
from tunelog.daemon.plugin_host.check import (
    CheckResult,
    check,
    check_requests,
    import_backend,
    run_check,
    run_checks,
)

PKG = "tunelog_test_check_pkg"


@pytest.fixture(autouse=True)
def forget_plugin_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test imports its own folder under the same package names; none stays imported after it,
    and the interpreter writes bytecode again as it did (`import_backend` turns that off)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)
    yield
    for name in [m for m in sys.modules if m.startswith(PKG)]:
        del sys.modules[name]


def plugin(tmp_path: Path, backend: str, **files: str) -> Path:
    folder = tmp_path / "plug"
    folder.mkdir(exist_ok=True)
    (folder / "backend.py").write_text(backend)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


GOOD = "from .helper import VALUE\n\n\ndef train(ctx, params, inputs):\n    return VALUE\n\n\nevaluate = train\n"
HELPER = "VALUE = 42\n"


# -- the child's side, in this process --------------------------------------------------------

def test_import_backend_loads_the_folder_as_a_package_without_bytecode(tmp_path: Path) -> None:
    folder = plugin(tmp_path, GOOD, **{"helper.py": HELPER})
    backend = import_backend(folder, PKG)
    assert backend.__name__ == f"{PKG}.backend" and backend.train(None, {}, {}) == 42
    assert sys.modules[PKG].__path__ == [str(folder)] and sys.dont_write_bytecode is True
    assert not list(folder.rglob("__pycache__"))
    assert import_backend(folder, PKG, "helper").VALUE == 42  # another module of the same folder


def test_a_package_init_runs_first(tmp_path: Path) -> None:
    folder = plugin(tmp_path, "from . import SHARED\n\n\ndef train(ctx, params, inputs):\n    return SHARED\n",
                    **{"__init__.py": "SHARED = 'from init'\n"})
    backend = import_backend(folder, PKG + "_init")
    assert backend.train(None, {}, {}) == "from init" and sys.modules[PKG + "_init"].SHARED == "from init"


def test_check_finds_every_operation(tmp_path: Path) -> None:
    folder = plugin(tmp_path, GOOD + "\nnot_a_function = 3\n", **{"helper.py": HELPER})
    assert check(folder, PKG, ["train", "evaluate"]) == {"ok": True}
    for name in [m for m in sys.modules if m.startswith(PKG)]:
        del sys.modules[name]
    assert check(folder, PKG, ["train", "merge", "not_a_function"]) == {
        "ok": False, "missing": ["merge", "not_a_function"],
        "error": "backend.py does not define the operation(s) merge, not_a_function as functions"}


@pytest.mark.parametrize(("code", "error"), [
    ("raise RuntimeError('boom')\n", "backend.py failed to import: RuntimeError: boom"),
    ("import sys\nsys.exit(3)\n", "backend.py failed to import: SystemExit: 3"),
    ("def train(:\n", "backend.py failed to import: SyntaxError: "),
    ("from .missing import x\n", "backend.py failed to import: ModuleNotFoundError: "),
])
def test_a_backend_that_fails_to_import_is_reported_with_its_traceback(tmp_path: Path, code: str, error: str) -> None:
    got = check(plugin(tmp_path, code), PKG, ["train"])
    assert set(got) == {"ok", "error", "traceback"} and got["ok"] is False
    assert got["error"].startswith(error)
    assert got["traceback"].startswith("Traceback (most recent call last)") and "backend.py" in got["traceback"]


def test_what_plugin_code_prints_never_reaches_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = plugin(tmp_path, "print('hello from import')\n\n\ndef train(ctx, params, inputs):\n    return 1\n",
                    **{"checks.py": "def train(params, inputs, facts):\n    print('hello from checks')\n"
                                    "    return [], []\n"})
    assert check(folder, PKG, ["train"]) == {"ok": True}
    request = {"facts": {}, "nodes": [{"node": "a", "operation": "train", "params": {}, "inputs": {}}]}
    assert check_requests(folder, PKG, "checks.py", request)["ok"] is True
    out, err = capsys.readouterr()
    assert out == "" and "hello from import" in err and "hello from checks" in err


CHECKS = """
def train(params, inputs, facts):
    return [("size", f"{params['size']} > {facts['limit']}")] if params["size"] > facts["limit"] else [], \\
        [("facts", repr(sorted(facts.items())))] + [("inputs", repr(inputs))] * bool(inputs)


evaluate = 3  # not a function: no checks for this operation
"""


def request(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"facts": {"limit": 4, "cuda": False}, "nodes": list(nodes)}


def node(name: str, operation: str, size: int, **facts: Any) -> dict[str, Any]:
    return {"node": name, "operation": operation, "params": {"size": size}, "inputs": {},
            **({"facts": facts} if facts else {})}


def test_check_requests_answers_per_node_with_its_own_facts_over_the_shared_ones(tmp_path: Path) -> None:
    folder = plugin(tmp_path, GOOD, **{"checks.py": CHECKS})
    got = check_requests(folder, PKG, "checks.py", request(
        node("a", "train", 5), node("b", "train", 5, limit=9, consumers=["c"]), node("c", "evaluate", 1),
        node("d", "merge", 1), {**node("e", "train", 1), "inputs": {"model": "/m"}}))
    assert got == {"ok": True, "nodes": {
        "a": {"problems": [["size", "5 > 4"]], "warnings": [["facts", "[('cuda', False), ('limit', 4)]"]]},
        "b": {"problems": [], "warnings": [["facts", "[('consumers', ['c']), ('cuda', False), ('limit', 9)]"]]},
        "e": {"problems": [], "warnings": [["facts", "[('cuda', False), ('limit', 4)]"], ["inputs", "{'model': '/m'}"]]},
    }}
    assert check_requests(folder, PKG, "checks", request(node("a", "train", 1)))["nodes"] == {
        "a": {"problems": [], "warnings": [["facts", "[('cuda', False), ('limit', 4)]"]]}}


@pytest.mark.parametrize(("code", "error"), [
    ("def train(params, inputs, facts):\n    raise ValueError('bad')\n", "checks.py failed: ValueError: bad"),
    ("def train(params, inputs, facts):\n    return []\n", "checks.py failed: ValueError: not enough values"),
    ("raise SystemExit(2)\n", "checks.py failed: SystemExit: 2"),
])
def test_a_failing_checks_module_is_an_answer_not_a_crash(tmp_path: Path, code: str, error: str) -> None:
    folder = plugin(tmp_path, GOOD, **{"checks.py": code})
    got = check_requests(folder, PKG, "checks.py", request(node("a", "train", 1)))
    assert set(got) == {"ok", "error", "traceback"} and got["ok"] is False and got["error"].startswith(error)
    assert got["traceback"].startswith("Traceback (most recent call last)")


class Exited(Exception):
    pass


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
             stdin: str = "") -> tuple[str, int]:
    """`main` as the child runs it; `os._exit` (which would end this test process) raises instead."""
    def _exit(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(os, "_exit", _exit)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(Exited) as info:
        C.main(argv)
    return capsys.readouterr().out, info.value.args[0]


def test_main_prints_one_result_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = plugin(tmp_path, GOOD, **{"helper.py": HELPER, "checks.py": CHECKS})
    out, code = run_main(monkeypatch, capsys, [str(folder), PKG, "train", "evaluate"])
    assert (out, code) == ('\n{"ok": true}\n', 0)
    for name in [m for m in sys.modules if m.startswith(PKG)]:
        del sys.modules[name]
    out, code = run_main(monkeypatch, capsys, [str(folder), PKG, "train", "merge"])
    assert json.loads(out.splitlines()[-1])["missing"] == ["merge"] and code == 0
    out, code = run_main(monkeypatch, capsys, ["--checks", str(folder), PKG + "_c", "checks.py"],
                         json.dumps(request(node("a", "train", 5))))
    assert out.startswith("\n") and out.endswith("\n") and code == 0
    assert json.loads(out.strip()) == {"ok": True, "nodes": {"a": {
        "problems": [["size", "5 > 4"]], "warnings": [["facts", "[('cuda', False), ('limit', 4)]"]]}}}


# -- the daemon's side: a real throwaway process -----------------------------------------------

def imported(folder: Path, operations: list[str], timeout: float = 60) -> CheckResult:
    async def go() -> CheckResult:
        return await run_check(sys.executable, folder, package=PKG, operations=operations, timeout=timeout)
    return anyio.run(go)


def checked(folder: Path, req: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        return await run_checks(sys.executable, folder, package=PKG, module="checks.py", request=req, timeout=timeout)
    return anyio.run(go)


def test_run_check_imports_in_the_snapshot_folder_shadowing_nothing(tmp_path: Path) -> None:
    backend = ("import json\nfrom pathlib import Path\n\n"
               "assert Path.cwd() == Path(__file__).parent, 'runs in its own folder'\n\n\n"
               "def train(ctx, params, inputs):\n    return json.dumps({})\n")
    folder = plugin(tmp_path, backend, **{"json.py": "raise ImportError('a plugin module shadowed the stdlib')\n"})
    assert imported(folder, ["train"]) == CheckResult(True)
    assert not list(folder.rglob("__pycache__"))
    got = imported(folder, ["train", "merge"])
    assert got == CheckResult(False, error="backend.py does not define the operation(s) merge as functions",
                              missing=("merge",))
    broken = imported(plugin(tmp_path, "raise RuntimeError('boom')\n"), ["train"])
    assert not broken.ok and broken.error == "backend.py failed to import: RuntimeError: boom"
    assert "RuntimeError: boom" in broken.traceback and broken.missing == ()


def test_run_check_without_a_result_line_says_how_the_child_ended(tmp_path: Path) -> None:
    died = imported(plugin(tmp_path, "import os, sys\nsys.stderr.write('dying now\\n')\nos._exit(3)\n"), ["train"])
    assert died == CheckResult(False, error="the import check exited with status 3 and no result",
                               traceback="dying now\n")
    garbled = imported(plugin(tmp_path, "import os\nos.write(1, b'\\xff\\n')\nos.write(2, b'\\xfe')\nos._exit(5)\n"),
                       ["train"])  # not UTF-8: read with replacement characters
    assert garbled == CheckResult(False, error="the import check exited with status 5 and no result",
                                  traceback="\ufffd")
    odd = imported(plugin(tmp_path, "import os\nos.write(1, b'[1, 2]\\n')\nos._exit(0)\n"), ["train"])
    assert odd.error == "the import check exited with status 0 and no result"
    long = imported(plugin(tmp_path, "import os, sys\nsys.stderr.write('x' * 5000 + 'END')\nos._exit(1)\n"), ["train"])
    assert long.traceback == "x" * 3997 + "END"  # the end of what it wrote, at most 4000 characters


def test_run_check_gives_up_after_its_timeout(tmp_path: Path) -> None:
    got = imported(plugin(tmp_path, "import time\ntime.sleep(30)\n"), ["train"], timeout=0.5)
    assert got == CheckResult(False, error="importing backend.py took longer than 0.5 s")


def test_run_checks_answers_per_node(tmp_path: Path) -> None:
    in_own_folder = "from pathlib import Path\n\nassert Path.cwd() == Path(__file__).parent, 'runs in its own folder'\n"
    folder = plugin(tmp_path, GOOD, **{"checks.py": "import json\n" + in_own_folder + CHECKS,
                                       "json.py": "raise ImportError('a plugin module shadowed the stdlib')\n"})
    assert checked(folder, request(node("a", "train", 5), node("c", "evaluate", 9))) == {"ok": True, "nodes": {
        "a": {"problems": [["size", "5 > 4"]], "warnings": [["facts", "[('cuda', False), ('limit', 4)]"]]}}}


def test_run_checks_without_a_result_line_says_how_the_child_ended(tmp_path: Path) -> None:
    folder = plugin(tmp_path, GOOD, **{"checks.py": "import os, sys\nsys.stderr.write('first\\nsecond\\nlast words\\n')\n"
                                                    "os._exit(2)\n"})
    assert checked(folder, request()) == {"ok": False,
                                          "error": "the checks exited with status 2 and no result: last words"}
    (folder / "checks.py").write_text("import os\nos.write(1, b'\\xff\\n')\nos.write(2, b'\\xfe')\nos._exit(6)\n")
    assert checked(folder, request()) == {"ok": False,  # not UTF-8: read with replacement characters
                                          "error": "the checks exited with status 6 and no result: \ufffd"}
    (folder / "checks.py").write_text("import os\nos._exit(4)\n")
    assert checked(folder, request()) == {"ok": False, "error": "the checks exited with status 4 and no result"}
    (folder / "checks.py").write_text("import os\nos.write(1, b'\"text\"\\n')\nos._exit(0)\n")
    assert checked(folder, request()) == {"ok": False, "error": "the checks exited with status 0 and no result"}


def test_run_checks_gives_up_after_its_timeout(tmp_path: Path) -> None:
    folder = plugin(tmp_path, GOOD, **{"checks.py": "import time\n\n\ndef train(params, inputs, facts):\n"
                                                    "    time.sleep(30)\n"})
    assert checked(folder, request(node("a", "train", 1)), timeout=0.5) == {
        "ok": False, "error": "the plugin's checks took longer than 0.5 s"}
