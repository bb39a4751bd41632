"""The daemon's parts started as daemon start-up starts them (`start_services`), in process over a
real SQLite store and the `testops` plugin: jobs a dead daemon left running are settled first,
followers and the run executor wake after each commit from whichever thread appended, plugins are
scanned and watched, and the wake-ups stop when asked."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from tests.daemon.daemon_proc import FIXTURES
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Notifier, Services, _on_loop, build_services, start_services
from tunelog.events import jobs as J
from tunelog.events.runs import ModelAdded

pytestmark = pytest.mark.anyio

ONE_NODE = {"nodes": {"n": {"op": "testops.outputs", "params": {"text": "woken"}}}}
NEW_PLUGIN = ("name: newcomer\nversion: 1.0.0\ndescription: Added while the daemon runs.\noperations:\n"
              "  go:\n    description: Go.\n    resource: cpu\n")


def services(home: Path) -> Services:
    """The parts over `home` with `testops`; the only slot is a GPU one, so CPU jobs stay queued."""
    return build_services(Paths.from_env(home), version="test", plugin_dirs=[FIXTURES],
                          builtin_dir=Path(os.devnull), slots=["gpu0"])


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


async def test_a_notifier_wakes_its_waiters_once_per_commit_and_otherwise_waits_out_the_timeout() -> None:
    notifier = Notifier()
    started = time.monotonic()
    await notifier.wait(0.05)
    assert time.monotonic() - started >= 0.05  # nothing committed: the whole timeout
    woken: list[int] = []

    async def waiter() -> None:
        await notifier.wait(60)
        woken.append(1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.01)  # let the waiter wait
        with anyio.fail_after(10):
            notifier.notify(1)
            while not woken:
                await anyio.sleep(0.01)
    started = time.monotonic()
    await notifier.wait(0.05)  # the commit above woke its waiters once: the next wait waits again
    assert time.monotonic() - started >= 0.05


async def test_a_store_subscriber_runs_in_the_loops_thread_at_once_there_and_soon_from_another() -> None:
    loop = asyncio.get_running_loop()
    calls: list[tuple[int, int]] = []
    call = _on_loop(loop, lambda head: calls.append((head, threading.get_ident())))
    call(7)  # from the loop's own thread: before `call` returns
    assert calls == [(7, threading.get_ident())]
    other = threading.Thread(target=call, args=(8,))
    other.start()
    other.join()
    with anyio.fail_after(10):
        while len(calls) < 2:
            await anyio.sleep(0.01)
    assert calls[1] == (8, threading.get_ident())  # in the loop's thread, not the appender's


async def test_start_up_settles_a_dead_daemons_jobs_scans_plugins_and_wakes_on_commits(tmp_path: Path) -> None:
    before = services(tmp_path / "home")  # the daemon that died with a job running
    job = before.jobs.submit(plugin="testops", operation="sleep", params={"seconds": 60}, inputs={},
                             code_hash="c0de", plugin_version="0.1.0", resource="cpu")
    before.store.append(f"job-{job.job_id}", [J.JobStarted(job_id=job.job_id, pid=dead_pid(), slot="cpu0",
                                                           log_path="-")])
    before.store.close()

    s = services(tmp_path / "home")
    assert s.tables.plugins.get("testops") is None
    async with anyio.create_task_group() as tg:
        stop_waking = await start_services(s, tg)
        left = s.store.read(stream=f"job-{job.job_id}")[-1].event
        assert left == J.JobInterrupted(job_id=job.job_id, reason="daemon restarted")
        assert s.tables.jobs.get(job.job_id).state == "interrupted"  # type: ignore[union-attr]
        assert s.tables.plugins.get("testops").status == "loaded"  # type: ignore[union-attr]

        # a commit wakes the run executor at once (its own timer is set to a minute here, so only a
        # wake-up can advance the run within the bound): a job's end that anyone appended advances its run
        s.runs.idle_s = 60.0
        s.runs.wake()  # the pass now waiting started with the 2 s timer
        run_id = s.runs.submit(ONE_NODE).run_id
        with anyio.fail_after(30):
            while (job_id := s.runs.find(run_id).nodes["n"].job_id) is None:
                await anyio.sleep(0.01)
        await anyio.sleep(0.1)  # the executor is back asleep, on its minute-long timer
        s.store.append(f"job-{job_id}", [J.JobStarted(job_id=job_id, pid=dead_pid(), slot="cpu0", log_path="-"),
                                         J.JobSucceeded(job_id=job_id, outputs={"text": "woken"}, duration_s=0.1)])
        with anyio.fail_after(30):
            while s.runs.find(run_id).nodes["n"].state in ("queued", "running"):
                await anyio.sleep(0.01)

        # and the followers, whichever thread appended
        for append_from_a_thread in (False, True):
            woken = anyio.Event()

            async def follow() -> None:
                await s.notifier.wait(60)
                woken.set()  # noqa: B023 - awaited before the next round

            tg.start_soon(follow)
            await anyio.sleep(0.01)
            add = [ModelAdded(name="m", ref=str(append_from_a_thread))]
            if append_from_a_thread:
                await anyio.to_thread.run_sync(s.store.append, "model-m", add)
            else:
                s.store.append("model-m", add)
            with anyio.fail_after(10):
                await woken.wait()

        # the plugin folders are watched: a plugin added now is registered
        folder = s.paths.user_plugins / "newcomer"
        folder.mkdir()
        (folder / "manifest.yaml").write_text(NEW_PLUGIN)
        with anyio.fail_after(30):
            while s.tables.plugins.get("newcomer") is None:
                await anyio.sleep(0.05)

        stop_waking()
        waiting = time.monotonic()
        async with anyio.create_task_group() as inner:
            inner.start_soon(s.notifier.wait, 0.2)
            await anyio.sleep(0.01)
            s.store.append("model-m", [ModelAdded(name="m", ref="after")])
        assert time.monotonic() - waiting >= 0.2  # no wake-up after the stop
        await s.jobs.shutdown()
        tg.cancel_scope.cancel()
    s.store.close()


async def test_build_services_wires_one_of_each_part_over_the_data_dir(tmp_path: Path) -> None:
    s = build_services(Paths.from_env(tmp_path / "home"), version="9.9", plugin_dirs=[FIXTURES],
                       builtin_dir=Path(os.devnull), slots=["cpu0", "gpu3"], grace_s=4.5)
    assert s.version == "9.9" and s.paths.db.exists() and s.paths.artifacts.is_dir()
    assert s.jobs.slots == ["cpu0", "gpu3"] and s.jobs.grace_s == 4.5 and s.jobs.warm is None
    assert [root for root, _ in s.plugins.roots] == [Path(os.devnull), s.paths.user_plugins, FIXTURES]
    assert s.jobs.store is s.store and s.runs.store is s.store and s.plugins.store is s.store
    assert s.runs.jobs is s.jobs and s.runs.plugins is s.plugins
    s.store.append("model-m", [ModelAdded(name="m", ref="r")])
    assert s.tables is s.tables and s.tables.models.get("m").ref == "r"  # type: ignore[union-attr]
    assert abs(s.started_at - time.time()) < 60
    s.request_stop("nothing happens")  # a Services not started by the daemon has no stop to request
    await s.plugins.scan()
    assert s.tables.plugins.get("testops") is not None
    s.store.close()

    warm = build_services(Paths.from_env(tmp_path / "warm"), version="9.9", warm=True)
    assert warm.jobs.warm is not None and warm.jobs.backend is None  # a host built, not started
    assert (warm.jobs.warm.python, warm.jobs.warm.log_path, warm.jobs.warm.cwd) == (
        sys.executable, warm.paths.log_file, warm.paths.home)
    assert warm.jobs.slots and warm.plugins.roots[0][0] != Path(os.devnull)  # detected slots, built-in plugins
    warm.store.close()
