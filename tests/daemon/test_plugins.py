"""The plugin manager with real parts: a SQLite store in tmp_path, real subprocess validation, real watchfiles."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import msgspec
import pytest
import yaml

from tunelog.daemon.paths import Paths
from tunelog.daemon.plugin_host.manager import PluginManager
from tunelog.daemon.plugin_host.scan import discover
from tunelog.daemon.plugin_host.snapshots import code_hash
from tunelog.events.errors import NotFoundError, PluginError, ValidationError
from tunelog.events.state import PluginRow
from tunelog.plugins.api import OperationSpec
from tunelog.store.sqlite import SqliteStore

BACKEND = '''from .helper import VALUE

VERSION = {version}


def run(ctx, params, inputs):
    return {{"out": VALUE + VERSION}}
'''


def write_plugin(folder: Path, *, name: str | None = None, version: int = 0, ops: tuple[str, ...] = ("run",),
                 backend: str | None = None) -> Path:
    """A small valid plugin: manifest, a backend with a relative import, and its helper module."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": name or folder.name, "version": f"0.{version}", "description": "A test plugin.",
        "operations": {op: {"description": f"Operation {op}.", "resource": "cpu",
                            "outputs": {"out": {"type": "json", "description": "A number."}},
                            "params": {"lr": {"type": "number", "description": "x", "default": 0.1, "maximum": 1}}}
                       for op in ops},
    }
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    (folder / "helper.py").write_text("VALUE = 40\n")
    others = "".join(f"\n\n{op} = run\n" for op in ops if op != "run")
    (folder / "backend.py").write_text(backend if backend is not None else BACKEND.format(version=version) + others)
    return folder


class Env:
    """A data dir with a store and a manager whose built-in dir is an empty temp folder."""

    def __init__(self, tmp_path: Path):
        self.paths = Paths.from_env(tmp_path / "home")
        self.paths.ensure()
        self.builtin = tmp_path / "builtin"
        self.builtin.mkdir()
        self.user = self.paths.user_plugins
        self.store = SqliteStore(self.paths.db)
        self.manager = self.new_manager()

    def new_manager(self) -> PluginManager:
        return PluginManager(self.store, self.paths, builtin_dir=self.builtin)

    def row(self, name: str) -> PluginRow:
        row: PluginRow | None = self.store.get("plugins", name)
        assert row is not None, f"no row for {name}"
        return row

    def types(self, name: str) -> list[str]:
        return [e.type for e in self.store.read(stream=f"plugin-{name}")]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.store.close()


@asynccontextmanager
async def watching(manager: PluginManager) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        await tg.start(manager.watch)
        yield
        tg.cancel_scope.cancel()


async def until(check: Callable[[], bool], *, timeout: float = 10.0) -> float:
    """Poll until `check()` holds; returns the seconds it took."""
    start = time.monotonic()
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.005)
    return time.monotonic() - start


# -- scanning, loading, reloading -----------------------------------------------------------

@pytest.mark.anyio
async def test_scan_registers_plugins_and_an_unchanged_rescan_appends_nothing(env: Env) -> None:
    alpha = write_plugin(env.user / "alpha")
    write_plugin(env.builtin / "beta")
    (env.builtin / "common").mkdir()  # shared code, not a plugin
    (env.builtin / "notes").mkdir()  # no manifest: not a plugin
    await env.manager.scan()
    row = env.row("alpha")
    assert (row.status, row.source, row.version, row.path) == ("loaded", "user", "0.0", str(alpha))
    assert row.code_hash == code_hash(alpha)
    assert (env.paths.plugin_code / row.code_hash / "backend.py").read_bytes() == (alpha / "backend.py").read_bytes()
    assert row.manifest["operations"]["run"]["params"]["lr"]["default"] == 0.1
    assert env.row("beta").source == "builtin"
    assert {r.key for r in env.store.rows("plugins")} == {"alpha", "beta"}
    assert env.types("alpha") == ["plugin-loaded"]

    head = env.store.head()
    await env.manager.scan()
    await env.new_manager().scan()  # a daemon restart
    await env.new_manager().reload()  # even a forced re-check of unchanged, valid code
    assert env.store.head() == head


