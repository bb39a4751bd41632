"""The plugin manager's edges with real parts (SQLite store in tmp_path, real check processes, real
watchfiles): what a reload returns, what resolve says when something is missing, presets, a plugin
that edits its own folder while it is checked, forcing one plugin, and the watcher's start."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import yaml

from tests.daemon.test_plugins import Env, until, watching, write_plugin
from tunelog.daemon.paths import Paths
from tunelog.daemon.plugin_host.manager import PluginManager
from tunelog.daemon.plugin_host.snapshots import code_hash
from tunelog.events.errors import NotFoundError, PluginError, ValidationError
from tunelog.events.plugins import PluginRemoved
from tunelog.plugins.api import OperationSpec

PRESETS = {"presets": {"fast": {"description": "Fast.", "params": {"lr": 0.5}}}}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.store.close()


def with_presets(folder: Path) -> Path:
    """A valid plugin whose manifest names a presets file (its operation takes a `preset`)."""
    write_plugin(folder)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    manifest["presets"] = "presets.yaml"
    manifest["operations"]["run"]["params"]["preset"] = {"type": "string", "description": "x", "default": ""}
    (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    (folder / "presets.yaml").write_text(yaml.safe_dump(PRESETS))
    return folder


def broken_manifest(folder: Path, **fields: object) -> Path:
    """A plugin whose manifest is valid but for `fields`."""
    write_plugin(folder)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    (folder / "manifest.yaml").write_text(yaml.safe_dump({**manifest, **fields}))
    return folder


@pytest.mark.anyio
async def test_reload_of_everything_returns_every_row_and_an_unknown_name_says_where_plugins_are_read(
        env: Env) -> None:
    write_plugin(env.user / "alpha")
    write_plugin(env.builtin / "beta")
    broken_manifest(env.user / "gamma", version=2)
    delta = write_plugin(env.user / "delta")
    await env.manager.scan()
    shutil.rmtree(delta)
    rows = await env.manager.reload()
    assert [(r.key, r.status) for r in rows] == [("alpha", "loaded"), ("beta", "loaded"), ("delta", "removed"),
                                                 ("gamma", "failed")]
    with pytest.raises(NotFoundError) as info:
        await env.manager.reload("ghost")
    assert info.value.message == "no plugin named 'ghost'"
    # neither a plugin that never loaded nor a removed one is offered
    assert info.value.hint == ("known plugins: alpha, beta; plugin folders are read from "
                               f"{env.builtin.resolve()}, {env.user.resolve()}")


@pytest.mark.anyio
async def test_resolve_names_what_is_missing_and_a_reload_snapshots_the_code_again(env: Env) -> None:
    with pytest.raises(NotFoundError) as nf:
        env.manager.resolve("alpha", "run")
    assert nf.value.message == "no plugin named 'alpha'" and nf.value.hint == "known plugins: none"

    bad = broken_manifest(env.user / "bad", version=2)
    await env.manager.scan()
    row = env.row("bad")
    with pytest.raises(PluginError) as never:
        env.manager.resolve("bad", "run")
    assert never.value.message == f"plugin 'bad' has never loaded: {row.error}"
    assert never.value.problems == row.problems == [{"where": "version", "message": row.problems[0]["message"]}]
    assert never.value.hint == "fix it and save; `tunectl plugins` shows what is wrong"
    shutil.rmtree(bad)

    write_plugin(env.user / "alpha")
    await env.manager.scan()
    digest = env.row("alpha").code_hash
    resolved = env.manager.resolve("alpha", "run")
    assert (resolved.row, resolved.code_dir) == (env.row("alpha"), env.paths.plugin_code / digest)
    with pytest.raises(PluginError) as no_op:
        env.manager.resolve("alpha", "train")
    assert no_op.value.message == "plugin 'alpha' has no operation 'train'" and no_op.value.hint == "its operations: run"
    shutil.rmtree(env.paths.plugin_code / digest)
    with pytest.raises(PluginError) as missing:
        env.manager.resolve("alpha", "run")
    assert missing.value.message == (f"the code of plugin 'alpha' ({digest[:12]}) is missing from "
                                     f"{env.paths.plugin_code}")
    assert missing.value.hint == "reload the plugin to snapshot its folder again"
    head = env.store.head()
    for reload in (env.manager.reload, lambda: env.manager.reload("alpha")):  # all, or the one plugin
        shutil.rmtree(env.paths.plugin_code / digest, ignore_errors=True)
        await reload()
        assert env.manager.resolve("alpha", "run").code_dir == env.paths.plugin_code / digest
        assert (env.paths.plugin_code / digest / "backend.py").is_file() and env.store.head() == head


@pytest.mark.anyio
async def test_one_manifest_problem_is_the_error_and_two_say_one_more(env: Env) -> None:
    folder = broken_manifest(env.user / "one", version=2)
    broken_manifest(env.user / "two", version=2, description=3)
    await env.manager.scan()
    one, two = env.row("one"), env.row("two")
    assert (one.status, one.path) == ("failed", str(folder))
    assert [p["where"] for p in one.problems] == ["version"]
    assert one.error == f"invalid manifest: version: {one.problems[0]['message']}"
    assert sorted(p["where"] for p in two.problems) == ["description", "version"]
    first = two.problems[0]
    assert two.error == f"invalid manifest: {first['where']}: {first['message']} (and 1 more)"


@pytest.mark.anyio
async def test_presets_come_from_loaded_plugins_only(env: Env) -> None:
    tuned = with_presets(env.user / "tuned")
    write_plugin(env.user / "plain")
    gone = with_presets(env.user / "gone")
    await env.manager.scan()
    assert env.manager.presets() == {"tuned": PRESETS["presets"], "gone": PRESETS["presets"]}
    assert env.manager.resolve("tuned", "run").presets() == PRESETS["presets"]
    assert env.manager.resolve("plain", "run").presets() == {}

    shutil.rmtree(gone)
    never = with_presets(env.user / "never")
    (never / "backend.py").write_text("raise ImportError('no')\n")
    await env.manager.scan()
    assert env.row("gone").status == "removed" and env.row("never").status == "failed"
    assert env.manager.presets() == {"tuned": PRESETS["presets"]}

    (tuned / "backend.py").write_text("def run(:\n")  # broken now: its last good version keeps serving
    await env.manager.scan()
    assert env.row("tuned").status == "failed" and env.manager.presets() == {"tuned": PRESETS["presets"]}


@pytest.mark.anyio
async def test_a_removal_is_recorded_once_with_the_folder_it_had(env: Env) -> None:
    alpha = write_plugin(env.user / "alpha")
    await env.manager.scan()
    shutil.rmtree(alpha)
    await env.manager.scan()
    removed = env.store.read(stream="plugin-alpha")[-1]
    assert (removed.type, removed.event) == ("plugin-removed", PluginRemoved(name="alpha", path=str(alpha)))
    head = env.store.head()
    await env.manager.scan()
    await env.manager.reload()
    assert env.store.head() == head


@pytest.mark.anyio
async def test_reloading_one_plugin_re_checks_only_that_one(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    write_plugin(env.user / "alpha")
    write_plugin(env.user / "beta")
    no_python = PluginManager(env.store, env.paths, builtin_dir=env.builtin, python=str(env.builtin / "no-python"))
    with caplog.at_level(logging.WARNING, logger="tunelog.daemon.plugin_host.manager"):
        await no_python.scan()
    assert env.row("alpha").status == env.row("beta").status == "failed"
    assert f"plugin alpha failed: {env.row('alpha').error}" in caplog.messages

    alpha = env.row("alpha")
    assert alpha.path == str(env.user / "alpha") and env.types("alpha") == ["plugin-failed"]
    assert f"checking plugin folder {env.user / 'alpha'} failed" in caplog.messages

    rows = await env.manager.reload("alpha")
    assert [(r.key, r.status) for r in rows] == [("alpha", "loaded")]
    assert env.row("beta").status == "failed"  # unchanged code that failed is not checked again unasked


@pytest.mark.anyio
async def test_a_check_imports_the_plugin_under_the_package_its_jobs_use(env: Env) -> None:
    write_plugin(env.user / "my_plugin", backend="assert __package__ == 'tunelog_plugin_my_plugin', __package__\n"
                                                 "def run(ctx, params, inputs):\n    return {}\n")
    await env.manager.scan()
    assert env.row("my_plugin").status == "loaded", env.row("my_plugin").error


SELF_EDITING = '''import pathlib

LIVE = pathlib.Path({live!r})
with open({log!r}, "a") as f:
    f.write("imported\\n")
marks = sorted(LIVE.glob("mark*.txt"))
if {every} or not marks:
    (LIVE / f"mark{{len(marks)}}.txt").write_text("checked\\n")


def run(ctx, params, inputs):
    return {{}}
'''


COUNTED = '''with open({log!r}, "a") as f:
    f.write("imported\\n")


def run(ctx, params, inputs):
    return {{}}
'''


@pytest.mark.anyio
async def test_code_edited_while_it_is_checked_is_never_registered(env: Env, tmp_path: Path) -> None:
    # The plugin's own import (in the check process) adds a file to its live folder, once.
    live, log = env.user / "alpha", tmp_path / "imports.log"
    write_plugin(live, backend=SELF_EDITING.format(live=str(live), log=str(log), every=False))
    other = tmp_path / "other.log"
    write_plugin(env.user / "other", backend=COUNTED.format(log=str(other)))
    await env.manager.scan()
    assert (live / "mark0.txt").is_file() and log.read_text() == "imported\n" * 2
    assert other.read_text() == "imported\n"  # the second pass re-checks only the folder that changed
    row = env.row("alpha")
    assert row.code_hash == code_hash(live) and (env.paths.plugin_code / row.code_hash / "mark0.txt").is_file()
    assert env.types("alpha") == ["plugin-loaded"]


@pytest.mark.anyio
async def test_a_plugin_that_changes_at_every_check_is_checked_a_bounded_number_of_times(
        env: Env, tmp_path: Path) -> None:
    live, log = env.user / "alpha", tmp_path / "imports.log"
    write_plugin(live, backend=SELF_EDITING.format(live=str(live), log=str(log), every=True))
    env.manager.max_passes = 3
    await env.manager.scan()
    assert log.read_text() == "imported\n" * 3 and len(list(live.glob("mark*.txt"))) == 3
    assert env.store.get("plugins", "alpha") is None  # no stale code registered


@pytest.mark.anyio
async def test_an_edit_re_checks_only_the_edited_plugin(env: Env, tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    write_plugin(env.user / "counted", backend=COUNTED.format(log=str(log)))
    alpha = write_plugin(env.user / "alpha")
    await env.manager.scan()
    async with watching(env.manager):
        write_plugin(alpha, version=1)
        await until(lambda: env.row("alpha").version == "0.1")
        (alpha / "backend.py").write_text("def run(:\n")
        await until(lambda: env.row("alpha").status == "failed")
    assert log.read_text() == "imported\n"
    assert env.types("counted") == ["plugin-loaded"]


@pytest.mark.anyio
async def test_the_watcher_makes_the_plugin_folder_and_looks_at_what_changed_before_it_started(
        env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    paths = Paths.from_env(tmp_path / "new-home")  # a home not made yet: the watcher makes its plugin folder
    manager = PluginManager(env.store, paths, builtin_dir=env.builtin)
    await manager.scan()
    write_plugin(env.builtin / "early")  # after the scan, before the watcher: no change event will report it
    with caplog.at_level(logging.WARNING):
        async with watching(manager):
            await until(lambda: env.store.get("plugins", "early") is not None)
            assert paths.user_plugins.is_dir()
            write_plugin(paths.user_plugins / "later")
            await until(lambda: env.store.get("plugins", "later") is not None)
    assert env.row("early").status == env.row("later").status == "loaded"
    assert env.row("later").code_hash == code_hash(paths.user_plugins / "later")
    assert caplog.messages == []  # the watcher never failed and restarted


def test_params_and_inputs_are_named_by_default_at_params_and_inputs(env: Env) -> None:
    op = msgspec.convert({"description": "x", "params": {"lr": {"type": "number", "description": "x", "default": 1}},
                          "inputs": {"data": {"type": "dataset", "description": "x"}}}, OperationSpec)
    with pytest.raises(ValidationError) as params:
        env.manager.validate_params(op, {"lr": "x"})
    assert [p["where"] for p in params.value.problems] == ["params.lr"]
    with pytest.raises(ValidationError) as inputs:
        env.manager.validate_inputs(op, {}, where="nodes.a.inputs")
    assert [p["where"] for p in inputs.value.problems] == ["nodes.a.inputs.data"]


@pytest.mark.anyio
async def test_a_folder_that_cannot_be_read_fails_with_the_reason_until_it_is_fixed(env: Env) -> None:
    alpha = write_plugin(env.user / "alpha")
    (alpha / "data.txt").symlink_to(alpha / "nowhere.txt")  # listed, but reading it fails
    await env.manager.scan()
    row = env.row("alpha")
    assert (row.status, row.path, row.code_hash, row.failed_hash) == ("failed", str(alpha), "", "")
    assert row.error.startswith("the plugin folder could not be read: ") and str(alpha / "data.txt") in row.error
    assert env.types("alpha") == ["plugin-failed"]
    head = env.store.head()
    await env.manager.scan()
    assert env.store.head() == head  # the same failure is not reported twice
    (alpha / "data.txt").unlink()
    await env.manager.scan()
    assert env.row("alpha").status == "loaded" and env.types("alpha") == ["plugin-failed", "plugin-loaded"]


@pytest.mark.anyio
async def test_a_plugin_dir_made_after_the_watcher_started_is_watched(env: Env, tmp_path: Path) -> None:
    later, extra = tmp_path / "later", tmp_path / "extra"  # e.g. TUNELOG_PLUGIN_DIRS entries
    write_plugin(extra / "zeta")
    manager = PluginManager(env.store, env.paths, builtin_dir=env.builtin, extra_dirs=[later, extra])
    await manager.scan()
    async with watching(manager):
        write_plugin(later / "theta")
        await until(lambda: env.store.get("plugins", "theta") is not None)
        shutil.rmtree(extra)
        await until(lambda: env.row("zeta").status == "removed")
        write_plugin(extra / "eta")  # made again
        await until(lambda: env.store.get("plugins", "eta") is not None)
        (later / "theta" / "helper.py").write_text("VALUE = 41\n")  # and still watching the first
        await until(lambda: env.row("theta").code_hash == code_hash(later / "theta"))
    assert env.row("theta").status == env.row("eta").status == "loaded"
