"""The Ray job backend against a real local Ray cluster: a head without CPUs and two one-CPU
nodes, each with its own temp dir, fast health checks, all inside a loopback-only network
namespace. The daemon runs as a real process with TUNELOG_RAY_ADDRESS pointing at the cluster;
jobs run the same worker entry point inside Ray actors, their artifacts reach the daemon's store
through a shared folder (or an S3 bucket: moto's S3 server on 127.0.0.1, which the nodes reach
through s3fs's usual AWS_* environment), and the daemon alone appends their events, once each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.daemon_proc import Daemon, running
from tests.daemon.test_training_runs import submit, two_nodes, wait_checkpoint, wait_run, write_data
from tests.support import netns
from tunelog.store.artifacts import ArtifactStore

pytestmark = [
    pytest.mark.slow,
    # Ray's head opens its client server's log files and never closes them (ray/_private/node.py).
    pytest.mark.filterwarnings("ignore:Exception ignored in.*ray_client_server:pytest.PytestUnraisableExceptionWarning"),
]

FAST_HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
               "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}


CLIENT_PORT = 10001
S3_PORT = 10002
S3 = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{S3_PORT}", "AWS_ACCESS_KEY_ID": "testing",
      "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
"""How s3fs on the nodes and in the daemon finds the test's S3 server (what a cluster sets for its bucket)."""
BUCKET = "tunelog-test"


