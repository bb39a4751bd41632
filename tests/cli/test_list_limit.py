"""`--limit` on list commands: the newest N, oldest first, and a note on stderr when older ones exist."""

from __future__ import annotations

import json

from tests.cli.conftest import Daemon, needs_testops

pytestmark = needs_testops


def test_jobs_list_shows_the_newest_n_and_says_more_exist(own_daemon: Daemon) -> None:
    ids = [own_daemon.json("jobs", "submit", "testops.outputs", "--set", f"text=t{i}")["job_id"] for i in range(3)]
    two = own_daemon.tunectl("jobs", "list", "--limit", "2", "--json")
    assert [r["job_id"] for r in json.loads(two.stdout)] == ids[1:]
    assert "older ones exist" in two.stderr
    every = own_daemon.tunectl("jobs", "list", "--limit", "3", "--json")
    assert [r["job_id"] for r in json.loads(every.stdout)] == ids
    assert every.stderr == ""
    assert [r["run_id"] for r in own_daemon.json("runs", "list", "--limit", "5")] == []
    assert own_daemon.tunectl("jobs", "list", "--limit", "0").returncode == 2
