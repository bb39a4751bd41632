"""The Ray backend's storage in process, without a cluster: a real shared folder, and a real S3
server (moto's, on 127.0.0.1, reached through s3fs's usual AWS_* environment) for an object store.
What a node does with it (`place_job`, `uploading`, `finish_job`) runs here as the node runs it."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tunelog.daemon.jobs.protocol import WorkerSpec, encode_frame
from tunelog.daemon.jobs.ray_storage import (
    ObjectStore,
    SharedFolder,
    announced,
    artifact_key,
    check_location,
    finish_job,
    is_object_store,
    job_folder,
    node_dir,
    open_storage,
    place_job,
    shas,
    uploading,
)
from tunelog.events.errors import JobError, NotFoundError, ValidationError
from tunelog.store.artifacts import ArtifactStore

SHA_A, SHA_B = "a" * 64, "b" * 64


def keys(s3: Any, uri: str) -> list[str]:
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return sorted(o["Key"][len(prefix) + 1:] for page in pages for o in page.get("Contents", []))


def body(s3: Any, uri: str, key: str) -> bytes:
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    data: bytes = s3.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()
    return data


def put_body(s3: Any, uri: str, key: str, data: bytes, storage: ObjectStore) -> None:
    """Overwrite an object behind the storage's back (s3fs's listing cache forgets it)."""
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)
    storage.fs.invalidate_cache()


def assert_damaged(error: JobError, sha: str, where: object, content: bytes) -> None:
    """The JobError of an artifact whose bytes no longer hash to its name, naming where it is."""
    assert error.message == (f"artifact {sha[:12]} at {where} is damaged: its content hashes to "
                             f"{hashlib.sha256(content).hexdigest()[:12]}")
    assert error.hint == "re-run the job that produced it"


def a_tree(root: Path) -> Path:
    (root / "nested" / "deeper").mkdir(parents=True)  # the first file listed is two folders down
    (root / "sub").mkdir()
    (root / "nested" / "deeper" / "notes.txt").write_text("two levels down")
    (root / "weights.bin").write_bytes(b"\x00\x01weights")
    (root / "sub" / "config.json").write_text('{"r": 8}')
    return root


# --- check_location --------------------------------------------------------------------------------


def test_a_location_is_normalised_paths_and_protocols_alike(tmp_path: Path) -> None:
    assert check_location("/srv/tunelog") == "/srv/tunelog"
    assert check_location(f"file://{tmp_path}/shared/") == f"{tmp_path}/shared"
    assert check_location(f"LOCAL://{tmp_path}") == str(tmp_path)
    assert check_location("  S3://Bucket/prefiX// ") == "s3://Bucket/prefiX"
    for value, said in (("relative/dir", "'relative/dir': give an absolute path or an fsspec URI such as "
                                         "s3://bucket/prefix"),
                        ("file://relative", "'relative': give an absolute path"),
                        ("s3:///", "'s3:///' names no bucket or path after s3://"),
                        ("memory://x", "memory:// lives inside one process; no other node reaches it")):
        with pytest.raises(ValidationError) as refused:
            check_location(value)
        assert refused.value.message == "cannot set the shared storage"
        assert refused.value.problems == [{"where": "ray_shared", "message": refused.value.problems[0]["message"]}]
        assert refused.value.problems[0]["message"].startswith(said), refused.value.problems


def test_an_unknown_protocol_is_refused_naming_those_fsspec_knows_and_a_registered_one_is_accepted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    with pytest.raises(ValidationError) as refused:
        check_location("nosuch://bucket/x")
    assert refused.value.message == "cannot set the shared storage"
    assert refused.value.problems[0]["message"] == (
        "nosuch:// is not a protocol fsspec knows (it knows s3, gs, abfs, az, hdfs, sftp, ...; a third-party one "
        "must be installed and registered with fsspec)")
    monkeypatch.setitem(importlib.import_module("fsspec.registry")._registry, "tlshared", MemoryFileSystem)  # what a plugin registers
    assert check_location("TLshared://pool/x/") == "tlshared://pool/x"


def test_a_missing_package_is_refused_with_its_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = importlib.import_module("fsspec.registry")._registry
    for module, protocol in (("gcsfs", "gs"), ("paramiko", "sftp")):
        monkeypatch.setitem(sys.modules, module, None)  # what `import` meets where it is not installed
        monkeypatch.delitem(registry, protocol, raising=False)  # nor loaded
    with pytest.raises(ValidationError) as refused:
        check_location("gs://bucket/x")
    assert refused.value.message == "cannot set the shared storage"
    assert refused.value.problems[0]["message"] == "gs:// needs the `gcsfs` package, which is not installed"
    assert refused.value.hint == "install it here and on every Ray node: pip install gcsfs"
    with pytest.raises(ValidationError) as refused:  # fsspec's own sftp:// needs paramiko
        check_location("sftp://host/x")
    assert refused.value.problems[0]["message"] == "sftp:// needs the `paramiko` package, which is not installed"
    assert refused.value.hint == "install it here and on every Ray node: pip install paramiko"
    monkeypatch.setitem(sys.modules, "fsspec", None)  # what `import fsspec` meets where it is not installed
    for uri, install in (("s3://b/x", "pip install 'tunelog[s3]'"), ("gs://b/x", "pip install fsspec")):
        with pytest.raises(ValidationError) as refused:
            check_location(uri)
        protocol = uri.split(":")[0]
        assert refused.value.message == "cannot set the shared storage"
        assert refused.value.problems[0]["message"] == f"{protocol}:// needs the `fsspec` package, which is not installed"
        assert refused.value.hint == f"install it: {install}"


def test_which_storage_a_location_opens() -> None:
    assert is_object_store("s3://b/x") and not is_object_store("/srv/tunelog")
    assert isinstance(open_storage("/srv/tunelog"), SharedFolder)
    assert open_storage("/srv/tunelog").label == "/srv/tunelog"  # type: ignore[union-attr]
    assert artifact_key(SHA_A) == f"artifacts/sha256/aa/{SHA_A}"


# --- a shared folder -------------------------------------------------------------------------------


def system_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder as the system's temp dir, to see that nothing is left there."""
    import tempfile

    folder = tmp_path / "system-temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_shared_folder_is_made_private_and_used_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temp = system_temp(tmp_path, monkeypatch)
    root = tmp_path / "shared"
    folder = SharedFolder(root)
    old = os.umask(0)  # the folders' mode must not depend on the caller's umask
    try:
        folder.prepare()
        folder.prepare()  # again: nothing to make
    finally:
        os.umask(old)
    assert sorted(p.name for p in root.iterdir()) == ["artifacts", "cache", "jobs", "plugin-code"]
    assert {p.stat().st_mode & 0o777 for p in root.iterdir()} == {0o700}
    assert folder.spec_paths("j1") == {"artifacts": str(root / "artifacts"), "workdir": str(root / "jobs" / "j1" / "work"),
                                       "cache_dir": str(root / "cache")}
    assert folder.store is folder.store and folder.store.root == root / "artifacts"
    assert not folder.object_store

    code = folder.ship_code("c" * 64, a_tree(tmp_path / "snapshot"))
    assert code == str(root / "plugin-code" / ("c" * 64))
    assert (Path(code) / "sub" / "config.json").read_text() == '{"r": 8}'
    (tmp_path / "snapshot" / "weights.bin").write_bytes(b"changed")
    assert folder.ship_code("c" * 64, tmp_path / "snapshot") == code  # a snapshot is copied once
    assert (Path(code) / "weights.bin").read_bytes() == b"\x00\x01weights"
    assert os.listdir(root / "plugin-code") == ["c" * 64]  # no half-copied folder left
    assert os.listdir(temp) == []