class LocalCluster:
    """The Ray cluster of this module and the knobs its tests turn."""

    def __init__(self, root: Path):
        from ray.cluster_utils import Cluster

        self.root = root
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "temp_dir": str(root / "head"), "include_dashboard": False, "_system_config": FAST_HEALTH,
            "ray_client_server_port": CLIENT_PORT})  # the port is free: this namespace is ours
        self.nodes = [self.add_node() for _ in range(2)]

    def add_node(self) -> Any:
        return self.cluster.add_node(num_cpus=1, temp_dir=tempfile.mkdtemp(prefix="node", dir=self.root))

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def kill_node(self, node_id: str) -> None:
        """Kill every process of the worker node whose id starts with `node_id` (no graceful stop)."""
        node = next(n for n in self.cluster.worker_nodes if n.node_id.startswith(node_id))
        self.cluster.remove_node(node, allow_graceful=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    reason = netns.why_not()
    if reason:
        pytest.skip(f"the Ray cluster tests run in a private network namespace: {reason}")
    root = Path(tempfile.mkdtemp(prefix="tlray", dir="/tmp"))  # short: Ray's socket paths live under it
    (root / "ray").mkdir()
    env = {"RAY_TMPDIR": str(root), **S3}  # Ray's address file, away from the shared /tmp/ray; the nodes' S3
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with netns.loopback_only():
            c = LocalCluster(root)
            try:
                yield c
            finally:
                c.cluster.shutdown()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def s3(cluster: LocalCluster) -> Iterator[Any]:
    """moto's S3 server inside the cluster's namespace, with an empty bucket; a boto3 client of it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
    server.start()
    try:
        client = boto3.client("s3", endpoint_url=S3["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        server.stop()


def s3_keys(client: Any, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def ray_daemon(home: Path, cluster: LocalCluster, *, builtins: bool = False, shared: str = "") -> Daemon:
    """A daemon that joins the cluster as a driver, by its GCS address in TUNELOG_RAY_ADDRESS."""
    return Daemon(home, builtins=builtins, grace_s=5.0, env={
        "TUNELOG_RAY_ADDRESS": cluster.address,
        "TUNELOG_RAY_SHARED": shared or str(home.parent / "shared")}).start(timeout=60)


def configured_daemon(home: Path) -> Daemon:
    """A daemon whose saved settings (`tunectl daemon config set`) point it at the cluster's Ray Client port."""
    for key, value in (("backend", f"ray://127.0.0.1:{CLIENT_PORT}"), ("ray_shared", str(home.parent / "shared"))):
        subprocess.run([sys.executable, "-m", "tunelog.frontends.cli.main", "daemon", "config", "set", key, value],
                       env={**os.environ, "TUNELOG_HOME": str(home)}, check=True, capture_output=True)
    return Daemon(home, grace_s=5.0).start(timeout=60)


def events(home: Path, job_id: str) -> list[tuple[str, str, str | None]]:
    """(type, payload, command id) of a job's stream, read straight from the log file."""
    with sqlite3.connect(f"file:{home / 'log.sqlite'}?mode=ro", uri=True) as db:
        return list(db.execute("SELECT type, payload, command_id FROM events WHERE stream = ? ORDER BY position",
                               (f"job-{job_id}",)))


def assert_appended_once(home: Path, job_id: str) -> None:
    """No append twice (the events of one append share its command id), and the frames' ids only go up."""
    ids = [c for c, _ in groupby(c for _, _, c in events(home, job_id) if c)]
    assert not [c for c, n in Counter(ids).items() if n > 1]
    prefix = f"ray:{job_id}:"
    frames = [int(c[len(prefix):]) for c in ids if c.startswith(prefix) and c[len(prefix):].isdigit()]
    assert frames, ids
    assert frames == sorted(frames) and len(frames) == len(set(frames))


def node_of(home: Path, job_id: str) -> str:
    """The Ray node a job's worker runs on, from the line the daemon logged when it started it."""
    for kind, payload, _ in events(home, job_id):
        if kind == "job-log" and "running on Ray node " in payload:
            return payload.split("running on Ray node ", 1)[1].split(" ", 1)[0]
    raise AssertionError("the job never said where it runs")


def wait_progress(d: Daemon, job_id: str, at_least: int, *, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = d.get(f"/v1/jobs/{job_id}").json()["job"]
        if (job.get("step") or 0) >= at_least:
            return job  # type: ignore[no-any-return]
        assert job["state"] in ("queued", "running"), job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} made no progress to {at_least}")


def test_a_job_on_ray_appends_every_frame_once_and_its_artifact_lands_in_the_daemon_store(
        tmp_path: Path, cluster: LocalCluster) -> None:
    d = configured_daemon(tmp_path / "home")
    try:
        status = d.get("/v1/status").json()["backend"]
        assert status["kind"] == "ray" and status["cpus"] == 2 and len([n for n in status["nodes"] if n["alive"]]) == 3
        shown = subprocess.run([sys.executable, "-m", "tunelog.frontends.cli.main", "status"], env=d.env,
                               capture_output=True, text=True, check=True).stdout
        assert f"backend   ray ray://127.0.0.1:{CLIENT_PORT}: 3 nodes alive, CPUs 2/2 free, GPUs 0/0 free" in shown, shown
        assert "local     datasets.* (ray_local_ops: these jobs run on this machine)" in shown, shown
        job = d.wait_job(d.submit("progress", params={"n": 300})["job_id"], ("succeeded", "failed"), timeout=60)
        assert job["state"] == "succeeded", job
        assert job["outputs"] == {"count": 300}
        points = [p for k, payload, _ in events(d.home, job["job_id"]) if k == "job-metrics"
                  for p in json.loads(payload)["points"]]
        assert [p["step"] for p in points] == list(range(300))  # every point, once, in order
        assert_appended_once(d.home, job["job_id"])
        made = d.wait_job(d.submit("fake_adapter", params={"r": 4})["job_id"], ("succeeded", "failed"), timeout=60)
        sha = made["outputs"]["adapter"]
        assert ArtifactStore(d.home / "artifacts").path(sha).is_dir()  # verified by its sha256 in our store
    finally:
        d.stop()


def test_cancel_on_ray_checkpoints_then_stops_and_a_job_waiting_for_the_cluster_is_cancelled_too(
        tmp_path: Path, cluster: LocalCluster) -> None:
    d = ray_daemon(tmp_path / "home", cluster)
    try:
        busy = [d.submit("checkpointing", params={"steps": 100_000, "step_s": 0.01})["job_id"] for _ in range(2)]
        for job_id in busy:
            wait_progress(d, job_id, 5)
        waiting = d.submit("sleep", params={"seconds": 0})["job_id"]  # both nodes' CPUs are taken
        deadline = time.monotonic() + 30
        while not any("waiting for the Ray cluster" in p for k, p, _ in events(d.home, waiting) if k == "job-log"):
            assert time.monotonic() < deadline, events(d.home, waiting)
            time.sleep(0.1)
        assert d.post(f"/v1/jobs/{waiting}/cancel", json={}).status_code == 202
        assert d.wait_job(waiting, ("cancelled", "failed", "succeeded"), timeout=15)["state"] == "cancelled"
        assert "job-started" not in [k for k, _, _ in events(d.home, waiting)]
        for job_id in busy:
            assert d.post(f"/v1/jobs/{job_id}/cancel", json={}).status_code == 202
        for job_id in busy:
            job = d.wait_job(job_id, ("cancelled", "failed", "succeeded"), timeout=30)
            assert job["state"] == "cancelled", job
            kinds = [k for k, _, _ in events(d.home, job_id)]
            assert "job-checkpointed" in kinds and kinds[-1] == "job-cancelled"
            assert ArtifactStore(d.home / "artifacts").path(job["checkpoint_sha256"]).is_dir()
            assert '"forced":false' in events(d.home, job_id)[-1][1].replace(" ", "")
    finally:
        d.stop()


def test_a_restarted_daemon_reattaches_to_its_ray_job_and_appends_nothing_twice(
        tmp_path: Path, cluster: LocalCluster) -> None:
    home = tmp_path / "home"
    d = ray_daemon(home, cluster)
    job_id = d.submit("checkpointing", params={"steps": 1500, "step_s": 0.01})["job_id"]
    wait_progress(d, job_id, 20)
    assert d.stop(signal.SIGTERM) == 0  # a clean stop leaves the job running on the cluster
    d = ray_daemon(home, cluster)
    step = wait_progress(d, job_id, 1)["step"]
    assert d.get(f"/v1/jobs/{job_id}").json()["job"]["state"] == "running"
    wait_progress(d, job_id, step + 20)
    d.stop(signal.SIGKILL)  # no goodbye: frames it appended but had not acknowledged come again
    d = ray_daemon(home, cluster)
    try:
        job = d.wait_job(job_id, ("succeeded", "failed", "interrupted", "cancelled"), timeout=90)
        assert job["state"] == "succeeded", job
        assert job["outputs"]["step"] == 1500 and job["outputs"]["resumed_from"] == 0  # the same worker went on
        lines = "".join(p for k, p, _ in events(home, job_id) if k == "job-log")
        assert lines.count("re-attached to Ray actor") == 2
        assert [k for k, _, _ in events(home, job_id)].count("job-started") == 1
        assert_appended_once(home, job_id)
    finally:
        d.stop()


def test_a_local_run_replayed_on_ray_through_a_lost_node_verifies_bit_identical_and_its_dataset_job_stays_local(
        tmp_path: Path, cluster: LocalCluster, tiny_model_dir: Path) -> None:
    """`tunectl replay RUN --verify` across backends: a run trained by the local backend, replayed
    by a daemon on the same home pointed at the cluster, while one node is lost mid-training. The
    dataset node stays on this machine (`ray_local_ops` default `datasets.*`), the trainer goes to
    the cluster, and the replay's adapter is bit-identical to the original's."""
    data = write_data(tmp_path / "train.jsonl")
    graph = two_nodes(tiny_model_dir, data, max_steps=24, save_every=4)
    home = tmp_path / "home"
    with running(home, builtins=True) as local:
        assert local.get("/v1/status").json()["backend"] == {"kind": "local"}
        original = submit(local, graph)["run"]["run_id"]
    d = ray_daemon(home, cluster, builtins=True)
    try:
        view, jobs = replay_losing_a_node(d, home, cluster, original)
        assert all(view["jobs"][j]["slot"].startswith("ray") for j in jobs)  # the trainer ran on the cluster
        prepared = view["jobs"][view["run"]["nodes"]["data"]["job_id"]]
        assert not prepared["slot"].startswith("ray"), prepared  # the dataset job ran here, by the default rule
        assert any("matches ray_local_ops 'datasets.*'" in p for k, p, _ in events(home, prepared["job_id"])
                   if k == "job-log")
        for j in jobs:
            assert_appended_once(home, j)
    finally:
        d.stop()
        cluster.nodes.append(cluster.add_node())  # the next test gets two nodes again


def replay_losing_a_node(d: Daemon, home: Path, cluster: Any, original: str) -> tuple[dict[str, Any], list[str]]:
    """`replay --verify` of `original` on the cluster, killing the node of its training job after a
    checkpoint: the replay resumes elsewhere and is bit-identical. (The run's view, the train node's jobs.)"""
    replaying = subprocess.Popen([sys.executable, "-m", "tunelog.frontends.cli.main", "replay", original, "--verify",
                                  "--json"], env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = wait_replay(d, original)
        job = wait_checkpoint(d, run_id, "train", at_least=4, timeout=120)
        cluster.kill_node(node_of(home, job["job_id"]))
        out, err = replaying.communicate(timeout=240)
    finally:
        if replaying.poll() is None:
            replaying.kill()
    assert replaying.returncode == 0, (out, err)
    report = json.loads(out)
    assert report["verdict"] == "bit-identical", report["summary"]
    assert report["nodes"]["train"]["verdict"] == "bit-identical", report["nodes"]["train"]
    assert not report["nodes"]["train"]["outputs"]["artifacts_differ"]  # the adapter folder, by sha256
    view = d.get(f"/v1/runs/{run_id}").json()
    jobs = view["run"]["nodes"]["train"]["jobs"]
    assert view["jobs"][jobs[0]]["state"] == "interrupted" and view["jobs"][jobs[-1]]["resume_of"] == jobs[0]
    assert view["run"]["training"][jobs[-1]]["resumed_from_step"] >= 4
    return view, jobs


def wait_replay(d: Daemon, original: str, *, timeout: float = 30) -> str:
    """The id of the run that replays `original`, once the replay command has submitted it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in d.get("/v1/runs").json()["runs"]:
            if run.get("replay_of") == original:
                return str(run["run_id"])
        time.sleep(0.1)
    raise TimeoutError(f"no replay of {original}")


@pytest.mark.parametrize("storage", ["folder", "s3"])
def test_a_two_device_job_trains_as_a_ray_train_ddp_run_over_both_nodes_and_reports_once(
        tmp_path: Path, cluster: LocalCluster, tiny_model_dir: Path, storage: str, request: pytest.FixtureRequest) -> None:
    """`devices=2` on the Ray backend: a TorchTrainer with two gloo workers, one per node, each
    running the worker entry point as its rank; rank 0 alone reports, the adapter lands by sha256.
    On S3 each rank places the job on its own node and Ray Train keeps its state in the bucket."""
    data = write_data(tmp_path / "train.jsonl")
    home = tmp_path / "home"
    client = request.getfixturevalue("s3") if storage == "s3" else None
    d = ray_daemon(home, cluster, builtins=True, shared=f"s3://{BUCKET}/ddp" if client else "")
    try:
        view = submit(d, two_nodes(tiny_model_dir, data, max_steps=3, devices=2))
        assert view["run"]["state"] == "succeeded", view["run"]["nodes"]
        job = view["jobs"][view["run"]["nodes"]["train"]["job_id"]]
        assert job["devices"] == 2
        outputs = view["run"]["nodes"]["train"]["outputs"]
        assert outputs["metrics"]["processes"] == 2
        assert ArtifactStore(home / "artifacts").path(outputs["adapter"]).is_dir()
        points = [p for k, payload, _ in events(home, job["job_id"]) if k == "job-metrics"
                  for p in json.loads(payload)["points"] if "loss" in p]
        steps = [p["step"] for p in points]
        assert steps == sorted(set(steps)) and steps[-1] == 3  # one reporter: no step twice
        assert_appended_once(home, job["job_id"])
        if client is not None:
            keys = s3_keys(client, f"ddp/jobs/{job['job_id']}/")
            assert any("/ray-train/" in k for k in keys), keys
            assert {f"ddp/jobs/{job['job_id']}/worker.log", f"ddp/jobs/{job['job_id']}/worker-rank1.log"} <= set(keys)
    finally:
        d.stop()


def rank_worker(job_id: str, rank: int) -> int | None:
    """The pid of the worker process a Ray Train run started as `rank` for this job, if it runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"tunelog.daemon.jobs.worker" in cmd and f"RANK={rank}".encode() in env and job_id in cwd:
            return int(entry.name)
    return None


def test_a_rank_whose_worker_dies_interrupts_the_two_device_job_and_the_run_resumes_it(
        tmp_path: Path, cluster: LocalCluster, tiny_model_dir: Path) -> None:
    """Rank 1's worker SIGKILLed mid-run (as the OOM killer would): the Ray Train run fails, the job
    does not succeed on rank 0's word but is interrupted with a reason naming the failed run, and
    the run resumes the node as a new job that trains to the end."""
    data = write_data(tmp_path / "train.jsonl")
    home = tmp_path / "home"
    d = ray_daemon(home, cluster, builtins=True)
    try:
        r = d.post("/v1/runs", json={"graph": two_nodes(tiny_model_dir, data, max_steps=400, devices=2)})
        assert r.status_code == 201, r.text
        run_id = r.json()["run"]["run_id"]
        deadline = time.monotonic() + 300
        while not (job_id := d.get(f"/v1/runs/{run_id}").json()["run"]["nodes"]["train"].get("job_id")):
            assert time.monotonic() < deadline, "the train node never got a job"
            time.sleep(0.2)
        wait_progress(d, job_id, 1, timeout=300)
        pid = rank_worker(job_id, 1)
        assert pid is not None, "rank 1's worker was not found running"
        os.kill(pid, signal.SIGKILL)
        view = wait_run(d, run_id, timeout=600)
        first = view["jobs"][job_id]
        assert first["state"] == "interrupted", first
        assert (first["step"] or 0) < 400, first  # it did not train to the end on rank 0 alone
        reason = [json.loads(p)["reason"] for k, p, _ in events(home, job_id) if k == "job-interrupted"]
        assert len(reason) == 1 and reason[0].startswith(
            "the Ray Train run lost a worker: rank 1's worker died from SIGKILL; "), reason
        node = view["run"]["nodes"]["train"]
        assert node["jobs"][0] == job_id and len(node["jobs"]) == 2, node
        assert view["run"]["state"] == "succeeded", node
        assert view["jobs"][node["jobs"][1]]["state"] == "succeeded"
        assert node["outputs"]["metrics"]["steps"] == 400 and node["outputs"]["metrics"]["processes"] == 2
    finally:
        d.stop()


def test_on_s3_storage_a_replay_through_a_lost_node_is_bit_identical_and_the_adapter_lands_by_sha256(
        tmp_path: Path, cluster: LocalCluster, s3: Any, tiny_model_dir: Path) -> None:
    """`ray_shared` an s3:// URI: the plugin snapshot, the dataset artifact, the checkpoints the
    resume on another node reads and the adapter all go through the bucket; the replay on Ray is
    bit-identical to the local run, and the daemon's store holds the adapter, verified by sha256."""
    data = write_data(tmp_path / "train.jsonl")
    graph = two_nodes(tiny_model_dir, data, max_steps=12, save_every=4)
    home = tmp_path / "home"
    with running(home, builtins=True) as local:
        original = submit(local, graph)["run"]["run_id"]
    d = ray_daemon(home, cluster, builtins=True, shared=f"s3://{BUCKET}/replay")
    try:
        assert d.get("/v1/status").json()["backend"]["shared"] == f"s3://{BUCKET}/replay"
        view, jobs = replay_losing_a_node(d, home, cluster, original)  # resumed from a checkpoint in the bucket
        adapter = view["run"]["nodes"]["train"]["outputs"]["adapter"]
        ArtifactStore(home / "artifacts").path(adapter)  # in the daemon's store, re-hashed
        keys = s3_keys(s3, "replay/")
        assert f"replay/artifacts/sha256/{adapter[:2]}/{adapter}.json" in keys
        dataset = view["run"]["nodes"]["data"]["outputs"]["dataset"]
        assert f"replay/artifacts/sha256/{dataset[:2]}/{dataset}.json" in keys  # an input, shipped by the daemon
        assert any(k.startswith("replay/plugin-code/") and k.endswith(".json") for k in keys)
        assert f"replay/jobs/{jobs[-1]}/worker.log" in keys
        assert (home / "jobs" / jobs[-1] / "worker.log").is_file()  # the log, back on the daemon's machine
        for j in jobs:
            assert_appended_once(home, j)
    finally:
        d.stop()
        cluster.nodes.append(cluster.add_node())  # the next test gets two nodes again


def test_on_s3_storage_a_damaged_output_or_input_object_fails_its_job_naming_the_object(
        tmp_path: Path, cluster: LocalCluster, s3: Any) -> None:
    """An output overwritten in the bucket while the daemon was stopped (so before it copied it),
    and an input overwritten after it was shipped: each job fails, naming the object's URI."""
    home, prefix = tmp_path / "home", "damaged"
    shared = f"s3://{BUCKET}/{prefix}"
    d = ray_daemon(home, cluster, shared=shared)
    late = d.submit("outputs", params={"text": "late", "delay": 3})["job_id"]
    d.wait_job(late, ("running",), timeout=60)
    d.stop(signal.SIGTERM)  # the job goes on and uploads its report; the daemon has not copied it
    deadline = time.monotonic() + 60
    while not (made := [k for k in s3_keys(s3, f"{prefix}/artifacts/") if k.endswith(".json")]):
        assert time.monotonic() < deadline, "the report never reached the bucket"
        time.sleep(0.2)
    report = made[0][: -len(".json")]
    s3.put_object(Bucket=BUCKET, Key=report, Body=b"not the report")
    d = ray_daemon(home, cluster, shared=shared)
    try:
        job = d.wait_job(late, ("succeeded", "failed"), timeout=60)
        assert job["state"] == "failed", job
        sha = report.rsplit("/", 1)[1]
        assert f"artifact {sha[:12]} at s3://{BUCKET}/{report} is damaged" in job["error"], job["error"]
        assert not ArtifactStore(home / "artifacts").exists(sha)  # never accepted

        made = d.wait_job(d.submit("outputs", params={"text": "base"})["job_id"], ("succeeded", "failed"))
        base = made["outputs"]["report"]
        key = f"{prefix}/artifacts/sha256/{base[:2]}/{base}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"tampered")
        r = d.post("/v1/jobs", json={"plugin": "testops", "operation": "outputs", "params": {"text": "x"},
                                     "inputs": {"data": base}})
        assert r.status_code == 201, r.text
        job = d.wait_job(r.json()["job"]["job_id"], ("succeeded", "failed"), timeout=60)
        assert job["state"] == "failed", job
        assert "could not start the job on Ray" in job["error"], job["error"]
        assert f"artifact {base[:12]} at s3://{BUCKET}/{key} is damaged" in job["error"], job["error"]
        maps = Path(f"/proc/{d.proc.pid}/maps").read_text()  # type: ignore[union-attr]
        assert "libtorch" not in maps and "/torch/" not in maps  # s3fs in the daemon brings no torch
    finally:
        d.stop()
