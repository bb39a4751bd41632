"""`tunectl jobs submit|list|show|cancel` and `tunectl logs [-f]` against the testops plugin."""

from __future__ import annotations

import time
from typing import Any

from tests.cli.conftest import Daemon, needs_testops

pytestmark = needs_testops


def submit(daemon: Daemon, operation: str, *sets: str) -> dict[str, Any]:
    args = [a for s in sets for a in ("--set", s)]
    return daemon.json("jobs", "submit", f"testops.{operation}", *args)  # type: ignore[no-any-return]


def wait_state(daemon: Daemon, job_id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = daemon.json("jobs", "show", job_id)
        if row["state"] in states:
            return row  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {states}")


def test_submit_list_show(daemon: Daemon) -> None:
    out = daemon.tunectl("jobs", "submit", "testops.outputs", "--set", "text=hi there", "--set", "extra=[1, 2]")
    assert out.returncode == 2  # `extra` is not a parameter of testops.outputs
    job = submit(daemon, "outputs", "text=hi there")
    assert job["params"] == {"text": "hi there", "delay": 0.0} and job["state"] == "queued"  # with its default
    done = wait_state(daemon, job["job_id"], "succeeded")
    assert done["outputs"]["text"] == "hi there"
    listed = {r["job_id"]: r for r in daemon.json("jobs", "list", "--state", "succeeded")}
    assert job["job_id"] in listed
    table = daemon.tunectl("jobs", "list", "--limit", "1000").stdout.splitlines()  # other tests share the daemon
    assert table[0].split() == ["JOB", "OPERATION", "STATE", "PROGRESS", "QUEUED", "TIME"]
    assert any(line.split()[:3] == [job["job_id"], "testops.outputs", "succeeded"] for line in table)
    shown = daemon.tunectl("jobs", "show", job["job_id"][:-2]).stdout  # a unique prefix is enough
    assert f"job        {job['job_id']}" in shown and "state      succeeded" in shown
    assert "outputs    " in shown and "artifacts  report=" in shown


def test_submit_parses_values_as_json_else_string(daemon: Daemon) -> None:
    job = submit(daemon, "checkpointing", "steps=3", "step_s=0.01")
    assert job["params"] == {"steps": 3, "step_s": 0.01}
    out = daemon.tunectl("jobs", "submit", "testops.sleep", "--set", "seconds=soon")
    assert out.returncode == 2
    assert out.stderr.splitlines()[0] == "Error: testops.sleep: the job was not submitted"
    assert out.stderr.splitlines()[1].startswith("  - params.seconds: ")


def test_bad_set_syntax_is_a_usage_error(daemon: Daemon) -> None:
    out = daemon.tunectl("jobs", "submit", "testops.sleep", "--set", "seconds")
    assert out.returncode == 2 and "expected KEY=VALUE, got 'seconds'" in out.stderr
    out = daemon.tunectl("jobs", "submit", "testops")
    assert out.returncode == 2 and "expected PLUGIN.OPERATION" in out.stderr


def test_unknown_job_and_operation(daemon: Daemon) -> None:
    for args in (["jobs", "show", "zzzz"], ["jobs", "cancel", "zzzz"], ["logs", "zzzz"], ["logs", "-f", "zzzz"]):
        out = daemon.tunectl(*args)
        assert out.returncode == 4, args
        assert out.stderr.startswith("Error: no job matches 'zzzz'\n"), args
    out = daemon.tunectl("jobs", "submit", "testops.nope")
    assert out.returncode == 5 and out.stderr.startswith("Error: plugin 'testops' has no operation 'nope'")


def test_logs_follow_until_success(daemon: Daemon) -> None:
    job = submit(daemon, "progress", "n=120")
    out = daemon.tunectl("logs", "-f", job["job_id"])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "point 0" in lines and "point 100" in lines
    assert any(line.startswith("[progress ") and "/120 (" in line for line in lines)
    assert "[progress 120/120 (100%)] loss=0.008333" in lines  # the last step, with the last metrics (as runs follow)
    assert lines[-1].startswith(f"job {job['job_id']} succeeded after ") and '"count":120' in lines[-1]
    again = daemon.tunectl("logs", job["job_id"])  # not following: the history, then where it stands
    assert again.returncode == 0 and "point 100" in again.stdout
    assert again.stdout.splitlines()[-1].startswith(f"job {job['job_id']} succeeded")


def test_logs_follow_failed_job_exits_6(daemon: Daemon) -> None:
    job = submit(daemon, "fail")
    out = daemon.tunectl("logs", "-f", job["job_id"])
    assert out.returncode == 6
    assert out.stderr.startswith(f"Error: job {job['job_id']} failed after ")
    assert "ValueError: boom" in out.stderr.splitlines()[0] and "last lines:" in out.stderr
    shown = daemon.tunectl("jobs", "show", job["job_id"]).stdout
    assert "error      ValueError: boom (cause: exception)" in shown
    assert "\nlast lines:\n" in shown and "about to fail" in shown


def test_cancel_running_job(daemon: Daemon) -> None:
    job = submit(daemon, "sleep", "seconds=60")
    wait_state(daemon, job["job_id"], "running")
    out = daemon.tunectl("jobs", "cancel", job["job_id"])
    assert out.returncode == 0 and out.stdout.startswith(f"cancel requested for job {job['job_id']}")
    follow = daemon.tunectl("logs", "-f", job["job_id"])
    assert follow.returncode == 6 and f"job {job['job_id']} cancelled" in follow.stderr
    assert wait_state(daemon, job["job_id"], "cancelled")["state"] == "cancelled"
    again = daemon.tunectl("jobs", "cancel", job["job_id"])
    assert again.returncode == 6
    assert again.stderr.startswith(f"Error: job {job['job_id']} has already ended (cancelled)")
