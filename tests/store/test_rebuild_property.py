"""After any history, rebuilt projections equal the live ones row for row."""

from __future__ import annotations

import sqlite3
import tempfile
from operator import attrgetter
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunelog.events import jobs as J
from tunelog.events import merges as M
from tunelog.events import plugins as P
from tunelog.events import runs as R
from tunelog.events import system as S
from tunelog.events.state import Fold, all_folds
from tunelog.store import MemoryStore, SqliteStore
from tunelog.store.sqlite import _BATCH, _INSERT

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
        {"step": st.integers(0, 6), "loss": st.floats(0, 10, allow_nan=False)}), max_size=3)),
    st.builds(J.JobMetrics, job_id=ids, points=st.lists(st.dictionaries(  # odd points: no step, any order
        st.sampled_from(["step", "loss", "lr"]), st.integers(0, 100) | st.floats(0, 9, allow_nan=False)),
        max_size=3)),
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


runs = st.sampled_from(["r1", "r2"])
nodes = st.sampled_from(["a", "b"])
cache_keys = st.sampled_from(["k1", "k2"])
shas = st.sampled_from(["s1", "s2"])
outputs = st.fixed_dictionaries({}, optional={"adapter": shas | st.integers(0, 9), "metric": st.integers(0, 9)})
run_events = st.one_of(
    st.builds(R.WorkflowSaved, name=names, version=st.integers(1, 3), graph=st.just({"nodes": {}})),
    st.builds(R.RunSubmitted, run_id=runs, graph=st.just({"nodes": {}}), order=st.lists(nodes, max_size=2),
              code=st.just({}), label=texts),
    st.builds(R.NodeQueued, run_id=runs, node=nodes, job_id=ids, cache_key=cache_keys,
              inputs=st.dictionaries(texts, st.integers(0, 9), max_size=1), attempt=st.integers(1, 3)),
    st.builds(R.NodeCached, run_id=runs, node=nodes, cache_key=cache_keys, outputs=outputs, source_job=ids),
    st.builds(R.NodeCompleted, run_id=runs, node=nodes, job_id=ids, cache_key=cache_keys, outputs=outputs,
              output_types=st.sampled_from([{}, {"adapter": "adapter"}, {"metric": "int"}])),
    st.builds(R.NodeFailed, run_id=runs, node=nodes, job_id=ids, state=st.just("failed"), error=texts),
    st.builds(R.NodeSkipped, run_id=runs, node=nodes, reason=texts),
    st.builds(R.RunCancelRequested, run_id=runs),
    st.builds(R.RunResumed, run_id=runs, nodes=st.lists(nodes, max_size=2)),
    st.builds(R.RunFinished, run_id=runs, state=st.sampled_from(["succeeded", "failed"])),
    st.builds(R.TrainingStarted, run_id=runs, job_id=ids, params=st.just({"lr": 1}), seed=st.integers(0, 9),
              libraries=st.just({}), device=st.just({}), model=st.just({}), dataset=st.just({}),
              determinism=st.just({})),
    st.builds(R.ModelAdded, name=names, ref=texts, note=texts),
    st.builds(R.ModelRemoved, name=names),
    st.builds(M.AdapterMerged, merge_id=shas, merge_type=st.just("cat"),
              inputs=st.lists(st.builds(M.MergeInput, sha256=shas, weight=st.floats(0, 1)), max_size=2),
              base_model=st.just({}), output_sha256=shas, output_kind=st.sampled_from(["adapter", "model"]),
              exact=st.booleans()),
)


def stream_of(ev: object) -> str:
    for attr in ("job_id", "name", "run_id", "merge_id"):
        if hasattr(ev, attr):
            return f"{attr}-{getattr(ev, attr)}"
    return "daemon"


histories = st.lists(st.lists(st.one_of(job_events, plugin_events, daemon_events, run_events), min_size=1,
                              max_size=4), max_size=25)
TABLES = tuple(f.table for f in all_folds())


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
        tables = TABLES
        before = {t: dump(db, t) for t in tables}
        assert {t: [r.key for r in live.rows(t)] for t in tables} == {t: [r.key for r in mem.rows(t)] for t in tables}
        live.rebuild()
        assert {t: dump(db, t) for t in tables} == before
        assert all(live.projection_position(t) == live.head() for t in tables)
        live.close()


def test_rebuild_of_long_interleaved_runs_equals_live(tmp_path: Path) -> None:
    """Runs of one key that cross the rebuild's fetch batches, interleaved with another key's."""
    live = SqliteStore(tmp_path / "log.sqlite")
    for job in ("a", "b"):
        live.append(f"job-{job}", [J.JobQueued(job_id=job, plugin="p", operation="op", params={}, code_hash="h",
                                               plugin_version="1")])
    step = 0
    for i in range(70):
        job = "ab"[i % 2]
        events = [J.JobMetrics(job_id=job, points=[{"step": (step := step + 1), "loss": 1 / step}])
                  for _ in range(400 if i % 7 else 3000)]
        live.append(f"job-{job}", [*events, J.JobProgress(job_id=job, step=step, total=10**6)])
    assert live.head() > 2 * _BATCH
    before = {t: dump(live.path, t) for t in TABLES}
    assert live.rebuild() == live.head()
    assert {t: dump(live.path, t) for t in TABLES} == before
    live.close()


class Named(msgspec.Struct):
    """Row of the test projection over `test-renamed` events."""

    key: str
    size: int
    at: float


def test_rebuild_upcasts_rows_an_older_schema_wrote(tmp_path: Path) -> None:
    from tests.events.test_events import Renamed  # registers `test-renamed` (v2, upcast from v1)

    fold = Fold("named", Named, frozenset({"test-renamed"}), attrgetter("event.name"),
                lambda row, env: Named(key=env.event.name, size=env.event.size, at=env.time))
    path = tmp_path / "log.sqlite"
    store = SqliteStore(path, folds=(fold,))
    store.append("n", [Renamed(name="new", size=2)])
    store.close()
    with sqlite3.connect(path) as conn:  # as an older tunelog wrote it
        conn.execute(_INSERT, (2, "n", 2, "test-renamed", 1, 5.25, '{"type":"test-renamed","title":"old"}',
                               None, None, None))
    store = SqliteStore(path, folds=(fold,))
    assert store.rebuild() == 2
    assert store.rows("named") == [Named(key="new", size=2, at=store.read()[0].time),
                                   Named(key="old", size=0, at=5.25)]
    store.close()
