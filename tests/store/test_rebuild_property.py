"""After any history, rebuilt projections equal the live ones row for row."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunelog.events import jobs as J
from tunelog.events import plugins as P
from tunelog.events import system as S
from tunelog.store import MemoryStore, SqliteStore

ids = st.sampled_from(["a", "b", "c"])
names = st.sampled_from(["alpha", "beta"])
texts = st.text(max_size=8)

job_events = st.one_of(
    st.builds(J.JobQueued, job_id=ids, plugin=names, operation=st.just("op"),
              params=st.dictionaries(st.sampled_from(["lr", "r"]), st.integers(0, 9)), code_hash=texts,
              plugin_version=st.just("1")),
    st.builds(J.JobStarted, job_id=ids, pid=st.integers(1, 9999), slot=st.just("cpu0"), log_path=texts),
    st.builds(J.JobProgress, job_id=ids, step=st.integers(0, 100), total=st.none() | st.integers(1, 100),
              message=texts),
    st.builds(J.JobMetrics, job_id=ids, points=st.lists(st.fixed_dictionaries(
        {"step": st.integers(0, 100), "loss": st.floats(0, 10, allow_nan=False)}), max_size=3)),
    st.builds(J.JobArtifact, job_id=ids, name=texts, sha256=texts, size=st.integers(0, 99)),
    st.builds(J.JobCheckpointed, job_id=ids, step=st.integers(0, 9), sha256=texts, size=st.integers(0, 9)),
    st.builds(J.JobCancelRequested, job_id=ids),
    st.builds(J.JobSucceeded, job_id=ids, outputs=st.dictionaries(texts, texts, max_size=2),
              duration_s=st.floats(0, 9, allow_nan=False)),
    st.builds(J.JobFailed, job_id=ids, error=texts, cause=st.just("exception")),
    st.builds(J.JobCancelled, job_id=ids, forced=st.booleans()),
    st.builds(J.JobInterrupted, job_id=ids, reason=texts),
)
plugin_events = st.one_of(
    st.builds(P.PluginLoaded, name=names, version=texts, code_hash=texts, path=texts, source=st.just("user"),
              manifest=st.just({})),
    st.builds(P.PluginReloaded, name=names, version=texts, code_hash=texts, previous_hash=texts, path=texts,
              source=st.just("user"), manifest=st.just({})),
    st.builds(P.PluginFailed, name=names, path=texts, code_hash=texts, error=texts),
    st.builds(P.PluginRemoved, name=names, path=texts),
)
daemon_events = st.one_of(
    st.builds(S.DaemonStarted, pid=st.integers(1, 99), version=st.just("0"), data_dir=texts, socket=texts),
    st.builds(S.DaemonStopped, pid=st.integers(1, 99), reason=texts),
)


def stream_of(ev: object) -> str:
    for attr in ("job_id", "name"):
        if hasattr(ev, attr):
            return f"{attr}-{getattr(ev, attr)}"
    return "daemon"


histories = st.lists(st.lists(st.one_of(job_events, plugin_events, daemon_events), min_size=1, max_size=4),
                     max_size=25)


def dump(path: Path, table: str) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT key, data FROM [{table}] ORDER BY key").fetchall()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_rebuilt_projections_equal_live_row_for_row(history: list[list[object]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "log.sqlite"
        live, mem = SqliteStore(db), MemoryStore()
        for batch in history:
            stream = stream_of(batch[0])
            live.append(stream, batch)  # type: ignore[arg-type]
            mem.append(stream, batch)  # type: ignore[arg-type]
        tables = ("daemon", "plugins", "jobs")
        before = {t: dump(db, t) for t in tables}
        assert {t: [r.key for r in live.rows(t)] for t in tables} == {t: [r.key for r in mem.rows(t)] for t in tables}
        live.rebuild()
        assert {t: dump(db, t) for t in tables} == before
        assert all(live.projection_position(t) == live.head() for t in tables)
        live.close()
