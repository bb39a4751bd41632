"""Code hashes and immutable snapshots of plugin folders.

A job runs the snapshot whose hash its JobQueued event records, never the live folder: edits
made while it runs cannot reach it, and a replay can run the very same code again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

_SKIP_DIRS = {"__pycache__", ".git", ".mypy_cache", ".pytest_cache", "node_modules"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".swp", "~")


def plugin_files(folder: Path) -> list[Path]:
    """The files that make up a plugin, sorted (caches and editor droppings excluded)."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in files:
            if name.startswith(".") or name.endswith(_SKIP_SUFFIXES):
                continue
            out.append(Path(root) / name)
    return sorted(out)


def code_hash(folder: Path, *, files: dict[str, bytes] | None = None) -> str:
    """sha256 over relative paths and contents of a plugin folder's files."""
    contents = files if files is not None else read_files(folder)
    h = hashlib.sha256(b"tunelog-plugin-v1\n")
    for rel in sorted(contents):
        data = contents[rel]
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def read_files(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes for every plugin file (read once so hash and snapshot agree)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in plugin_files(folder)}


def snapshot(folder: Path, store: Path) -> tuple[str, Path]:
    """Copy a plugin folder to `store/<code hash>/` (atomically, once) and return (hash, path).

    The bytes hashed are the bytes written, so a file edited during the copy cannot produce a
    snapshot whose content differs from its name.
    """
    files = read_files(folder)
    digest = code_hash(folder, files=files)
    final = store / digest
    if final.exists():
        return digest, final
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(dir=store, prefix=".tmp-"))  # 0700
    for rel, data in files.items():
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(data)
    try:
        os.replace(tmp, final)
    except OSError:  # another process created it first: same content by construction
        shutil.rmtree(tmp, ignore_errors=True)
    return digest, final
