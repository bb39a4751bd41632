"""The content-addressed artifact store: paths are hashes, content is verified on read, a damaged
artifact is refused with its hash, and no user string becomes a path in the store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tunelog.events.errors import NotFoundError, TunelogError, ValidationError
from tunelog.store.artifacts import ArtifactRef, ArtifactStore, sha256_file, tree_digest


def test_bytes_and_files_are_stored_under_their_sha256_read_only(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    ref = store.put_bytes(b"hello")
    sha = hashlib.sha256(b"hello").hexdigest()
    assert ref == ArtifactRef(sha, 5, "file")
    final = tmp_path / "a" / "sha256" / sha[:2] / sha
    assert store.path(sha) == final and final.read_bytes() == b"hello"
    assert final.stat().st_mode & 0o777 == 0o400
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello")
    assert store.put_file(src) == ref  # same content, same artifact, stored once
    assert store.read_bytes(sha) == b"hello" and store.exists(sha)
    assert list((tmp_path / "a" / "tmp").iterdir()) == []  # no temp file left behind
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))  # several read chunks
    assert store.put_file(big).sha256 == hashlib.sha256(big.read_bytes()).hexdigest() == sha256_file(big)


def test_a_folder_is_stored_by_a_digest_of_its_relative_paths_and_contents(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "sub" / "w.bin").write_bytes(b"\x00\x01")
    ref = store.put_dir(src)
    assert ref.kind == "dir" and ref.size == 4 and ref.sha256 == tree_digest(src)[0]
    stored = store.path(ref.sha256)
    assert (stored / "sub" / "w.bin").read_bytes() == b"\x00\x01"
    assert {p.stat().st_mode & 0o777 for p in stored.rglob("*") if p.is_file()} == {0o400}
    # The digest is recorded in the log (cache keys, verify): it must never change for the same tree.
    pinned = tmp_path / "pinned"
    (pinned / "a").mkdir(parents=True)
    (pinned / "a" / "x.txt").write_bytes(b"hi")
    (pinned / "b.bin").write_bytes(b"\x00")
    assert tree_digest(pinned) == ("f809ac24ae914081b656b3dad463cda10b2e6d6d61ea98d27604505e28474e14", 3)
    assert store.put_dir(src) == ref and list((tmp_path / "a" / "tmp").iterdir()) == []
    renamed = tmp_path / "renamed"
    (renamed / "other").mkdir(parents=True)
    (renamed / "config.json").write_text("{}")
    (renamed / "other" / "w.bin").write_bytes(b"\x00\x01")
    assert tree_digest(renamed)[0] != ref.sha256  # a path is part of the content
    (src / "sub" / "w.bin").write_bytes(b"\x00\x02")
    assert tree_digest(src)[0] != ref.sha256 and tree_digest(src)[1] == 4
    with pytest.raises(NotFoundError, match="no folder at"):
        store.put_dir(tmp_path / "missing")


def test_a_damaged_file_artifact_is_refused_on_read_naming_both_hashes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    sha = store.put_bytes(b"the sky is green").sha256
    final = store.path(sha)
    os.chmod(final, 0o644)
    final.write_bytes(b"the sky is plaid")
    damaged = hashlib.sha256(b"the sky is plaid").hexdigest()
    with pytest.raises(TunelogError) as err:
        store.read_bytes(sha)
    assert err.value.message == f"artifact {sha[:12]} is damaged: its content hashes to {damaged[:12]}"
    assert err.value.hint == "re-run the job that produced it"
    with pytest.raises(TunelogError, match="is damaged"):
        store.path(sha)
    assert store.path(sha, verify=False) == final  # the caller may skip the check, knowingly


def test_a_damaged_folder_artifact_is_refused_on_read(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    src = tmp_path / "adapter"
    src.mkdir()
    (src / "adapter_model.safetensors").write_bytes(b"weights")
    sha = store.put_dir(src).sha256
    stored = store.path(sha) / "adapter_model.safetensors"
    os.chmod(stored, 0o644)
    stored.write_bytes(b"weightz")
    with pytest.raises(TunelogError, match=f"artifact {sha[:12]} is damaged"):
        store.path(sha)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ab", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "/" + "0" * 63])
def test_only_a_sha256_becomes_a_path_in_the_store(tmp_path: Path, bad: str) -> None:
    store = ArtifactStore(tmp_path / "a")
    for call in (store.path, store.exists, store.read_bytes):
        with pytest.raises(ValidationError, match="not an artifact hash") as err:
            call(bad)
        assert err.value.hint == "artifact ids are 64 lowercase hex digits"


def test_opening_an_existing_store_again_keeps_its_artifacts(tmp_path: Path) -> None:
    sha = ArtifactStore(tmp_path / "a").put_bytes(b"kept").sha256
    assert ArtifactStore(tmp_path / "a").read_bytes(sha) == b"kept"


def test_a_missing_artifact_is_not_found_naming_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    sha = "0" * 64
    assert not store.exists(sha)
    with pytest.raises(NotFoundError, match=f"artifact {sha[:12]} is not in the store at {tmp_path / 'a'}"):
        store.path(sha)
