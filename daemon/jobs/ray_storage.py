"""Storage every Ray node and the daemon reach: a shared folder, or an object store named by an
fsspec URI (`s3://bucket/prefix`, `gs://...`, `abfs://...`).

Both hold the same layout under their root: `artifacts/sha256/xx/<sha256>` (content-addressed),
`plugin-code/<code hash>/` (immutable snapshots), `jobs/<job id>/`. A shared folder is used in
place: workers read and write it as a local job reads its home. An object store is not: a node
downloads what a job reads (its plugin snapshot, input artifacts, the checkpoint it resumes from)
into a folder of its own, the worker writes there, and every artifact or checkpoint it announces
is uploaded before the daemon hears of it. An uploaded tree or file is whole once its manifest
(`<name>.json`, written last) exists, and a download is re-hashed: an object that is missing or
does not hash to its name is a JobError naming its URI, never a silent accept.

fsspec (and the package of the URI's protocol, e.g. s3fs) is imported only when an object store is
used; credentials come from that package's usual environment and config files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tunelog.events.errors import JobError, ValidationError
from tunelog.store.artifacts import ArtifactStore

_SHA = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_URI = re.compile(r"([a-z][a-z0-9+.-]*)://(.*)", re.IGNORECASE)
_NO_SHARING = {"memory": "memory:// lives inside one process; no other node reaches it"}
INSTALL = {"s3": "pip install 'tunelog[s3]'"}
"""The install command of a protocol's package where tunelog has an extra for it."""
FIELD = "ray_shared"


def check_location(value: str) -> str:
    """The normalised storage location (`/abs/path` or `proto://rest`), or ValidationError naming
    `ray_shared`: a relative path, an unknown protocol, or a protocol whose package is missing (with
    the install command). Nothing is contacted: credentials may live only on the nodes."""
    match = _URI.fullmatch(value.strip())
    if match is None:
        if not Path(value).is_absolute():
            raise ValidationError.collect("cannot set the shared storage", [
                (FIELD, f"{value!r}: give an absolute path or an fsspec URI such as s3://bucket/prefix")])
        return value
    protocol, rest = match.group(1).lower(), match.group(2).rstrip("/")
    if protocol in ("file", "local"):
        return check_location(rest)
    if not rest:
        raise ValidationError.collect("cannot set the shared storage", [
            (FIELD, f"{value!r} names no bucket or path after {protocol}://")])
    if protocol in _NO_SHARING:
        raise ValidationError.collect("cannot set the shared storage", [(FIELD, _NO_SHARING[protocol])])
    try:
        import fsspec
        from fsspec.registry import known_implementations, registry
    except ImportError:
        raise ValidationError.collect("cannot set the shared storage", [
            (FIELD, f"{protocol}:// needs the `fsspec` package, which is not installed")],
            hint=f"install it: {INSTALL.get(protocol, 'pip install fsspec')}") from None
    known = known_implementations.get(protocol)
    if known is None and protocol not in registry:
        raise ValidationError.collect("cannot set the shared storage", [
            (FIELD, f"{protocol}:// is not a protocol fsspec knows (it knows "
                    f"{', '.join(p for p in ('s3', 'gs', 'abfs', 'az', 'hdfs', 'sftp') if p in known_implementations)}, "
                    "...; a third-party one must be installed and registered with fsspec)")])
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as exc:  # fsspec re-raises the import's error with a text of its own
        cause = exc.__cause__ if isinstance(exc.__cause__, ImportError) else exc
        # the module that is missing: for fsspec's own sftp:// it is paramiko, not fsspec
        package = (cause.name or str((known or {}).get("class", protocol))).split(".", 1)[0]
        raise ValidationError.collect("cannot set the shared storage", [
            (FIELD, f"{protocol}:// needs the `{package}` package, which is not installed")],
            hint=f"install it here and on every Ray node: {INSTALL.get(protocol, f'pip install {package}')}") from None
    return f"{protocol}://{rest}"


def is_object_store(location: str) -> bool:
    return _URI.fullmatch(location) is not None


def open_storage(location: str) -> SharedFolder | ObjectStore:
    return ObjectStore(location) if is_object_store(location) else SharedFolder(Path(location))


def artifact_key(sha: str) -> str:
    """An artifact's place under the storage root."""
    return f"artifacts/sha256/{sha[:2]}/{sha}"


