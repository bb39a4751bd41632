"""The job's Ray actor (`ray_host.JobHost`) in process, without Ray: what it does on its node is
plain threads and a real worker process (the testops plugin run by the real worker entry point),
and the daemon's side of it is `take`/`ack`/`stop`. Placing the actor on a node and the Ray Train
run are covered against a real cluster in test_ray_backend.py."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.daemon.jobs_support import TESTOPS
from tests.daemon.test_ray_storage import keys
from tunelog.daemon.jobs.protocol import Message, WorkerSpec, encode_frame
from tunelog.daemon.jobs.ray_host import JobHost, ray_train_outcome, read_frames, start_worker
from tunelog.daemon.jobs.ray_storage import ObjectStore, SharedFolder, open_storage, place_job
from tunelog.daemon.plugin_host.snapshots import snapshot
from tunelog.store.artifacts import ArtifactStore

_decode = msgspec.msgpack.Decoder(Message).decode


def frame(n: int) -> bytes:
    return encode_frame("progress", {"step": n})


def test_frames_are_numbered_kept_until_acknowledged_and_the_end_comes_after_the_last_frame() -> None:
    host = JobHost("j1")
    host.push([frame(1), frame(2)])
    host.push([frame(3)])
    reply = host.take(0, wait_s=0)
    assert reply == {"frames": [(1, frame(1)), (2, frame(2)), (3, frame(3))], "returncode": None, "forced": False,
                     "lost": None, "tail": []}
    assert [seq for seq, _ in host.take(2, wait_s=0)["frames"]] == [3]
    host.ack(2)
    assert [seq for seq, _ in host.take(0, wait_s=0)["frames"]] == [3]  # 1 and 2 are forgotten
    host.finish(3)
    host.finish(0)  # the first exit status counts
    assert host.take(0, wait_s=0)["returncode"] is None  # a frame is still unread: not the end yet
    assert host.take(3, wait_s=0) == {"frames": [], "returncode": 3, "forced": False, "lost": None, "tail": []}
    host.ack(3)
    host.push([frame(4)])
    assert host.take(3, wait_s=0)["frames"] == [(4, frame(4))]  # numbering goes on


def test_take_waits_for_a_frame_or_the_end_and_no_longer() -> None:
    host = JobHost("j1")
    start = time.monotonic()
    assert host.take(0, wait_s=0.3)["frames"] == []
    assert time.monotonic() - start >= 0.3
    threading.Timer(0.2, host.push, args=([frame(1)],)).start()
    start = time.monotonic()
    assert host.take(0, wait_s=30)["frames"] == [(1, frame(1))]  # woken by the push
    assert time.monotonic() - start < 10
    threading.Timer(0.2, host.finish, args=(0,)).start()
    start = time.monotonic()
    assert host.take(1, wait_s=30)["returncode"] == 0  # woken by the end
    assert time.monotonic() - start < 10


def test_ranks_report_their_end_and_a_stop_is_remembered_without_a_worker() -> None:
    host = JobHost("j1")
    assert host.rank_ends() == {} and not host.stopping()
    host.rank_ended(1, -9)
    host.rank_ended(0, 1)
    ends = host.rank_ends()
    assert ends == {1: -9, 0: 1}
    ends[2] = 0
    assert host.rank_ends() == {1: -9, 0: 1}  # a copy
    host.stop(1.0)  # no worker yet (a Ray Train run polls `stopping`)
    assert host.stopping() and host.take(0, wait_s=0)["forced"] is False


def test_read_frames_hands_on_whole_frames_until_the_channel_closes() -> None:
    got: list[list[bytes]] = []
    read_frames(io.BytesIO(frame(1) + frame(2)), got.append)
    assert got == [[frame(1)], [frame(2)]]
    for cut in (frame(3)[:2], frame(3)[:-1]):  # the channel closed inside a header, inside a body
        got.clear()
        read_frames(io.BytesIO(frame(1) + cut), got.append)
        assert got == [[frame(1)]]
    read_frames(io.BytesIO(b""), got.append)


# --- a real worker on this "node" ------------------------------------------------------------------


def place(storage: SharedFolder | ObjectStore, tmp_path: Path, operation: str, params: dict[str, Any]) -> bytes:
    """The job's spec as the daemon writes it for the storage (RayAttempt._spec)."""
    code_hash, code = snapshot(TESTOPS, tmp_path / "daemon-code")
    spec = WorkerSpec(job_id="j1", plugin="testops", operation=operation, params=params, inputs={},
                      code_dir=storage.ship_code(code_hash, code), **storage.spec_paths("j1"))
    return msgspec.json.encode(spec)


