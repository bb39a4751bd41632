"""The daemon's side of a Ray job that runs without a cluster: what it ships to the storage before
the actor starts, the artifacts it copies back, and how frames become appends with command ids
that make a restarted daemon append nothing twice. (Starting, following and stopping the actor
run against a real cluster in test_ray_backend.py.)"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from tests.daemon.jobs_support import Env, make_env
from tunelog.daemon.jobs.backend import BackendChoice
from tunelog.daemon.jobs.protocol import Message, encode_frame
from tunelog.daemon.jobs.ray_backend import RayAttempt, RayBackend
from tunelog.daemon.jobs.ray_storage import ObjectStore, SharedFolder
from tunelog.events.errors import JobError
from tunelog.store.artifacts import ArtifactStore


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


def backend(env: Env, shared: str, *, max_jobs: int = 2) -> RayBackend:
    return RayBackend(BackendChoice("ray", address="ray://head:10001", shared=shared, max_jobs=max_jobs), env.paths)


def ray_attempt(env: Env, shared: str, operation: str = "outputs", **kw: Any) -> RayAttempt:
    row = env.submit(env.runner(), operation, **kw)
    return backend(env, shared).attempt(row, "ray0", store=env.store, grace_s=2.0, flush_s=0.01)


class ActorHandle:
    """Stands in for a Ray actor handle (Ray's boundary): records what `ack.remote` was told."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.ack = SimpleNamespace(remote=self.acked.append)


def test_the_backend_has_ray_max_jobs_slots_and_opens_its_storage(env: Env, tmp_path: Path) -> None:
    b = backend(env, str(tmp_path / "shared"), max_jobs=3)
    assert b.slots == ["ray0", "ray1", "ray2"] and b.kind == "ray"
    assert (b.location, b.address) == (str(tmp_path / "shared"), "ray://head:10001")
    assert isinstance(b.storage, SharedFolder) and b.storage.root == tmp_path / "shared"
    assert b.actor_name("0001-abc") == "tunelog-job-0001-abc"


def test_a_job_ships_its_code_and_inputs_to_a_shared_folder_and_its_log_lives_there(env: Env, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    data = env.artifacts.put_bytes(b"a dataset").sha256
    absent = "f" * 64  # a hash in the inputs the daemon's store lacks is no artifact to ship
    a = ray_attempt(env, str(shared), inputs={"data": data, "other": f"{absent}:0.5"})
    assert (a.folder, a.log_path) == (shared / "jobs" / a.row.job_id, shared / "jobs" / a.row.job_id / "worker.log")
    a.storage.prepare()  # what joining the cluster does
    spec, fetch = a._spec()
    assert fetch == [data]
    assert ArtifactStore(shared / "artifacts").read_bytes(data) == b"a dataset"
    assert a.folder.is_dir()
    code = shared / "plugin-code" / env.code_hash
    assert (code / "manifest.yaml").is_file()
    assert (spec.job_id, spec.plugin, spec.operation, spec.code_dir) == (a.row.job_id, "testops", "outputs", str(code))
    assert (spec.params, spec.inputs, spec.resume_sha256, spec.run_id, spec.uses) == (
        a.row.params, a.row.inputs, None, None, {})
    assert (spec.artifacts, spec.workdir, spec.cache_dir) == (
        str(shared / "artifacts"), str(a.folder / "work"), str(shared / "cache"))


def test_a_job_whose_code_snapshot_is_gone_is_refused_naming_it(env: Env, tmp_path: Path) -> None:
    a = ray_attempt(env, str(tmp_path / "shared"))
    a.storage.prepare()
    (env.paths.plugin_code / env.code_hash).rename(tmp_path / "moved")
    with pytest.raises(JobError) as refused:
        a._spec()
    assert refused.value.message == f"the code snapshot {env.code_hash[:12]} of plugin 'testops' is missing"
    (tmp_path / "moved").rename(env.paths.plugin_code / env.code_hash)
    a.row = msgspec.structs.replace(a.row, uses={"helper": "d" * 64})  # another plugin the job calls
    with pytest.raises(JobError) as refused:
        a._spec()
    assert refused.value.message == f"the code snapshot {'d' * 12} of plugin 'helper' is missing"


def test_with_s3_the_spec_leaves_the_folders_to_the_node_and_the_inputs_are_uploaded(
        env: Env, s3_server: Any, bucket: str) -> None:
    data = env.artifacts.put_bytes(b"a dataset").sha256
    a = ray_attempt(env, bucket, inputs={"data": data})
    assert isinstance(a.storage, ObjectStore)
    assert a.log_path == env.paths.jobs / a.row.job_id / "worker.log"  # brought back when the job ends
    spec, fetch = a._spec()
    assert fetch == [data] and a.storage.has(data)
    assert (spec.code_dir, spec.artifacts, spec.workdir, spec.cache_dir) == (f"plugin-code/{env.code_hash}", "", "", "")
    assert not (env.paths.jobs / a.row.job_id).exists()


def test_announced_artifacts_are_copied_from_the_storage_and_a_result_s_other_hashes_are_left(
        env: Env, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    a = ray_attempt(env, str(shared))
    node = ArtifactStore(shared / "artifacts")
    report = node.put_bytes(b"a report").sha256
    ckpt = node.put_bytes(b"a checkpoint").sha256
    a._import_artifacts([Message("result", {"outputs": {"text": "f" * 64}}),  # no artifact: left alone
                         Message("artifact", {"name": "report", "sha256": report, "size": 8}),
                         Message("checkpoint", {"step": 1, "sha256": ckpt, "size": 12})])
    assert env.artifacts.read_bytes(report) == b"a report" and env.artifacts.read_bytes(ckpt) == b"a checkpoint"
    assert not env.artifacts.exists("f" * 64)
    other = node.put_bytes(b"an output").sha256
    later = node.put_bytes(b"another output").sha256
    a._import_artifacts([Message("result", {"outputs": {"out": other, "old": report, "new": later}})])
    assert env.artifacts.read_bytes(other) == b"an output"  # in the storage: copied
    assert env.artifacts.read_bytes(later) == b"another output"  # after one the daemon had already
    missing = "e" * 64
    with pytest.raises(JobError, match=f"artifact {missing[:12]} is missing from the shared storage"):
        a._import_artifacts([Message("artifact", {"name": "x", "sha256": missing, "size": 1})])


@pytest.mark.anyio
async def test_frames_are_appended_once_with_their_ids_and_a_restarted_daemon_resumes_after_the_last(
        env: Env, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    a = ray_attempt(env, str(shared))
    jid = a.row.job_id
    assert a._last_applied() == 0
    report = ArtifactStore(shared / "artifacts").put_bytes(b"a report").sha256
    frames = [(1, encode_frame("progress", {"step": 1, "total": 2})),
              (2, encode_frame("log", {"line": "saving"})),
              (3, encode_frame("artifact", {"name": "report", "sha256": report, "size": 8})),
              (4, encode_frame("log", {"line": "saved"}))]
    actor = ActorHandle()
    await a._apply(frames[:3], actor)
    await a._apply(frames, actor)  # 1 to 3 again (a take before the ack landed): only 4 is new
    await a._apply(frames, actor)  # nothing new: no append, no ack
    assert actor.acked == [3, 4]
    envs = [e for e in env.store.read(stream=a.stream) if e.type != "job-queued"]
    assert [(e.command_id, type(e.event).__name__) for e in envs] == [
        (f"ray:{jid}:3", "JobProgress"), (f"ray:{jid}:3", "JobLog"), (f"ray:{jid}:3", "JobArtifact"),
        (f"ray:{jid}:4", "JobLog")]
    assert env.artifacts.read_bytes(report) == b"a report"  # copied before its event was appended
    again = ray_attempt_of(env, shared, a)
    assert again._last_applied() == 4  # a daemon that restarts pulls after frame 4
    await again._apply(frames, actor)
    assert len([e for e in env.store.read(stream=a.stream) if e.type != "job-queued"]) == 4


def ray_attempt_of(env: Env, shared: Path, a: RayAttempt) -> RayAttempt:
    """A new daemon's attempt of the same job (re-attaching)."""
    return backend(env, str(shared)).attempt(a.row, "ray0", store=env.store, grace_s=2.0, flush_s=0.01, reattach=True)


@pytest.mark.anyio
async def test_an_event_for_another_stream_splits_the_frames_at_its_id(env: Env, tmp_path: Path) -> None:
    from tunelog.events.plugins import PluginRemoved

    shared = tmp_path / "shared"
    a = ray_attempt(env, str(shared), run_id="r1")
    jid = a.row.job_id
    note = PluginRemoved(name="x", path="/p")
    event = {"stream": "run-r1", "type": note.tag, "schema_version": note.schema_version,
             "payload": msgspec.json.encode(note).decode()}
    own = {**event, "stream": a.stream}
    frames = [(5, encode_frame("log", {"line": "before"})), (6, encode_frame("event", event)),
              (7, encode_frame("log", {"line": "between"})), (8, encode_frame("event", own)),
              (9, encode_frame("log", {"line": "after"}))]
    await a._apply(frames, ActorHandle())
    mine = [(e.command_id, type(e.event).__name__) for e in env.store.read(stream=a.stream) if e.type != "job-queued"]
    assert mine == [(f"ray:{jid}:5", "JobLog"), (f"ray:{jid}:8", "JobLog"), (f"ray:{jid}:8", "PluginRemoved"),
                    (f"ray:{jid}:9", "JobLog")]  # an event for the job's own stream goes with what is buffered
    run = [e for e in env.store.read(stream="run-r1") if e.type == note.tag]
    assert [(e.command_id, e.causation_id, e.correlation_id) for e in run] == [(f"ray:{jid}:6:run-r1", a.stream, "r1")]
    assert a._last_applied() == 9


def test_an_attempt_keeps_its_slot_and_settings_and_ships_a_resumed_job_s_checkpoint_and_other_plugins(
        env: Env, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    b = backend(env, str(shared))
    b.storage.prepare()
    row = env.submit(env.runner(), "outputs", run_id="r1")
    a = b.attempt(row, "ray1", store=env.store, grace_s=3.0, flush_s=0.5)
    assert (a.slot, a.grace_s, a.flush_s, a.reattach, a.backend) == ("ray1", 3.0, 0.5, False, b)
    assert b.attempt(row, "ray1", store=env.store, grace_s=3.0, flush_s=0.5, reattach=True).reattach
    ckpt = env.artifacts.put_bytes(b"a checkpoint").sha256
    resumed = msgspec.structs.replace(row, resume_of="0000-earlier", resume_checkpoint=ckpt,
                                      uses={"helper": env.code_hash})
    a = b.attempt(resumed, "ray1", store=env.store, grace_s=3.0, flush_s=0.5)
    old = os.umask(0)
    try:
        spec, fetch = a._spec()
        assert a._spec() == (spec, fetch)  # again (a daemon that restarts before the actor started)
    finally:
        os.umask(old)
    assert fetch == [ckpt] and ArtifactStore(shared / "artifacts").read_bytes(ckpt) == b"a checkpoint"
    assert (spec.resume_sha256, spec.run_id) == (ckpt, "r1")
    assert spec.uses == {"helper": str(shared / "plugin-code" / env.code_hash)}
    assert a.folder.stat().st_mode & 0o777 == 0o700
