"""Plugin code hashes and snapshots on real folders: which files make up a plugin, a hash that
changes with any byte or name of them (and only them), and a snapshot written once, privately,
byte for byte what was hashed."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import pytest

from tunelog.daemon.plugin_host.snapshots import code_hash, plugin_files, read_files, snapshot


def make_plugin(folder: Path) -> Path:
    files = {"manifest.yaml": "name: p\n", "backend.py": "def run(ctx, params, inputs):\n    return {}\n",
             "lib/util.py": "X = 1\n", "lib/data/table.csv": "a,b\n"}
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def litter(folder: Path) -> None:
    """What editors, Python and git leave in a folder: never part of the plugin."""
    for rel in ("__pycache__/backend.cpython-311.pyc", ".git/HEAD", ".mypy_cache/x.json", ".pytest_cache/v",
                "node_modules/pkg/index.js", ".hidden/file.py", "lib/__pycache__/util.pyc", "backend.pyc",
                "backend.pyo", ".backend.py.swp", "backend.py.swp", "backend.py~", ".env"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("noise")


def test_a_plugins_files_are_its_sources_sorted_without_caches_or_editor_droppings(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "p")
    litter(folder)
    assert [p.relative_to(folder).as_posix() for p in plugin_files(folder)] == [
        "backend.py", "lib/data/table.csv", "lib/util.py", "manifest.yaml"]
    assert read_files(folder)["lib/util.py"] == b"X = 1\n"


def test_the_hash_covers_every_name_and_byte_and_nothing_else(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "p")
    first = code_hash(folder)
    assert len(first) == 64 and code_hash(make_plugin(tmp_path / "elsewhere")) == first  # the place is not hashed
    litter(folder)
    assert code_hash(folder) == first

    (folder / "lib/util.py").write_text("X = 2\n")
    edited = code_hash(folder)
    assert edited != first
    (folder / "lib/util.py").rename(folder / "lib/util2.py")
    assert code_hash(folder) not in (first, edited)
    assert code_hash(folder, files={"a": b"bc"}) != code_hash(folder, files={"ab": b"c"})  # names and contents framed
    assert code_hash(folder, files={"a": b"", "b": b"x"}) != code_hash(folder, files={"a": b"x", "b": b""})
    assert code_hash(folder, files={}) == hashlib.sha256(b"tunelog-plugin-v1\n").hexdigest()
    assert code_hash(folder, files={"b": b"2", "a": b"1"}) == code_hash(folder, files={"a": b"1", "b": b"2"})


def test_a_snapshot_is_what_was_hashed_written_once_and_private(tmp_path: Path) -> None:
    folder = make_plugin(tmp_path / "p")
    litter(folder)
    store = tmp_path / "data" / "code"  # made with its parents
    digest, path = snapshot(folder, store)
    assert digest == code_hash(folder) and path == store / digest
    assert read_files(path) == read_files(folder) and not (path / "backend.pyc").exists()
    assert [p.name for p in store.iterdir()] == [digest]  # no temporary folder left
    files = [p for p in path.rglob("*") if p.is_file()]
    assert len(files) == 4 and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
    # the snapshot's own folder is 0700 (folders inside it follow the umask, which the daemon sets)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(store.stat().st_mode) == 0o700

    (path / "backend.py").chmod(0o600)
    (path / "backend.py").write_text("tampered")  # a second snapshot of the same code does not write again
    assert snapshot(folder, store) == (digest, path) and (path / "backend.py").read_text() == "tampered"

    (folder / "backend.py").write_text("def run(ctx, params, inputs):\n    return {'v': 2}\n")
    digest2, path2 = snapshot(folder, store)
    assert digest2 != digest and (path2 / "backend.py").read_text().endswith("{'v': 2}\n")
    assert sorted(p.name for p in store.iterdir()) == sorted([digest, digest2])


def test_a_snapshot_is_named_by_the_bytes_it_holds_even_when_a_file_changes_between_reads(tmp_path: Path) -> None:
    # Every read of this kernel file gives a new value: a file edited while the snapshot is taken.
    folder = make_plugin(tmp_path / "p")
    (folder / "nonce.txt").symlink_to("/proc/sys/kernel/random/uuid")
    digest, path = snapshot(folder, tmp_path / "code")
    assert code_hash(path) == digest and (path / "nonce.txt").is_file()
    assert code_hash(folder) != digest


def test_a_snapshot_is_made_when_the_temp_dir_is_on_another_filesystem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # /tmp on tmpfs and the home on disk is common: the copy is made beside the store, where the
    # final rename cannot cross filesystems.
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev, "needs /dev/shm on another filesystem"
        monkeypatch.setattr(tempfile, "tempdir", other)
        digest, path = snapshot(make_plugin(tmp_path / "p"), tmp_path / "code")
        assert read_files(path) == read_files(tmp_path / "p") and path.name == digest
        assert os.listdir(other) == []