def test_artifacts_go_through_a_shared_folder_verified_and_a_damaged_or_missing_one_is_named(tmp_path: Path) -> None:
    daemon, node = ArtifactStore(tmp_path / "daemon"), ArtifactStore(tmp_path / "node")
    folder = SharedFolder(tmp_path / "shared")
    file_sha = daemon.put_bytes(b"a dataset").sha256
    dir_sha = daemon.put_dir(a_tree(tmp_path / "adapter")).sha256
    for sha in (file_sha, dir_sha):
        assert not folder.has(sha)
        folder.put(daemon, sha)
        folder.put(daemon, sha)  # there already: nothing to do
        assert folder.has(sha)
        folder.get(sha, node)
        node.path(sha)  # re-hashed
    assert node.read_bytes(file_sha) == b"a dataset"

    missing = hashlib.sha256(b"never stored").hexdigest()
    where = tmp_path / "shared" / "artifacts" / "sha256" / missing[:2] / missing
    with pytest.raises(JobError) as refused:
        folder.get(missing, node)
    assert refused.value.message == f"artifact {missing[:12]} is missing from the shared storage: {where}"
    node.put_bytes(b"never stored")
    folder.get(missing, node)  # the node has it already: the shared folder is not asked

    damaged = folder.store.path(file_sha)
    damaged.chmod(0o600)
    damaged.write_bytes(b"tampered")
    other = ArtifactStore(tmp_path / "other")
    with pytest.raises(JobError) as refused:
        folder.get(file_sha, other)
    assert_damaged(refused.value, file_sha, damaged, b"tampered")

    ours = daemon.put_bytes(b"the daemon's copy").sha256  # damaged in the daemon's store: named there
    ours_path = daemon.path(ours)
    ours_path.chmod(0o600)
    ours_path.write_bytes(b"rotten")
    with pytest.raises(JobError) as refused:
        folder.put(daemon, ours)
    assert_damaged(refused.value, ours, ours_path, b"rotten")
    assert not folder.has(ours)


