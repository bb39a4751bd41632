"""Warm workers: a CPU job's worker forked from the warm worker host behaves as a freshly started
one (its own process group, folder, environment and seeds; the plugin code of its snapshot), the
daemon never imports what the host imports, and losing the host or the daemon loses no job."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import pytest

from tests.daemon.daemon_proc import Daemon, running
from tests.daemon.jobs_support import Env, make_env
from tests.daemon.jobs_support import running as scheduling
from tunelog.daemon.plugin_host.snapshots import snapshot

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path, warm=True)


def ended(pid: int) -> bool:
    """The process is gone, or a zombie nobody has reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


async def test_a_warm_worker_is_a_fresh_worker_forked_from_the_host(env: Env) -> None:
    async with scheduling(env.runner()) as runner:
        assert runner.warm is not None
        with anyio.fail_after(30):
            while runner.warm.warm != ["numpy"]:  # the host has imported numpy (jobs sent before fork earlier)
                await anyio.sleep(0.01)
        a = await env.wait(env.submit(runner, "process").job_id)
        b = await env.wait(env.submit(runner, "process").job_id)
        host = runner.warm.host_pid
    for done in (a, b):
        seen = done.outputs["seen"]
        assert done.state == "succeeded", done.error
        assert seen["ppid"] == host and seen["preloaded"] == ["numpy"]  # forked, numpy imported before the fork
        assert seen["job_id"] == done.job_id and seen["cwd"] == str(env.paths.jobs / done.job_id)
        assert seen["pgid_is_pid"] and seen["no_bytecode"]
    # numpy's global generator is reseeded in each child, as in a new process
    assert a.outputs["seen"]["numpy_draw"] != b.outputs["seen"]["numpy_draw"]


async def test_jobs_that_start_together_are_all_forked_from_the_host(env: Env) -> None:
    """Four slots, four jobs queued at once: their fork requests meet on the host's socket."""
    async with scheduling(env.runner(slots=["cpu0", "cpu1", "cpu2", "cpu3"])) as runner:
        assert runner.warm is not None
        with anyio.fail_after(30):
            while runner.warm.warm != ["numpy"]:
                await anyio.sleep(0.01)
        rows = [env.submit(runner, "process") for _ in range(4)]
        done = [await env.wait(r.job_id) for r in rows]
        host = runner.warm.host_pid
    assert [d.state for d in done] == ["succeeded"] * 4, [d.error for d in done]
    assert [d.outputs["seen"]["ppid"] for d in done] == [host] * 4


async def test_each_warm_job_runs_the_code_of_its_own_snapshot(env: Env, tmp_path: Path) -> None:
    """Two versions of one plugin (same package name): the host imports no plugin code, so each
    forked worker imports the snapshot its job names."""
    plugin = tmp_path / "versioned"
    plugin.mkdir()
    hashes = []
    for version in ("one", "two"):
        (plugin / "backend.py").write_text(f"def which(ctx, params, inputs):\n    return {{'version': {version!r}}}\n")
        hashes.append(snapshot(plugin, env.paths.plugin_code)[0])
    async with scheduling(env.runner()) as runner:
        rows = [runner.submit(plugin="versioned", operation="which", params={}, inputs={}, code_hash=h,
                              plugin_version="0", resource="cpu") for h in (hashes[1], hashes[0], hashes[1])]
        done = [await env.wait(r.job_id) for r in rows]
    assert [d.outputs for d in done] == [{"version": "two"}, {"version": "one"}, {"version": "two"}]


async def test_a_job_outlives_its_host_and_later_jobs_start_cold(env: Env) -> None:
    async with scheduling(env.runner()) as runner:
        assert runner.warm is not None and runner.warm.host_pid is not None
        row = env.submit(runner, "hang", seconds=1.5)
        started = await env.until(row.job_id, lambda r: r.message == "hanging")
        os.kill(runner.warm.host_pid, signal.SIGKILL)
        done = await env.wait(row.job_id)
        assert (done.state, done.outputs) == ("succeeded", {}), done.error  # its channel is the daemon's
        assert started.pid and ended(started.pid)
        after = await env.wait(env.submit(runner, "process").job_id)
    assert after.state == "succeeded", after.error
    assert after.outputs["seen"]["ppid"] != runner.warm.host_pid  # started by the daemon itself


def test_a_warm_worker_left_by_a_killed_daemon_is_killed_at_the_next_start(tmp_path: Path) -> None:
    """The worker started with the host's environment: the next daemon knows it by pid and start time."""
    home = tmp_path / "home"
    d = Daemon(home).start()
    job = d.submit("hang", params={"seconds": 60})
    row = d.wait_job(job["job_id"], ("running",))
    deadline = time.monotonic() + 30
    while d.get(f"/v1/jobs/{job['job_id']}").json()["job"]["message"] != "hanging" and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = row["pid"]
    assert b"TUNELOG_JOB_ID" not in Path(f"/proc/{pid}/environ").read_bytes()  # forked: the host's environment
    d.stop(signal.SIGKILL)
    assert not ended(pid)
    with running(home) as again:
        done = again.wait_job(job["job_id"], ("interrupted",))
        assert done["error"] == "daemon restarted"
        deadline = time.monotonic() + 10
        while not ended(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ended(pid)


def test_the_daemon_never_imports_what_the_warm_host_imports(tmp_path: Path) -> None:
    with running(tmp_path / "home", env={"TUNELOG_WARM_MODULES": "torch"}) as d:
        job = d.wait_job(d.submit("process")["job_id"], ("succeeded",), timeout=120)
        seen = job["outputs"]["seen"]
        assert seen["preloaded"] == ["numpy", "torch"]
        host = Path(f"/proc/{seen['ppid']}")
        assert "tunelog.daemon.jobs.zygote" in (host / "cmdline").read_bytes().decode()
        assert int((host / "stat").read_text().rsplit(")", 1)[1].split()[1]) == d.proc.pid  # type: ignore[union-attr]
        assert "libtorch" in (host / "maps").read_text()
        maps = Path(f"/proc/{d.proc.pid}/maps").read_text()  # type: ignore[union-attr]
        assert "libtorch" not in maps and "/torch/" not in maps


@pytest.mark.slow
def test_a_warm_worker_trains_to_the_same_bytes_as_a_cold_one(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The host with the whole default list imported (torch, transformers, peft, ...) forks the
    trainer; deterministic CPU training gives the adapter a new process gives, byte for byte."""
    from tests.daemon.test_training_runs import submit, two_nodes, write_data

    data = write_data(tmp_path / "train.jsonl")
    adapters = {}
    for mode in ("off", "on"):
        d = Daemon(tmp_path / f"home-{mode}", builtins=True, env={"TUNELOG_WARM_WORKERS": mode})
        d.env.pop("TUNELOG_WARM_MODULES", None)
        d.start(timeout=60)
        try:
            view = submit(d, two_nodes(tiny_model_dir, data))
            assert view["run"]["state"] == "succeeded", view["run"]["nodes"]
            job = d.get(f"/v1/jobs/{view['run']['nodes']['train']['job_id']}").json()["job"]
            host = [p for p in Path("/proc").glob("[0-9]*") if _parent(p) == d.proc.pid  # type: ignore[union-attr]
                    and b"jobs.zygote" in (p / "cmdline").read_bytes()]
            assert bool(host) == (mode == "on")
            assert ("forked from the warm worker host" in Path(job["log_path"]).read_text()) == (mode == "on")
            adapters[mode] = view["run"]["nodes"]["train"]["outputs"]["adapter"]
        finally:
            d.stop()
    assert adapters["on"] == adapters["off"]


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
