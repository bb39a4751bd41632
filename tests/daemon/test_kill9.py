"""kill -9 of the daemon while clients send commands: nothing acknowledged is lost or doubled."""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.daemon.daemon_proc import Daemon
from tunelog.frontends.cli.client import Client, ConnectionLost, DaemonDown

ROUNDS = 20
BODY = {"plugin": "testops", "operation": "sleep", "params": {"seconds": 30}}


def send_until_stopped(d: Daemon, stop: threading.Event, acked: list[str], sent: list[str]) -> None:
    """Submit jobs as fast as the daemon answers (with tunectl's own client); remember what it acknowledged."""
    c = Client(str(d.paths.socket), timeout=5)
    while not stop.is_set():
        cid = uuid.uuid4().hex
        sent.append(cid)
        body = {**BODY, "command_id": cid}
        try:
            r = c.request("POST", "/v1/jobs", body=body)
        except (DaemonDown, ConnectionLost):
            return
        if r.status == 201:
            acked.append(cid)


@pytest.mark.slow
def test_kill9_loses_no_acknowledged_command_and_doubles_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rng = random.Random(7)
    acked: list[str] = []
    sent: list[str] = []
    for _ in range(ROUNDS):
        d = Daemon(home).start()
        stop = threading.Event()
        clients = [threading.Thread(target=send_until_stopped, args=(d, stop, acked, sent)) for _ in range(2)]
        for t in clients:
            t.start()
        time.sleep(rng.uniform(0.2, 0.8))
        d.stop(signal.SIGKILL)
        stop.set()
        for t in clients:
            t.join(10)
    # A client that got no answer retries with the same command id; the log answers it.
    with_restart = Daemon(home).start()
    try:
        jobs = with_restart.get("/v1/jobs").json()["jobs"]
        # A job that had a worker ended interrupted; the rest is still queued, in order, and runs
        # (one at a time on the one slot: the oldest is running by now).
        assert jobs and all(j["state"] in ("interrupted", "queued", "running", "failed") for j in jobs), \
            Counter(j["state"] for j in jobs)
        assert all(j["started_at"] is not None for j in jobs if j["state"] == "interrupted")
        unanswered = [cid for cid in sent if cid not in set(acked)]
        for cid in unanswered[:50]:
            r = with_restart.post("/v1/jobs", json={**BODY, "command_id": cid})  # the same command again
            assert r.status_code == 201, r.text
    finally:
        with_restart.stop()
    conn = sqlite3.connect(home / "log.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = Counter(cid for (cid,) in conn.execute(
        "SELECT command_id FROM events WHERE type = 'job-queued' AND command_id IS NOT NULL"))
    conn.close()
    assert acked, "no command was acknowledged: the test did not exercise anything"
    assert all(counts[cid] == 1 for cid in acked), [cid for cid in acked if counts[cid] != 1]
    assert all(n == 1 for n in counts.values())