# --- an object store (S3) --------------------------------------------------------------------------


def test_artifacts_go_through_s3_whole_and_verified(tmp_path: Path, s3_server: Any, bucket: str) -> None:
    storage = ObjectStore(bucket + "/")
    assert storage.label == bucket and storage.object_store
    assert storage.url("jobs/j1") == f"{bucket}/jobs/j1"
    assert storage.spec_paths("j1") == {"artifacts": "", "workdir": "", "cache_dir": ""}
    storage.prepare()
    assert keys(s3_server, bucket) == []  # an object store has no folders to make
    daemon, node = ArtifactStore(tmp_path / "daemon"), ArtifactStore(tmp_path / "node")
    file_sha = daemon.put_bytes(b"a dataset").sha256
    dir_sha = daemon.put_dir(a_tree(tmp_path / "adapter")).sha256
    for sha in (file_sha, dir_sha):
        assert not storage.has(sha)
        storage.put(daemon, sha)
        assert storage.has(sha)
    key = artifact_key(file_sha)
    tree = artifact_key(dir_sha)
    assert keys(s3_server, bucket) == sorted([key, f"{key}.json", f"{tree}.json", f"{tree}/sub/config.json",
                                              f"{tree}/nested/deeper/notes.txt",
                                              f"{tree}/weights.bin"])
    assert body(s3_server, bucket, f"{key}.json") == b'{"kind": "file"}'
    assert json.loads(body(s3_server, bucket, f"{tree}.json")) == {"kind": "dir",
                                                                   "files": ["nested/deeper/notes.txt", "sub/config.json",
                                                                             "weights.bin"]}
    assert body(s3_server, bucket, f"{tree}.json").startswith(b'{"files": [')  # written with sorted keys
    put_body(s3_server, bucket, key, b"replaced", storage)
    storage.put(daemon, file_sha)  # whole already (its manifest is there): not uploaded again
    assert body(s3_server, bucket, key) == b"replaced"
    put_body(s3_server, bucket, key, b"a dataset", storage)

    for sha in (file_sha, dir_sha):
        storage.get(sha, node)
        node.path(sha)  # re-hashed
    assert (node.path(dir_sha) / "sub" / "config.json").read_text() == '{"r": 8}'
    assert (node.path(dir_sha) / "nested" / "deeper" / "notes.txt").read_text() == "two levels down"
    assert os.listdir(node.root / "tmp") == []  # the downloads' scratch folders are gone
    put_body(s3_server, bucket, f"{key}.json", b"not json", storage)
    storage.get(file_sha, node)  # the node has it: the store is not asked


