"""Content-addressed artifact store: files and folders named by their sha256.

Writes go to a temporary name in the same filesystem and are renamed into place, so a crash
never leaves a half-written artifact under a valid name. Reads can verify the hash. Artifacts are
private and read-only: files 0400, folders 0700. A folder's
hash covers its relative paths and the hashes of its files, so equal trees have equal hashes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import msgspec

from tunelog.events.errors import NotFoundError, TunelogError, ValidationError

_CHUNK = 1 << 20


class ArtifactRef(msgspec.Struct, frozen=True):
    """What an event records about an artifact."""

    sha256: str
    size: int
    kind: str  # "file" or "dir"


def sha256_file(path: Path) -> str:
    """Hash of one file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root: Path) -> tuple[str, int]:
    """(sha256, total bytes) of a folder: sorted relative paths with their files' hashes."""
    h = hashlib.sha256(b"tunelog-tree-v1\n")
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        size = path.stat().st_size
        total += size
        h.update(f"{rel}\0{sha256_file(path)}\0{size}\n".encode())
    return h.hexdigest(), total


def _check_sha(sha: str) -> str:
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValidationError(f"not an artifact hash: {sha!r}", hint="artifact ids are 64 lowercase hex digits")
    return sha


class ArtifactStore:
    """Artifacts under `root/sha256/xx/<sha256>` (a file or a folder)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "sha256").mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True, mode=0o700)

    def _final(self, sha: str) -> Path:
        return self.root / "sha256" / sha[:2] / sha

    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store bytes as a file artifact."""
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return self._commit_file(Path(tmp), hashlib.sha256(data).hexdigest(), len(data))

    def put_file(self, src: str | Path) -> ArtifactRef:
        """Copy a file in."""
        src = Path(src)
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        os.close(fd)
        shutil.copyfile(src, tmp)
        return self._commit_file(Path(tmp), sha256_file(Path(tmp)), Path(tmp).stat().st_size)

    def _commit_file(self, tmp: Path, sha: str, size: int) -> ArtifactRef:
        final = self._final(sha)
        final.parent.mkdir(exist_ok=True, mode=0o700)
        os.chmod(tmp, 0o400)
        if final.exists():
            tmp.unlink()
        else:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        return ArtifactRef(sha, size, "file")

    def put_dir(self, src: str | Path) -> ArtifactRef:
        """Copy a folder in (symlinks are followed; only regular files are kept)."""
        src = Path(src)
        if not src.is_dir():
            raise NotFoundError(f"no folder at {src}")
        tmp = Path(tempfile.mkdtemp(dir=self.root / "tmp"))
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        sha, size = tree_digest(tmp)
        final = self._final(sha)
        final.parent.mkdir(exist_ok=True, mode=0o700)
        if final.exists():
            shutil.rmtree(tmp)
        else:
            for p in tmp.rglob("*"):
                if p.is_file():
                    os.chmod(p, 0o400)
                elif p.is_dir():
                    os.chmod(p, 0o700)  # copytree copies the source's folder modes
            os.replace(tmp, final)
        return ArtifactRef(sha, size, "dir")

    def exists(self, sha: str) -> bool:
        return self._final(_check_sha(sha)).exists()

    def path(self, sha: str, *, verify: bool = True) -> Path:
        """Where an artifact lives; with `verify`, re-hash it first and refuse a damaged one."""
        final = self._final(_check_sha(sha))
        if not final.exists():
            raise NotFoundError(f"artifact {sha[:12]} is not in the store at {self.root}")
        if verify:
            actual = tree_digest(final)[0] if final.is_dir() else sha256_file(final)
            if actual != sha:
                raise TunelogError(f"artifact {sha[:12]} is damaged: its content hashes to {actual[:12]}",
                                   hint="re-run the job that produced it")
        return final

    def read_bytes(self, sha: str) -> bytes:
        """A file artifact's bytes, verified."""
        return self.path(sha).read_bytes()
