"""`tunectl events`: pages of the log, and following it live (with reconnects) over SSE."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.cli.conftest import MODULE, Daemon, needs_testops, start_daemon


class LineReader:
    """Reads a process's stdout lines on a thread so a test can wait for them with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def until(self, predicate: Callable[[str], bool], timeout: float = 30) -> list[str]:
        """Lines read until one satisfies `predicate` (that one included)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(line)
            if predicate(line):
                return seen
        raise AssertionError(f"no matching line within {timeout} s; got {seen}")


@contextmanager
def following(daemon: Daemon, *args: str) -> Iterator[tuple[subprocess.Popen[str], LineReader]]:
    """`tunectl events --follow ARGS` running while the block runs; stopped and closed after it."""
    with subprocess.Popen([*MODULE, "events", "--follow", *args], env=daemon.env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        reader = LineReader(proc)
        try:
            yield proc, reader
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)
            reader.thread.join(timeout=10)


def test_events_json_page(daemon: Daemon) -> None:
    page = daemon.json("events")
    assert page["head"] >= len(page["events"]) >= 1
    first = page["events"][0]
    assert first["position"] == 1 and first["type"] == "daemon-started" and first["stream"] == "daemon"
    assert [e["position"] for e in page["events"]] == sorted(e["position"] for e in page["events"])


def test_events_filters_and_limit(daemon: Daemon) -> None:
    only = daemon.json("events", "--stream", "daemon", "--type", "daemon-started")["events"]
    assert only and {e["type"] for e in only} == {"daemon-started"}
    assert len(daemon.json("events", "--limit", "2")["events"]) == 2
    later = daemon.json("events", "--after", "1", "--limit", "1")["events"]
    assert [e["position"] for e in later] == [2]


def test_events_human_lines(daemon: Daemon) -> None:
    out = daemon.tunectl("events", "--limit", "1")
    assert out.returncode == 0
    position, _date, _time, stream, kind, *rest = out.stdout.split()
    assert (position, stream, kind) == ("1", "daemon", "daemon-started")
    assert f"pid={daemon.proc.pid}" in rest


def test_events_unknown_type_is_invalid(daemon: Daemon) -> None:
    out = daemon.tunectl("events", "--type", "no-such-type")
    assert out.returncode == 2
    assert out.stderr.splitlines()[:2] == ["Error: invalid event query", "  - type: unknown event type 'no-such-type'"]
    assert out.stderr.splitlines()[-1].startswith("Hint: ")


@needs_testops
def test_follow_prints_history_then_live_events_then_times_out(daemon: Daemon) -> None:
    head = daemon.json("status")["head"]
    with following(daemon, "--json", "--timeout", "8") as (proc, reader):
        history = reader.until(lambda line: json.loads(line)["position"] == head)
        assert json.loads(history[0])["position"] == 1
        submitted = daemon.json("jobs", "submit", "testops.sleep", "--set", "seconds=0")
        live = reader.until(lambda line: json.loads(line)["type"] == "job-queued"
                            and json.loads(line)["event"]["job_id"] == submitted["job_id"])
        assert json.loads(live[-1])["position"] > head
        assert proc.wait(timeout=30) == 0  # --timeout ends it with exit 0


def test_follow_reconnects_after_a_restart_without_gaps(tmp_path: Path) -> None:
    """Stop the daemon under a follower and start it again: the follower resumes after the last
    position it saw (Last-Event-ID), so every position appears exactly once."""
    d = start_daemon(tmp_path / "home")
    try:
        with following(d, "--json", "--type", "daemon-started,daemon-stopped", "--timeout", "60") as (_, reader):
            reader.until(lambda line: json.loads(line)["type"] == "daemon-started")
            d.stop()
            d = start_daemon(d.home)
            lines = reader.until(lambda line: json.loads(line)["type"] == "daemon-started", timeout=40)
            assert [json.loads(line)["type"] for line in lines] == ["daemon-stopped", "daemon-started"]
    finally:
        d.stop()