@pytest.mark.anyio
async def test_load_reload_fail_fix_cycle(env: Env) -> None:
    alpha = write_plugin(env.user / "alpha")
    write_plugin(env.user / "other")
    await env.manager.scan()
    first = env.row("alpha").code_hash

    write_plugin(alpha, version=1)
    await env.manager.scan()
    row = env.row("alpha")
    assert (row.status, row.version, row.loads) == ("loaded", "0.1", 2)
    reloaded = env.store.read(stream="plugin-alpha")[-1].event
    assert reloaded.previous_hash == first and reloaded.code_hash == code_hash(alpha)  # type: ignore[attr-defined]
    good = row.code_hash

    (alpha / "backend.py").write_text("def run(ctx, params, inputs:\n    return {}\n")
    await env.manager.scan()
    row = env.row("alpha")
    assert row.status == "failed" and row.code_hash == good and row.failed_hash == code_hash(alpha)
    assert "SyntaxError" in row.error and "SyntaxError" in row.traceback and "backend.py" in row.traceback
    assert env.manager.resolve("alpha", "run").code_dir == env.paths.plugin_code / good  # last good version serves
    assert env.row("other").status == "loaded" and env.types("other") == ["plugin-loaded"]
    head = env.store.head()
    await env.manager.scan()  # the same broken code is not reported twice
    assert env.store.head() == head

    write_plugin(alpha, version=2)
    rows = await env.manager.reload("alpha")
    assert [(r.status, r.version, r.code_hash) for r in rows] == [("loaded", "0.2", code_hash(alpha))]
    assert env.types("alpha") == ["plugin-loaded", "plugin-reloaded", "plugin-failed", "plugin-reloaded"]


@pytest.mark.anyio
async def test_manifest_problems_are_all_in_the_failure(env: Env) -> None:
    bad = write_plugin(env.user / "bad")
    (bad / "manifest.yaml").write_text(yaml.safe_dump({
        "name": "bad", "version": 2, "description": "x",
        "operations": {"run": {"description": "x", "inputs": {"a": {"type": "tensor", "description": "x"}},
                               "params": {"lr": {"type": "number", "description": "x", "default": "high"}}}}}))
    await env.manager.scan()
    row = env.row("bad")
    assert row.status == "failed" and row.code_hash == ""
    assert {p["where"] for p in row.problems} == {"version", "operations.run.inputs.a.type",
                                                  "operations.run.params.lr.default"}
    assert row.error.startswith("invalid manifest: ") and "(and 2 more)" in row.error
    with pytest.raises(PluginError, match="never loaded"):
        env.manager.resolve("bad", "run")


@pytest.mark.anyio
async def test_import_failures_are_reported_with_what_is_wrong(env: Env) -> None:
    write_plugin(env.user / "fine", backend="print('noise')\ndef run(ctx, params, inputs):\n    return {}\n")
    started = time.monotonic()
    await env.manager.scan()  # how long one throwaway check of a plugin that loads takes here
    timeout = round(min(15.0, max(2.0, 4 * (time.monotonic() - started))))
    write_plugin(env.user / "missing_op", ops=("run", "train"), backend=BACKEND.format(version=0))
    write_plugin(env.user / "exits", backend="import sys\nprint('noise on stdout')\nsys.exit(3)\n")
    write_plugin(env.user / "slow", backend="import time\ntime.sleep(30)\n")
    env.manager.check_timeout_s = timeout
    await env.manager.scan()
    missing = env.row("missing_op")
    assert missing.status == "failed" and "train" in missing.error
    assert missing.problems == [{"where": "operations.train", "message": "backend.py has no function train"}]
    assert "SystemExit: 3" in env.row("exits").error
    assert f"longer than {timeout} s" in env.row("slow").error
    assert env.row("fine").status == "loaded"