def test_a_missing_or_damaged_object_in_s3_is_a_job_error_naming_it(tmp_path: Path, s3_server: Any,
                                                                     bucket: str) -> None:
    storage = ObjectStore(bucket)
    daemon = ArtifactStore(tmp_path / "daemon")
    file_sha = daemon.put_bytes(b"a dataset").sha256
    dir_sha = daemon.put_dir(a_tree(tmp_path / "adapter")).sha256
    for sha in (file_sha, dir_sha):
        storage.put(daemon, sha)
    key, tree = artifact_key(file_sha), artifact_key(dir_sha)

    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(JobError) as refused:
        storage.get(missing, ArtifactStore(tmp_path / "n1"))
    url = f"{bucket}/{artifact_key(missing)}"
    assert refused.value.message == f"{url} is missing (its manifest {url}.json is not there)"

    put_body(s3_server, bucket, key, b"tampered", storage)
    node = ArtifactStore(tmp_path / "n2")
    with pytest.raises(JobError) as refused:
        storage.get(file_sha, node)
    assert_damaged(refused.value, file_sha, f"{bucket}/{key}", b"tampered")
    assert not node.exists(file_sha)

    bucket_name, prefix = bucket.removeprefix("s3://").split("/", 1)
    s3_server.delete_object(Bucket=bucket_name, Key=f"{prefix}/{tree}/weights.bin")
    storage.fs.invalidate_cache()
    with pytest.raises(JobError) as refused:
        storage.get(dir_sha, ArtifactStore(tmp_path / "n3"))
    assert refused.value.message == f"{bucket}/{tree}/weights.bin is missing from the storage"

    for rel in ("../escape", "/etc/passwd", "sub/../../escape"):
        put_body(s3_server, bucket, f"{tree}.json", json.dumps({"kind": "dir", "files": [rel]}).encode(), storage)
        with pytest.raises(JobError) as refused:
            storage.get(dir_sha, ArtifactStore(tmp_path / "n4"))
        assert refused.value.message == f"{bucket}/{tree}.json lists {rel!r}, a path outside its folder"
    assert not (tmp_path / "escape").exists()