class SharedFolder:
    """A folder every node mounts at the same path: workers use it in place."""

    object_store = False

    def __init__(self, root: Path):
        self.root = root
        self.label = str(root)
        self._store: ArtifactStore | None = None

    def prepare(self) -> None:
        for sub in ("artifacts", "plugin-code", "jobs", "cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = ArtifactStore(self.root / "artifacts")
        return self._store

    def spec_paths(self, job_id: str) -> dict[str, str]:
        """The WorkerSpec's folders (the worker uses them as they are)."""
        return {"artifacts": str(self.root / "artifacts"), "workdir": str(self.root / "jobs" / job_id / "work"),
                "cache_dir": str(self.root / "cache")}

    def ship_code(self, code_hash: str, source: Path) -> str:
        """A plugin snapshot in the shared folder (copied there once); the spec's folder for it."""
        code = self.root / "plugin-code" / code_hash
        if not code.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=self.root / "plugin-code"))
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            tmp.replace(code)
        return str(code)

    def has(self, sha: str) -> bool:
        return self.store.exists(sha)

    def put(self, local: ArtifactStore, sha: str) -> None:
        if not self.store.exists(sha):  # a damaged copy is the daemon's: the message names it
            _copy(local, self.store, sha, where=str(local.path(sha, verify=False)))

    def get(self, sha: str, local: ArtifactStore) -> None:
        """Copy an artifact into `local`, re-hashed; JobError naming it if it is missing or damaged."""
        if local.exists(sha):
            return
        where = str(self.root / artifact_key(sha))
        if not self.store.exists(sha):
            raise JobError(f"artifact {sha[:12]} is missing from the shared storage: {where}")
        _copy(self.store, local, sha, where=where)