@pytest.mark.anyio
async def test_an_error_inside_the_manager_becomes_a_plugin_failure(env: Env) -> None:
    write_plugin(env.user / "alpha")
    manager = PluginManager(env.store, env.paths, builtin_dir=env.builtin, python=str(env.builtin / "no-python"))
    await manager.scan()
    row = env.row("alpha")
    assert row.status == "failed" and row.error.startswith("checking the plugin failed: FileNotFoundError")
    assert "Traceback" in row.traceback
    await env.manager.reload("alpha")  # with a working interpreter it loads
    assert env.row("alpha").status == "loaded"


@pytest.mark.anyio
async def test_plugin_code_never_runs_in_the_daemon_and_writes_no_bytecode(env: Env) -> None:
    alpha = write_plugin(env.user / "alpha")
    await env.manager.scan()
    assert not [m for m in sys.modules if m.startswith("tunelog_plugin_")]
    snap = env.paths.plugin_code / env.row("alpha").code_hash
    assert not list(alpha.rglob("__pycache__")) and not list(snap.rglob("__pycache__"))


@pytest.mark.anyio
async def test_removal_and_resolve_errors(env: Env) -> None:
    alpha = write_plugin(env.user / "alpha", ops=("run", "train"))
    await env.manager.scan()
    resolved = env.manager.resolve("alpha", "train")
    assert resolved.manifest.name == "alpha" and resolved.op.description == "Operation train."
    with pytest.raises(PluginError) as info:
        env.manager.resolve("alpha", "nope")
    assert info.value.hint == "its operations: run, train"
    with pytest.raises(NotFoundError) as nf:
        env.manager.resolve("nope", "run")
    assert nf.value.hint == "known plugins: alpha"

    for f in alpha.iterdir():
        f.unlink()
    alpha.rmdir()
    await env.manager.scan()
    assert env.row("alpha").status == "removed" and env.types("alpha")[-1] == "plugin-removed"
    with pytest.raises(NotFoundError):
        env.manager.resolve("alpha", "run")
    with pytest.raises(NotFoundError):
        await env.manager.reload("ghost")

    write_plugin(alpha)  # back again: loaded anew
    await env.manager.scan()
    assert env.types("alpha")[-1] == "plugin-loaded" and env.row("alpha").status == "loaded"


@pytest.mark.anyio
async def test_duplicate_names_are_refused_naming_both_paths(env: Env) -> None:
    original = write_plugin(env.builtin / "alpha")
    shadow = write_plugin(env.user / "alpha", version=5)
    second = write_plugin(env.user / "alpha_copy", name="alpha", version=6)
    await env.manager.scan()
    row = env.row("alpha")
    assert (row.status, row.path, row.code_hash) == ("loaded", str(original), code_hash(original))
    dups = {r.key: r for r in env.store.rows("plugins") if r.key != "alpha"}
    assert set(dups) == {"alpha@user:alpha", "alpha@user:alpha_copy"}
    for dup, folder in ((dups["alpha@user:alpha"], shadow), (dups["alpha@user:alpha_copy"], second)):
        assert dup.status == "failed" and str(folder) in dup.error and str(original) in dup.error
    head = env.store.head()
    await env.new_manager().scan()
    assert env.store.head() == head

    for f in second.iterdir():
        f.unlink()
    second.rmdir()
    await env.manager.scan()
    assert env.row("alpha@user:alpha_copy").status == "removed" and env.row("alpha").path == str(original)


@pytest.mark.anyio
async def test_the_registered_folder_keeps_its_name_over_an_earlier_one(env: Env) -> None:
    user = write_plugin(env.user / "alpha")
    await env.manager.scan()
    write_plugin(env.builtin / "alpha")  # appears later, though built-ins come first
    await env.manager.scan()
    assert env.row("alpha").path == str(user) and env.row("alpha@builtin:alpha").status == "failed"


