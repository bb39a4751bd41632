"""Finding plugin folders and deciding what each one registers as (daemon/plugin_host/scan.py), with real
folders on tmp_path and real PluginRows: which folders count, what is re-read, who keeps a name, and
which event a folder's state calls for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import yaml

from tunelog.daemon.plugin_host.check import CheckResult
from tunelog.daemon.plugin_host.scan import (
    Folder,
    assign_keys,
    discover,
    duplicate,
    outcome,
    read_folder,
    repeats,
    survey,
    unchanged,
)
from tunelog.daemon.plugin_host.snapshots import code_hash
from tunelog.events.plugins import PluginFailed, PluginLoaded, PluginReloaded, PluginRemoved
from tunelog.events.state import PluginRow
from tunelog.plugins.api import Manifest

MANIFEST = {"name": "alpha", "version": "1.2", "description": "d", "operations": {"run": {"description": "r"}}}


def folder(root: Path, dirname: str, name: str | None = None, text: str | None = None) -> Path:
    path = root / dirname
    path.mkdir(parents=True)
    (path / "manifest.yaml").write_text(text if text is not None else yaml.safe_dump({**MANIFEST, "name": name or dirname}))
    (path / "backend.py").write_text("def run(ctx, params, inputs):\n    return {}\n")
    return path


def row(key: str, path: Path, status: str = "loaded", **fields: Any) -> PluginRow:
    return PluginRow(key=key, name=key, status=status, path=str(path), **fields)


def test_discover_finds_plugin_folders_in_root_order_then_by_name(tmp_path: Path) -> None:
    builtin, user = tmp_path / "builtin", tmp_path / "user"
    b = folder(builtin, "zeta")
    a = folder(user, "beta")
    c = folder(user, "alpha")
    for skipped in (".hidden", "_private", "common", "__pycache__"):
        folder(user, skipped, name="skipped")
    (user / "no_manifest").mkdir()
    (user / "loose.yaml").write_text("name: loose\n")
    (user / "manifest.yaml").write_text("name: root\n")  # a root's own manifest is no plugin folder
    got = discover([(builtin, "builtin"), (tmp_path / "missing", "user"), (user, "user"), (user, "user")])
    assert got == [(b, "builtin"), (c, "user"), (a, "user")]  # a root given twice counts once


def test_read_folder_hashes_it_and_reads_its_declared_name(tmp_path: Path) -> None:
    path = folder(tmp_path, "dir", name="alpha")
    got = read_folder(path, "user")
    assert got == Folder(path, "user", digest=code_hash(path), name="alpha")
    broken = folder(tmp_path, "broken", text="name: [unclosed\n")
    assert read_folder(broken, "builtin") == Folder(broken, "builtin", digest=code_hash(broken), name="")
    (path / "gone.py").symlink_to(tmp_path / "nowhere.py")  # listed, but cannot be read
    unreadable = read_folder(path, "user")
    assert (unreadable.path, unreadable.source, unreadable.digest, unreadable.name) == (path, "user", "", "")
    assert unreadable.error.startswith("the plugin folder could not be read: [Errno 2] No such file or directory")


def test_survey_re_reads_only_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "user"
    a, b = folder(root, "a"), folder(root, "b")
    cache: dict[Path, Folder] = {}
    first = survey([(root, "user")], cache, set())
    assert [(f.path, f.name, f.key, f.owner) for f in first] == [(a, "a", "", None), (b, "b", "", None)]
    assert set(cache) == {a, b}
    first[0].key = "changed by a pass"
    (a / "backend.py").write_text("# edited\n")
    (b / "backend.py").write_text("# edited\n")
    again = survey([(root, "user")], cache, {b})  # only b was reported changed
    assert [f.digest for f in again] == [first[0].digest, code_hash(b)] and again[0].key == ""
    everything = survey([(root, "user")], cache, None)
    assert [f.digest for f in everything] == [code_hash(a), code_hash(b)]
    (a / "backend.py").write_text("# edited twice\n")
    moved = survey([(root, "builtin")], cache, set())  # the same folder under another source is read again
    assert [(f.source, f.digest) for f in moved] == [("builtin", code_hash(a)), ("builtin", code_hash(b))]
    for p in b.iterdir():
        p.unlink()
    b.rmdir()
    assert [f.path for f in survey([(root, "builtin")], cache, set())] == [a] and set(cache) == {a}


def keys(folders: list[Folder]) -> list[tuple[str, Path | None]]:
    return [(f.key, f.owner) for f in folders]


def test_the_first_folder_keeps_a_name_and_the_others_get_keys_of_their_own(tmp_path: Path) -> None:
    builtin = Folder(tmp_path / "b" / "alpha", "builtin", name="alpha")
    user = Folder(tmp_path / "u" / "alpha", "user", name="alpha")
    copy = Folder(tmp_path / "u" / "alpha_copy", "user", name="alpha")
    other = Folder(tmp_path / "u" / "beta", "user", name="beta")
    folders = [builtin, user, copy, other]
    assign_keys(folders, {})
    assert keys(folders) == [("alpha", None), ("alpha@user:alpha", builtin.path),
                             ("alpha@user:alpha_copy", builtin.path), ("beta", None)]


def test_the_registered_folder_keeps_its_name(tmp_path: Path) -> None:
    builtin = Folder(tmp_path / "b" / "alpha", "builtin", name="alpha")
    user = Folder(tmp_path / "u" / "alpha", "user", name="alpha")
    assign_keys([builtin, user], {"alpha": row("alpha", user.path)})
    assert keys([builtin, user]) == [("alpha@builtin:alpha", user.path), ("alpha", None)]
    builtin, user = (Folder(f.path, f.source, name="alpha") for f in (builtin, user))  # as `survey` gives them
    assign_keys([builtin, user], {"alpha": row("alpha", user.path, status="removed")})
    assert keys([builtin, user]) == [("alpha", None), ("alpha@user:alpha", builtin.path)]


def test_a_folder_that_cannot_name_itself_keeps_its_registration(tmp_path: Path) -> None:
    named = Folder(tmp_path / "u" / "alpha", "user", name="alpha")
    broken = Folder(tmp_path / "x" / "alpha", "user")  # its manifest no longer says its name
    rows = {"alpha": row("alpha", named.path), "alpha@user:alpha": row("alpha@user:alpha", broken.path)}
    assign_keys([broken, named], rows)
    assert keys([broken, named]) == [("alpha@user:alpha", named.path), ("alpha", None)]
    new = Folder(tmp_path / "u" / "gamma", "user")  # never registered: the folder's name
    gone = Folder(tmp_path / "u" / "delta", "user")
    assign_keys([new, gone], {"old": row("old@user:delta", gone.path, status="removed")})
    assert keys([new, gone]) == [("gamma", None), ("delta", None)]
    renamed = Folder(tmp_path / "u" / "beta_dir", "user")  # registered as `beta`, a name unlike its folder's
    assign_keys([renamed], {"beta": row("beta", renamed.path)})
    assert keys([renamed]) == [("beta", None)]
    unnamed_first = Folder(tmp_path / "a" / "alpha", "builtin")
    named_second = Folder(tmp_path / "b" / "alpha", "user", name="alpha")
    assign_keys([unnamed_first, named_second], {})
    assert keys([unnamed_first, named_second]) == [("alpha@builtin:alpha", named_second.path), ("alpha", None)]


def test_colliding_duplicate_keys_are_numbered(tmp_path: Path) -> None:
    folders = [Folder(tmp_path / r / "alpha_copy", "user", name="alpha") for r in ("x", "y", "z", "w")]
    assign_keys(folders, {})
    assert [f.key for f in folders] == ["alpha", "alpha@user:alpha_copy", "alpha@user:alpha_copy#2",
                                        "alpha@user:alpha_copy#3"]
    folders = [Folder(tmp_path / r / "alpha_copy", "user", name="alpha") for r in ("x", "y", "z")]
    taken = Folder(tmp_path / "w" / "thing", "user", name="alpha@user:alpha_copy#2")
    assign_keys([*folders, taken], {})
    assert [f.key for f in folders] == ["alpha", "alpha@user:alpha_copy", "alpha@user:alpha_copy#3"]


MANIFEST_STRUCT = msgspec.convert(MANIFEST, Manifest)


def test_outcome_of_a_checked_folder(tmp_path: Path) -> None:
    f = Folder(tmp_path / "alpha", "builtin", digest="d1", name="alpha", key="alpha")
    loaded = outcome(f, None, "d2", MANIFEST_STRUCT, CheckResult(True))
    assert loaded == PluginLoaded(name="alpha", version="1.2", code_hash="d2", path=str(f.path), source="builtin",
                                  manifest=msgspec.to_builtins(MANIFEST_STRUCT))
    assert outcome(f, row("alpha", f.path, status="removed", code_hash="d0"), "d2", MANIFEST_STRUCT,
                   CheckResult(True)) == loaded
    assert outcome(f, row("alpha", f.path, status="failed"), "d2", MANIFEST_STRUCT, CheckResult(True)) == loaded
    reloaded = outcome(f, row("alpha", f.path, status="failed", code_hash="d0"), "d2", MANIFEST_STRUCT,
                       CheckResult(True))
    assert reloaded == PluginReloaded(name="alpha", version="1.2", code_hash="d2", previous_hash="d0",
                                      path=str(f.path), source="builtin", manifest=msgspec.to_builtins(MANIFEST_STRUCT))
    failed = outcome(f, None, "d2", MANIFEST_STRUCT, CheckResult(False, error="no", traceback="tb", missing=("a", "b")))
    assert failed == PluginFailed(name="alpha", path=str(f.path), code_hash="d2", error="no", traceback="tb",
                                  problems=[{"where": "operations.a", "message": "backend.py has no function a"},
                                            {"where": "operations.b", "message": "backend.py has no function b"}])


def test_a_duplicate_is_refused_naming_both_folders(tmp_path: Path) -> None:
    f = Folder(tmp_path / "u" / "alpha", "user", digest="d1", name="alpha", key="alpha@user:alpha",
               owner=tmp_path / "b" / "alpha")
    assert duplicate(f) == PluginFailed(
        name="alpha@user:alpha", path=str(f.path), code_hash="d1",
        error=f"duplicate plugin name 'alpha': {f.path} declares it but {f.owner} already provides it; "
              f"{f.path} is ignored",
        problems=[{"where": "name", "message": f"'alpha' is already provided by {f.owner}"}])
    at = Folder(tmp_path / "u" / "copy@2", "user", name="alpha", key="alpha@user:copy@2", owner=f.owner)
    assert duplicate(at).problems == [{"where": "name", "message": f"'alpha' is already provided by {f.owner}"}]


def test_unchanged_means_the_registration_holds_exactly_this_content(tmp_path: Path) -> None:
    f = Folder(tmp_path / "alpha", "user", digest="d1", key="alpha")
    assert not unchanged(None, f)
    assert unchanged(row("alpha", f.path, code_hash="d1"), f)
    assert not unchanged(row("alpha", tmp_path / "other", code_hash="d1"), f)
    assert not unchanged(row("alpha", f.path, code_hash="d0"), f)
    assert unchanged(row("alpha", f.path, status="failed", code_hash="d0", failed_hash="d1"), f)
    assert not unchanged(row("alpha", f.path, status="failed", code_hash="d1", failed_hash="d0"), f)
    assert not unchanged(row("alpha", f.path, status="removed", code_hash="d1", failed_hash="d1"), f)


def test_repeats_means_the_event_tells_the_log_nothing_new(tmp_path: Path) -> None:
    path = tmp_path / "alpha"
    failed = PluginFailed(name="alpha", path=str(path), code_hash="d1", error="boom")
    loaded = PluginLoaded(name="alpha", version="1", code_hash="d1", path=str(path), source="user", manifest={})
    reloaded = PluginReloaded(name="alpha", version="1", code_hash="d1", previous_hash="d0", path=str(path),
                              source="user", manifest={})
    assert not repeats(None, failed)
    assert repeats(row("alpha", path, status="failed", failed_hash="d1", error="boom"), failed)
    assert not repeats(row("alpha", tmp_path / "x", status="failed", failed_hash="d1", error="boom"), failed)
    assert not repeats(row("alpha", path, status="failed", failed_hash="d1", error="other"), failed)
    assert not repeats(row("alpha", path, status="failed", failed_hash="d0", error="boom"), failed)
    assert not repeats(row("alpha", path, status="loaded", failed_hash="d1", error="boom"), failed)
    for event in (loaded, reloaded):
        assert repeats(row("alpha", path, code_hash="d1"), event)
        assert not repeats(row("alpha", path, code_hash="d0"), event)
        assert not repeats(row("alpha", path, status="failed", code_hash="d1"), event)
    assert not repeats(row("alpha", path, status="removed"), PluginRemoved(name="alpha", path=str(path)))