class ObjectStore:
    """An fsspec URI every node and the daemon reach; nothing there is used in place."""

    object_store = True

    def __init__(self, uri: str):
        import fsspec

        self.label = uri.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.label)

    def prepare(self) -> None:
        """Nothing to make: an object store has no folders."""

    def url(self, key: str) -> str:
        return f"{self.label}/{key}"

    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def spec_paths(self, job_id: str) -> dict[str, str]:
        """Placeholders: `place_job` points them at the node's own folders."""
        return {"artifacts": "", "workdir": "", "cache_dir": ""}

    def ship_code(self, code_hash: str, source: Path) -> str:
        """Upload a plugin snapshot once; the spec names it by its key, which the node resolves."""
        key = f"plugin-code/{code_hash}"
        if not self._whole(key):
            self._put_tree(source, key)
        return key

    def has(self, sha: str) -> bool:
        return self._whole(artifact_key(sha))

    def put(self, local: ArtifactStore, sha: str) -> None:
        """Upload an artifact (verified on the way out) unless it is there already."""
        key = artifact_key(sha)
        if self._whole(key):
            return
        path = local.path(sha)
        if path.is_dir():
            self._put_tree(path, key)
        else:
            self.fs.put_file(str(path), self._path(key))
            self._put_manifest(key, {"kind": "file"})

    def get(self, sha: str, local: ArtifactStore) -> None:
        """Download an artifact into `local`, re-hashed; JobError naming the object if it is missing
        or does not hash to its name."""
        if local.exists(sha):
            return
        key = artifact_key(sha)
        manifest = self._manifest(key)
        with tempfile.TemporaryDirectory(dir=local.root / "tmp") as tmp:
            if manifest.get("kind") == "file":
                target = Path(tmp) / "file"
                self._get_file(key, target)
                ref = local.put_file(target)
            else:
                target = Path(tmp) / "tree"
                self._get_tree(key, target, manifest)
                ref = local.put_dir(target)
        if ref.sha256 != sha:
            raise JobError(f"artifact {sha[:12]} at {self.url(key)} is damaged: its content hashes to "
                           f"{ref.sha256[:12]}", hint="re-run the job that produced it")

    def get_code(self, key: str, dest: Path) -> None:
        """A plugin snapshot into `dest` (once per node: snapshots never change)."""
        if dest.is_dir():
            return
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent))
        self._get_tree(key, tmp, self._manifest(key))
        try:
            tmp.replace(dest)
        except OSError:  # another worker on this node got it first
            shutil.rmtree(tmp, ignore_errors=True)

    def put_log(self, job_id: str, log: Path, name: str = "worker.log") -> None:
        """Keep a worker's log in the job's folder of the store (best effort: the job's outcome
        does not depend on it)."""
        try:
            self.fs.put_file(str(log), self._path(f"jobs/{job_id}/{name}"))
        except (OSError, ValueError):
            pass

    def get_log(self, job_id: str, dest: Path) -> None:
        """The worker's log into `dest`, when the store has it."""
        try:
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.fs.get_file(self._path(f"jobs/{job_id}/worker.log"), str(dest))
        except (OSError, ValueError):
            pass

    def train_storage(self, job_id: str) -> tuple[str, Any]:
        """Ray Train's `storage_path` and `storage_filesystem` (pyarrow over this fsspec filesystem)."""
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        return self._path(f"jobs/{job_id}/ray-train"), PyFileSystem(FSSpecHandler(self.fs))

    def _whole(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key) + ".json"))

    def _manifest(self, key: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.fs.cat_file(self._path(key) + ".json"))
        except FileNotFoundError:
            raise JobError(f"{self.url(key)} is missing (its manifest {self.url(key)}.json is not there)") from None
        return data

    def _put_manifest(self, key: str, manifest: dict[str, Any]) -> None:
        self.fs.pipe_file(self._path(key) + ".json", json.dumps(manifest, sort_keys=True).encode())

    def _put_tree(self, source: Path, key: str) -> None:
        files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
        for rel in files:
            self.fs.put_file(str(source / rel), self._path(f"{key}/{rel}"))
        self._put_manifest(key, {"kind": "dir", "files": files})  # last: the tree is whole

    def _get_tree(self, key: str, dest: Path, manifest: dict[str, Any]) -> None:
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        for rel in manifest.get("files", []):
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise JobError(f"{self.url(key)}.json lists {rel!r}, a path outside its folder")
            self._get_file(f"{key}/{rel}", dest / rel)

    def _get_file(self, key: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.fs.get_file(self._path(key), str(dest))
        except FileNotFoundError:
            raise JobError(f"{self.url(key)} is missing from the storage") from None


# --- on a node -------------------------------------------------------------------------------------


def job_folder(location: str, job_id: str, *, node_id: str, rank: int | None = None) -> Path:
    """Where a job's `job.json` and `worker.log` live on this node: in the shared folder, or in a
    folder of this node (`TUNELOG_RAY_NODE_DIR`, default a temp folder named after the node)."""
    if not is_object_store(location):
        return Path(location) / "jobs" / job_id
    return node_dir(node_id) / "jobs" / (job_id if rank is None else f"{job_id}-rank{rank}")


def node_dir(node_id: str) -> Path:
    return Path(os.environ.get("TUNELOG_RAY_NODE_DIR") or Path(tempfile.gettempdir()) / "tunelog-ray" / node_id[:16])


def place_job(location: str, folder: Path, spec: bytes, *, fetch: list[str]) -> None:
    """Write `job.json` into the job's folder. With an object store, download what the job reads
    first (its snapshots and the artifacts in `fetch`) and point the spec at this node's copies."""
    (folder / "work").mkdir(parents=True, exist_ok=True, mode=0o700)
    if is_object_store(location):
        import msgspec

        from tunelog.daemon.jobs.protocol import WorkerSpec

        storage = ObjectStore(location)
        worker = msgspec.json.decode(spec, type=WorkerSpec)
        code_root = folder.parent.parent / "plugin-code"
        local = ArtifactStore(folder / "artifacts")
        for sha in fetch:
            storage.get(sha, local)
        for key in {worker.code_dir, *worker.uses.values()}:
            storage.get_code(key, code_root / Path(key).name)
        worker = msgspec.structs.replace(
            worker, code_dir=str(code_root / Path(worker.code_dir).name), artifacts=str(local.root),
            workdir=str(folder / "work"), cache_dir=str(folder.parent.parent / "cache"),
            uses={name: str(code_root / Path(key).name) for name, key in worker.uses.items()})
        spec = msgspec.json.encode(worker)
    (folder / "job.json").write_bytes(spec)


def uploading(location: str, folder: Path, sink: Callable[[list[bytes]], None]) -> Callable[[list[bytes]], None]:
    """`sink` for a worker's frames; with an object store, every artifact or checkpoint a frame
    announces is uploaded from the job's folder before the frame goes on."""
    if not is_object_store(location):
        return sink
    import msgspec

    from tunelog.daemon.jobs.protocol import Message

    storage, local = ObjectStore(location), ArtifactStore(folder / "artifacts")
    decode = msgspec.msgpack.Decoder(Message).decode

    def upload_then(frames: list[bytes]) -> None:
        for raw in frames:
            msg = decode(raw[4:])
            for sha in announced(msg.kind, msg.body):
                if msg.kind != "result" or local.exists(sha):  # a result may hold hashes that are no artifacts
                    storage.put(local, sha)
        sink(frames)

    return upload_then


def finish_job(location: str, folder: Path, job_id: str, *, log_name: str = "worker.log") -> None:
    """After the worker ended: with an object store, keep its log there and free this node's copies."""
    if not is_object_store(location):
        return
    ObjectStore(location).put_log(job_id, folder / "worker.log", log_name)
    for sub in ("artifacts", "work"):
        shutil.rmtree(folder / sub, ignore_errors=True)


def announced(kind: str, body: dict[str, Any]) -> Iterator[str]:
    """The artifact hashes a worker message names: an artifact's or checkpoint's, or every hash in a
    result's outputs."""
    if kind in ("artifact", "checkpoint"):
        sha = str(body.get("sha256", ""))
        if _SHA.fullmatch(sha):
            yield sha
    elif kind == "result":
        yield from shas(body.get("outputs"))


def shas(value: Any) -> Iterator[str]:
    """Every artifact hash in a value (a hash, `sha:weight`, or one inside dicts and lists)."""
    if isinstance(value, str):
        yield from _SHA.findall(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from shas(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from shas(v)


def _copy(source: ArtifactStore, dest: ArtifactStore, sha: str, *, where: str) -> None:
    """Copy one artifact between stores; the copy must hash to the same address."""
    path = source.path(sha, verify=False)
    ref = dest.put_dir(path) if path.is_dir() else dest.put_file(path)
    if ref.sha256 != sha:
        raise JobError(f"artifact {sha[:12]} at {where} is damaged: its content hashes to {ref.sha256[:12]}",
                       hint="re-run the job that produced it")