def test_a_plugin_snapshot_goes_to_s3_once_and_each_node_downloads_it_once(
        tmp_path: Path, s3_server: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = ObjectStore(bucket)
    temp = system_temp(tmp_path, monkeypatch)
    source = a_tree(tmp_path / "snapshot")
    key = storage.ship_code("c" * 64, source)
    assert key == f"plugin-code/{'c' * 64}"
    assert keys(s3_server, bucket) == [f"{key}.json", f"{key}/nested/deeper/notes.txt", f"{key}/sub/config.json",
                                      f"{key}/weights.bin"]
    (source / "weights.bin").write_bytes(b"changed")
    assert storage.ship_code("c" * 64, source) == key  # a snapshot is uploaded once
    assert body(s3_server, bucket, f"{key}/weights.bin") == b"\x00\x01weights"

    dest = tmp_path / "node" / "plugin-code" / ("c" * 64)
    old = os.umask(0)
    try:
        storage.get_code(key, dest)
    finally:
        os.umask(old)
    assert (dest / "sub" / "config.json").read_text() == '{"r": 8}'
    assert (dest.parent.stat().st_mode & 0o777, (dest / "sub").stat().st_mode & 0o777) == (0o700, 0o700)
    assert os.listdir(dest.parent) == [dest.name]  # the download's scratch folder became the snapshot
    assert os.listdir(temp) == []
    (dest / "weights.bin").write_bytes(b"local")
    storage.get_code(key, dest)  # there already: snapshots never change
    assert (dest / "weights.bin").read_bytes() == b"local"
    with pytest.raises(JobError, match=r"plugin-code/d{64} is missing \(its manifest"):
        storage.get_code(f"plugin-code/{'d' * 64}", tmp_path / "node" / "plugin-code" / ("d" * 64))


def test_a_worker_log_is_kept_in_s3_and_brought_back_and_a_missing_one_is_no_error(tmp_path: Path, s3_server: Any,
                                                                                    bucket: str) -> None:
    storage = ObjectStore(bucket)
    log = tmp_path / "worker.log"
    log.write_text("line 1\n")
    storage.put_log("j1", log)
    storage.put_log("j1", log, "worker-rank1.log")
    storage.put_log("j1", tmp_path / "no-such.log")  # best effort
    assert keys(s3_server, bucket) == ["jobs/j1/worker-rank1.log", "jobs/j1/worker.log"]
    back = tmp_path / "daemon" / "jobs" / "j1" / "worker.log"
    old = os.umask(0)
    try:
        storage.get_log("j1", back)
    finally:
        os.umask(old)
    assert back.read_text() == "line 1\n" and back.parent.stat().st_mode & 0o777 == 0o700
    back.unlink()
    storage.get_log("j1", back)  # into a folder that is there already
    assert back.read_text() == "line 1\n"
    storage.get_log("j2", tmp_path / "daemon" / "jobs" / "j2" / "worker.log")  # none there: no error
    assert not (tmp_path / "daemon" / "jobs" / "j2" / "worker.log").exists()
    path, filesystem = storage.train_storage("j1")
    assert path == f"{bucket.removeprefix('s3://')}/jobs/j1/ray-train"
    assert filesystem.get_file_info(f"{path.rsplit('/', 3)[0]}/jobs/j1/worker.log").size == len("line 1\n")


# --- on a node -------------------------------------------------------------------------------------


def test_a_job_folder_is_in_the_shared_folder_or_in_the_node_s_own(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert job_folder("/srv/shared", "j1", node_id="n" * 40) == Path("/srv/shared/jobs/j1")
    assert job_folder("/srv/shared", "j1", node_id="n" * 40, rank=1) == Path("/srv/shared/jobs/j1")
    monkeypatch.delenv("TUNELOG_RAY_NODE_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    assert node_dir("0123456789abcdef-rest") == tmp_path / "tunelog-ray" / "0123456789abcdef"
    assert job_folder("s3://b/x", "j1", node_id="0123456789abcdef-rest", rank=2) == (
        tmp_path / "tunelog-ray" / "0123456789abcdef" / "jobs" / "j1-rank2")
    monkeypatch.setenv("TUNELOG_RAY_NODE_DIR", str(tmp_path / "node"))
    assert job_folder("s3://b/x", "j1", node_id="n" * 40) == tmp_path / "node" / "jobs" / "j1"
    assert job_folder("s3://b/x", "j1", node_id="n" * 40, rank=0) == tmp_path / "node" / "jobs" / "j1-rank0"


def spec(code_dir: str, **kw: Any) -> WorkerSpec:
    return WorkerSpec(job_id="j1", plugin="testops", operation="outputs", params={"text": "x"}, inputs={},
                      code_dir=code_dir, artifacts="", workdir="", **kw)


def test_placing_a_job_in_a_shared_folder_writes_its_spec_as_given(tmp_path: Path) -> None:
    folder = tmp_path / "shared" / "jobs" / "j1"
    raw = msgspec.json.encode(spec("/srv/code"))
    old = os.umask(0)
    try:
        place_job(str(tmp_path / "shared"), folder, raw, fetch=[SHA_A])
        place_job(str(tmp_path / "shared"), folder, raw, fetch=[SHA_A])  # again: the folder is there
    finally:
        os.umask(old)
    assert (folder / "job.json").read_bytes() == raw and (folder / "work").stat().st_mode & 0o777 == 0o700
    finish_job(str(tmp_path / "shared"), folder, "j1")  # used in place: nothing to upload or free
    assert sorted(os.listdir(folder)) == ["job.json", "work"]


def test_placing_a_job_from_s3_downloads_what_it_reads_and_points_its_spec_at_the_node_copies(
        tmp_path: Path, s3_server: Any, bucket: str) -> None:
    storage = ObjectStore(bucket)
    daemon = ArtifactStore(tmp_path / "daemon")
    data = daemon.put_bytes(b"a dataset").sha256
    storage.put(daemon, data)
    code = storage.ship_code("c" * 64, a_tree(tmp_path / "snapshot"))
    other = storage.ship_code("d" * 64, a_tree(tmp_path / "other"))
    folder = tmp_path / "node" / "jobs" / "j1"
    raw = msgspec.json.encode(spec(code, uses={"helper": other}, cache_dir="", resume_sha256=None))
    place_job(bucket, folder, raw, fetch=[data])
    placed = msgspec.json.decode((folder / "job.json").read_bytes(), type=WorkerSpec)
    node_code = tmp_path / "node" / "plugin-code"
    assert placed == msgspec.structs.replace(
        spec(str(node_code / ("c" * 64))), artifacts=str(folder / "artifacts"), workdir=str(folder / "work"),
        cache_dir=str(tmp_path / "node" / "cache"), uses={"helper": str(node_code / ("d" * 64))})
    assert ArtifactStore(folder / "artifacts").read_bytes(data) == b"a dataset"
    assert (node_code / ("d" * 64) / "weights.bin").read_bytes() == b"\x00\x01weights"

    (folder / "worker.log").write_text("done\n")
    finish_job(bucket, folder, "j1", log_name="worker-rank1.log")
    assert body(s3_server, bucket, "jobs/j1/worker-rank1.log") == b"done\n"
    assert sorted(os.listdir(folder)) == ["job.json", "worker.log"]  # the node's copies are freed
    finish_job(bucket, folder, "j1")  # again, with nothing left to free


def test_a_frame_that_announces_an_artifact_goes_on_only_once_it_is_in_s3(tmp_path: Path, s3_server: Any,
                                                                          bucket: str) -> None:
    storage = ObjectStore(bucket)
    folder = tmp_path / "node" / "jobs" / "j1"
    local = ArtifactStore(folder / "artifacts")
    report = local.put_bytes(b"a report").sha256
    checkpoint = local.put_dir(a_tree(tmp_path / "ckpt")).sha256
    seen: list[tuple[list[bytes], list[bool]]] = []

    def sink(frames: list[bytes]) -> None:
        seen.append((frames, [storage.has(report), storage.has(checkpoint)]))

    frames = [encode_frame("progress", {"step": 1, "sha256": report}),
              encode_frame("result", {"outputs": {"report": report, "text": "sha " + SHA_B}})]
    push = uploading(bucket, folder, sink)
    push(frames[:1])
    assert seen == [(frames[:1], [False, False])]  # a progress frame uploads nothing
    push(frames[1:])  # a result: only its hashes the node's store holds are artifacts
    assert seen[-1] == (frames[1:], [True, False])
    assert not storage.has(SHA_B)
    push([encode_frame("checkpoint", {"step": 2, "sha256": checkpoint})])
    assert seen[-1][1] == [True, True]
    with pytest.raises(NotFoundError, match=f"artifact {SHA_A[:12]} is not in the store"):
        push([encode_frame("artifact", {"name": "x", "sha256": SHA_A})])  # announced, never made: the reader kills the worker
    assert len(seen) == 3
    assert uploading(str(tmp_path / "shared"), folder, sink) is sink  # a shared folder: nothing to upload


def test_the_hashes_a_worker_message_announces() -> None:
    assert list(announced("artifact", {"sha256": SHA_A})) == [SHA_A]
    assert list(announced("checkpoint", {"sha256": SHA_A, "step": 3})) == [SHA_A]
    assert list(announced("artifact", {"sha256": "A" * 64})) == []  # not a hash this store makes
    assert list(announced("artifact", {"sha256": "a" * 63})) == []
    assert list(announced("artifact", {})) == []
    assert list(announced("progress", {"sha256": SHA_A})) == []
    assert list(announced("result", {"outputs": {"adapter": f"{SHA_A}:0.5", "list": [SHA_B, ("x", SHA_A)]},
                                     "sha256": SHA_B})) == [SHA_A, SHA_B, SHA_A]
    assert list(shas({"a": 1, "b": None, "c": "a" * 65, "d": f"{SHA_A} {SHA_B}"})) == [SHA_A, SHA_B]