# -- watching -------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_thirty_quick_edits_register_the_final_content(env: Env) -> None:
    alpha = write_plugin(env.user / "alpha")
    await env.manager.scan()
    async with watching(env.manager):
        one = []  # the baseline: how long one edit takes to be registered here
        for i in (100, 101):
            (alpha / "backend.py").write_text(BACKEND.format(version=i))
            edited = code_hash(alpha)
            one.append(await until(lambda h=edited: env.row("alpha").code_hash == h))
        for i in range(1, 31):
            (alpha / "backend.py").write_text(BACKEND.format(version=i))
            if i % 3 == 0:  # the manifest changes too, now and then
                manifest = yaml.safe_load((alpha / "manifest.yaml").read_text())
                (alpha / "manifest.yaml").write_text(yaml.safe_dump({**manifest, "version": f"0.{i}"}))
            await anyio.sleep(0.01)
        final = code_hash(alpha)
        took = await until(lambda: env.row("alpha").code_hash == final)
    # At worst the check of an earlier content is under way at the last write, the last writes
    # arrive in two batches, then one more check: a few single edits, however slow the machine.
    assert took < 4 * max(one), f"registered {took:.3f} s after the last write; one edit took {one}"
    snap = env.paths.plugin_code / final / "backend.py"
    assert snap.read_text() == BACKEND.format(version=30)
    assert (env.row("alpha").status, env.row("alpha").version) == ("loaded", "0.30")
    print(f"\nfinal content registered {took * 1000:.0f} ms after the last of 30 writes; "
          f"{len(env.types('alpha')) - 1} reloads")


@pytest.mark.anyio
async def test_watch_fail_and_fix_leave_other_plugins_alone(env: Env) -> None:
    alpha = write_plugin(env.user / "alpha")
    write_plugin(env.user / "other")
    await env.manager.scan()
    good = env.row("alpha").code_hash
    async with watching(env.manager):
        (alpha / "backend.py").write_text("def run(:\n")
        await until(lambda: env.row("alpha").status == "failed")
        assert env.row("alpha").code_hash == good and "SyntaxError" in env.row("alpha").error
        write_plugin(alpha, version=7)
        took = await until(lambda: env.row("alpha").status == "loaded")
        assert env.row("alpha").code_hash == code_hash(alpha)

        write_plugin(env.user / "gamma")  # a new folder
        await until(lambda: env.store.get("plugins", "gamma") is not None
                    and env.row("gamma").code_hash == code_hash(env.user / "gamma"))
    assert env.types("alpha") == ["plugin-loaded", "plugin-failed", "plugin-reloaded"]
    assert env.types("other") == ["plugin-loaded"]
    print(f"\nfix registered {took * 1000:.0f} ms after it was saved")


@pytest.mark.anyio
async def test_watch_survives_folders_and_plugin_dirs_vanishing(env: Env, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    write_plugin(extra / "delta")
    write_plugin(extra / "zeta")
    manager = PluginManager(env.store, env.paths, builtin_dir=env.builtin, extra_dirs=[extra])
    await manager.scan()
    async with watching(manager):
        shutil.rmtree(extra / "delta")
        await until(lambda: env.row("delta").status == "removed")
        shutil.rmtree(extra)  # the whole plugin dir
        await until(lambda: env.row("zeta").status == "removed")
        write_plugin(env.user / "epsilon")  # still watching the other dirs
        await until(lambda: env.store.get("plugins", "epsilon") is not None)
    assert env.row("epsilon").status == "loaded"


def test_builtin_discovery_skips_shared_code() -> None:
    import tunelog.plugins

    root = Path(tunelog.plugins.__file__).parent
    found = [p.name for p, source in discover([(root, "builtin")])]
    assert "common" not in found
    assert all((root / name / "manifest.yaml").is_file() for name in found)


def test_params_and_inputs_through_the_manager(env: Env) -> None:
    op = msgspec.convert({"description": "x", "params": {"lr": {"type": "number", "description": "x", "default": 1}},
                          "inputs": {"data": {"type": "dataset", "description": "x"}}}, OperationSpec)
    assert env.manager.validate_params(op, {"lr": 2}) == {"lr": 2.0}
    with pytest.raises(ValidationError) as info:
        env.manager.validate_params(op, {"lr": "x", "zz": 1}, where="nodes.a.params")
    assert {p["where"] for p in info.value.problems} == {"nodes.a.params.lr", "nodes.a.params.zz"}
    with pytest.raises(ValidationError) as info:
        env.manager.validate_inputs(op, {"zz": 1})
    assert {p["where"] for p in info.value.problems} == {"inputs.zz", "inputs.data"}