def run(host: JobHost, *, timeout: float = 60) -> tuple[list[Message], dict[str, Any]]:
    """Pull and acknowledge frames as the daemon does until the worker has ended."""
    messages: list[Message] = []
    after, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = host.take(after, wait_s=1.0)
        for seq, raw in reply["frames"]:
            messages.append(_decode(raw[4:]))
            after = seq
        host.ack(after)
        if reply["returncode"] is not None:
            return messages, reply
    raise AssertionError(f"the worker did not end within {timeout} s: {messages}")


def test_a_worker_runs_in_the_shared_folder_in_its_own_group_and_its_end_carries_the_log_tail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    storage = SharedFolder(shared)
    storage.prepare()
    job = shared / "jobs" / "j1"
    host = JobHost("j1")
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # the worker's own setting, not inherited
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")  # the node's environment is passed on
    spec = place(storage, tmp_path, "env", {})
    # started from a thread that ends at once, as a Ray actor's call runs in a pool: the worker lives on
    thread = threading.Thread(target=host.run_worker, args=(str(shared), job, spec), kwargs={"fetch": []})
    thread.start()
    thread.join()
    messages, reply = run(host)
    assert messages[-1].kind == "result"
    seen = messages[-1].body["outputs"]["seen"]
    assert (seen["job_id"], seen["cwd"], seen["pgid_is_pid"], seen["no_bytecode"]) == ("j1", str(job), True, True)
    assert seen["cuda"] == "7"
    assert (reply["returncode"], reply["forced"], reply["lost"]) == (0, False, None)
    assert reply["tail"] == (job / "worker.log").read_text().splitlines()[-20:]


def test_the_end_carries_the_last_20_lines_of_at_most_32_kib_of_the_log(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    storage = SharedFolder(shared)
    storage.prepare()
    job = shared / "jobs" / "j1"
    job.mkdir(parents=True)
    (job / "worker.log").write_bytes(b"x" * 40_000 + b"\n" + b"".join(b"line %d\n" % i for i in range(30)))
    host = JobHost("j1")
    assert host.run_worker(str(shared), job, place(storage, tmp_path, "fail", {}), fetch=[]) is None
    assert host.take(0, wait_s=0)["tail"] == []  # not ended yet (the worker is still starting Python)
    messages, reply = run(host)
    assert messages[-1].kind == "error" and reply["returncode"] != 0
    assert len(reply["tail"]) == 20 and "about to fail" in "\n".join(reply["tail"])
    (job / "worker.log").write_bytes(b"y" * 40_000 + b"\nlast\n")
    assert host.take(0, wait_s=0)["tail"] == ["y" * (32_768 - 6), "last"]  # the start of the long line cut
    (job / "worker.log").write_bytes(b"first\n\xff not utf-8\n")
    assert host.take(0, wait_s=0)["tail"] == ["first", "\ufffd not utf-8"]  # a short log whole, bad bytes replaced


def test_stop_terms_the_worker_and_kills_one_that_ignores_it_after_the_grace_period(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    storage = SharedFolder(shared)
    storage.prepare()
    for operation, params, forced, returncode in (("sleep", {"seconds": 60}, False, 0),
                                                  ("hang", {"seconds": 60}, True, -9)):
        job = shared / "jobs" / operation
        host = JobHost("j1")
        assert host.run_worker(str(shared), job, place(storage, tmp_path, operation, params), fetch=[]) is None
        deadline = time.monotonic() + 60
        while not host.take(0, wait_s=1.0)["frames"]:  # its first progress: it is running the operation
            assert time.monotonic() < deadline
        start = time.monotonic()
        host.stop(grace_s=1.0)
        assert host.stopping() and time.monotonic() - start < 30
        messages, reply = run(host)
        assert (reply["returncode"], reply["forced"]) == (returncode, forced), (operation, reply)
        host.stop(grace_s=1.0)  # ended already: nothing to do
        assert host.take(0, wait_s=0)["forced"] is forced


def test_with_s3_the_job_is_downloaded_its_artifact_uploaded_before_its_frame_and_its_log_kept(
        tmp_path: Path, s3_server: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNELOG_RAY_NODE_DIR", str(tmp_path / "node"))
    storage = open_storage(bucket)
    assert isinstance(storage, ObjectStore)
    job = tmp_path / "node" / "jobs" / "j1"
    host = JobHost("j1")
    spec = place(storage, tmp_path, "outputs", {"text": "hello"})
    assert host.run_worker(bucket, job, spec, fetch=[]) is None
    messages, reply = run(host)
    assert reply["returncode"] == 0, reply
    report = messages[-1].body["outputs"]["report"]
    assert storage.has(report)
    storage.get(report, ArtifactStore(tmp_path / "daemon"))  # the daemon's copy, re-hashed
    assert ArtifactStore(tmp_path / "daemon").read_bytes(report) == b"hello"
    assert "jobs/j1/worker.log" in keys(s3_server, bucket)
    assert not (job / "artifacts").exists() and not (job / "work").exists()  # the node's copies freed

    missing = "e" * 64
    other = JobHost("j2")
    error = other.run_worker(bucket, tmp_path / "node" / "jobs" / "j2", spec, fetch=[missing])
    assert error is not None and f"{bucket}/artifacts/sha256/ee/{missing} is missing" in error
    assert other.take(0, wait_s=0)["returncode"] is None  # nothing started


def test_a_ray_train_outcome_names_rank_0_s_status_and_the_first_line_of_the_error() -> None:
    assert ray_train_outcome({1: 2, 0: 3}, "boom", stop_asked=False) == (3, None)  # rank 0's, though it ended last
    assert ray_train_outcome({1: 1}, "boom", stop_asked=False) == (1, None)  # exit status 1 is a failure too
    for error in ("", " \n\t\n"):  # nothing said: the reason still reads whole
        assert ray_train_outcome({}, error, stop_asked=False) == (1, "the Ray Train run lost a worker or its node: ")
    lost = ray_train_outcome({}, "\n  " + "x" * 400 + "\nmore", stop_asked=False)[1]
    assert lost == "the Ray Train run lost a worker or its node: " + "x" * 300


def test_a_rank_s_worker_started_to_die_with_its_parent_is_killed_when_the_starting_thread_ends(
        tmp_path: Path) -> None:
    """Linux sends the parent-death signal when the thread that started the process ends: here a
    thread of this test stands for a Ray Train worker that dies."""
    shared = tmp_path / "shared"
    storage = SharedFolder(shared)
    storage.prepare()
    job = shared / "jobs" / "j1"
    place_job(str(shared), job, place(storage, tmp_path, "hang", {"seconds": 60}), fetch=[])
    started: list[subprocess.Popen[bytes]] = []
    with open(job / "worker.log", "ab") as log:
        thread = threading.Thread(target=lambda: started.append(
            start_worker(job, "j1", stdout=subprocess.DEVNULL, stderr=log, die_with_parent=True)))
        thread.start()
        thread.join()
    try:
        assert started[0].wait(timeout=30) == -signal.SIGKILL
    finally:
        if started[0].poll() is None:
            os.killpg(started[0].pid, signal.SIGKILL)
            started[0].wait()


def test_with_s3_a_worker_whose_artifact_cannot_be_uploaded_is_stopped_and_its_frame_never_goes_on(
        tmp_path: Path, s3_server: Any, bucket: str) -> None:
    storage = open_storage(bucket)
    assert isinstance(storage, ObjectStore)
    job = tmp_path / "node" / "jobs" / "j1"
    host = JobHost("j1")
    assert host.run_worker(bucket, job, place(storage, tmp_path, "outputs", {"text": "hello", "delay": 3}),
                           fetch=[]) is None  # placed: the bucket is not read again before the upload
    name = bucket.removeprefix("s3://").split("/", 1)[0]
    for key in s3_server.list_objects_v2(Bucket=name).get("Contents", []):
        s3_server.delete_object(Bucket=name, Key=key["Key"])
    s3_server.delete_bucket(Bucket=name)
    storage.fs.invalidate_cache()
    messages, reply = run(host)
    assert [m.kind for m in messages if m.kind in ("artifact", "result")] == []  # nothing announced went on
    assert reply["tail"][-1].startswith("tunelog: ") and "bucket does not exist" in reply["tail"][-1], reply
