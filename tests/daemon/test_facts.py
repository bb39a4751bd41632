"""What the verify, diff and lineage reports are given (daemon/runs/facts.py), and the replay and fork
commands (daemon/runs/reproduce.py), over a real store with runs driven by the real executor (jobs end
with the events their worker would append; see tests/daemon/runs_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import runs_support as support
from tests.daemon.runs_support import end, job_of
from tunelog.daemon.runs.facts import checkpoints, lineage_rows, loss_curve, node_jobs, run_facts
from tunelog.daemon.runs.reproduce import fork, forked_graph, pick_checkpoint, replay
from tunelog.daemon.services import Services
from tunelog.events import jobs as J
from tunelog.events import runs as R
from tunelog.events.errors import NotFoundError, ValidationError
from tunelog.events.run_state import NodeRow, RunRow
from tunelog.events.streams import job_stream, run_stream

TRAIN = {"description": "train then use", "nodes": {
    "t": {"op": "ex.gen", "params": {"n": 4}},
    "u": {"op": "ex.use", "params": {"lr": 0.5}, "inputs": {"data": {"node": "t", "output": "rows"}}},
}}


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Services]:
    with support.services(tmp_path / "home", support.plugins(tmp_path / "plugins")) as services:
        yield services


def training(run_id: str, job_id: str, seed: int) -> R.TrainingStarted:
    return R.TrainingStarted(run_id=run_id, job_id=job_id, params={"n": 4}, seed=seed, libraries={}, device={},
                             model={"ref": "m"}, dataset={}, determinism={})


def finished(s: Services, graph: dict[str, Any] = TRAIN, **submit: Any) -> RunRow:
    """A run of `graph` whose node t trained (metrics, checkpoints at steps 2 and 4, a provenance record)."""
    row = s.runs.submit(graph, **submit)
    s.runs.advance()
    node = s.runs.find(row.run_id).nodes["t"]
    if node.state == "queued":
        assert node.job_id
        s.store.append(run_stream(row.run_id), [training(row.run_id, node.job_id, seed=7)])
        s.store.append(job_stream(node.job_id), [
            J.JobMetrics(job_id=node.job_id, points=[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]),
            J.JobCheckpointed(job_id=node.job_id, step=2, sha256="2" * 64, size=1),
            J.JobCheckpointed(job_id=node.job_id, step=4, sha256="4" * 64, size=1)])
        end(s, node.job_id, outputs={"rows": [4]})
        s.runs.advance()
    for n, other in s.runs.find(row.run_id).nodes.items():
        if other.state == "queued" and other.job_id:
            end(s, other.job_id, outputs={"out": n})
    s.runs.advance()
    return s.runs.find(row.run_id)


def test_a_loss_curve_joins_the_jobs_points_and_a_later_job_overrides_a_step(s: Services) -> None:
    s.store.append(job_stream("j1"), [
        J.JobMetrics(job_id="j1", points=[{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2}, {"step": 3, "loss": True},
                                          {"step": 4, "lr": 0.1}, {"loss": 0.5}, {"step": "5", "loss": 1.0},
                                          {"step": 6.0, "loss": "low"}, {"step": 7.0, "loss": 0.25}]),
        J.JobLog(job_id="j1", lines=["not a metric"])])
    s.store.append(job_stream("j2"), [J.JobMetrics(job_id="j2", points=[{"step": 2, "loss": 1.5}, {"step": 8, "loss": 0}])])
    assert loss_curve(s.store, ["j1", "j2"]) == {1: 3.0, 2: 1.5, 7: 0.25, 8: 0.0}
    assert all(type(v) is float and type(k) is int for k, v in loss_curve(s.store, ["j1", "j2"]).items())
    assert loss_curve(s.store, ["j2", "j1"])[2] == 2.0
    assert loss_curve(s.store, []) == {}


def test_checkpoints_of_several_jobs_come_in_log_order(s: Services) -> None:
    def saved(job: str, step: int) -> None:
        s.store.append(job_stream(job), [J.JobCheckpointed(job_id=job, step=step, sha256=f"{step}" * 64, size=9)])

    saved("j1", 2)
    saved("j2", 1)
    s.store.append(job_stream("j1"), [J.JobLog(job_id="j1", lines=["x"])])
    saved("j1", 4)
    found = checkpoints(s.store, ["j1", "j2"])
    assert [(c["job"], c["step"], c["sha256"]) for c in found] == [("j1", 2, "2" * 64), ("j2", 1, "1" * 64),
                                                                   ("j1", 4, "4" * 64)]
    assert [c["position"] for c in found] == sorted(c["position"] for c in found) and set(found[0]) == {
        "job", "step", "sha256", "position"}
    assert checkpoints(s.store, ["j2"])[0]["step"] == 1


def test_a_nodes_jobs_are_its_own_or_the_cached_results_source() -> None:
    assert node_jobs(NodeRow(job_id="j3", jobs=["j1", "j3"])) == ["j1", "j3"]
    assert node_jobs(NodeRow(state="cached", job_id="j0")) == ["j0"]
    assert node_jobs(NodeRow()) == []


def test_run_facts_give_each_node_its_curve_metrics_provenance_and_port_types(s: Services) -> None:
    first = finished(s)
    t_job = first.nodes["t"].job_id
    facts = run_facts(s.store, first)
    assert facts["run"]["run_id"] == first.run_id and facts["run"]["nodes"]["t"]["job_id"] == t_job
    t, u = facts["nodes"]["t"], facts["nodes"]["u"]
    assert t["curve"] == {1: 2.0, 2: 1.0} and t["metrics"] == {t_job: {"step": 2, "loss": 1.0}}
    assert t["provenance"]["seed"] == 7 and t["provenance"]["job_id"] == t_job
    assert t["input_types"] == {}
    assert u["input_types"] == {"data": "json", "file": "path", "model": "model"}
    assert u["curve"] == {} and u["provenance"] is None and u["metrics"] == {first.nodes["u"].job_id: {}}

    cached = finished(s)  # answered from the cache: the facts are those of the job that made the outputs
    assert cached.nodes["t"].state == "cached"
    t = run_facts(s.store, cached)["nodes"]["t"]
    assert t["curve"] == {1: 2.0, 2: 1.0} and t["provenance"]["run_id"] == first.run_id
    assert t["metrics"] == {t_job: {"step": 2, "loss": 1.0}}
    # A job whose run never recorded provenance and a node of an unknown operation have none.
    lone = s.jobs.submit(plugin="ex", operation="gen", params={"n": 1}, inputs={}, code_hash="0" * 64,
                         plugin_version="1", resource="cpu")
    odd = RunRow(key="x", run_id="x", graph={"nodes": {"n": {"op": "ghost.op"}}}, order=["n", "m"], code={},
                 nodes={"n": NodeRow(job_id=lone.job_id, jobs=[lone.job_id, "gone"]), "m": NodeRow()},
                 state="failed", submitted_at=0.0, submitted_position=1)
    facts = run_facts(s.store, odd)["nodes"]
    assert facts["n"]["provenance"] is None and facts["n"]["metrics"] == {lone.job_id: {}}
    assert facts["n"]["input_types"] == {} and facts["m"]["input_types"] == {}


def test_lineage_rows_hold_runs_resumes_the_jobs_of_resumed_nodes_and_adapters(s: Services) -> None:
    row = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}, "y": {"op": "ex.gen", "params": {"n": 2}}}})
    s.runs.advance()
    first = job_of(s, row.run_id, "x")
    end(s, first, "failed")
    end(s, job_of(s, row.run_id, "y"))
    s.runs.advance()
    s.runs.resume(row.run_id)
    s.runs.advance()
    second = job_of(s, row.run_id, "x")
    end(s, second, "failed")
    s.runs.advance()
    s.runs.resume(row.run_id)
    other = s.runs.submit({"nodes": {"x": {"op": "ex.use", "params": {"lr": 3}}}})
    s.store.append(run_stream(other.run_id), [R.NodeCompleted(
        run_id=other.run_id, node="x", job_id="jx", cache_key="k", outputs={"adapter": "a" * 64},
        output_types={"adapter": "adapter"})])
    rows = lineage_rows(s.store)
    assert [r["run_id"] for r in rows["runs"]] == [row.run_id, other.run_id]
    assert rows["runs"][0]["nodes"]["x"]["jobs"] == [first, second]
    assert rows["resumes"] == {row.run_id: [["x"], ["x"]]}
    assert set(rows["jobs"]) == {first, second} and rows["jobs"][first]["state"] == "failed"
    assert [(a["sha256"], a["run_id"], a["node"]) for a in rows["adapters"]] == [("a" * 64, other.run_id, "x")]


def test_a_replay_runs_the_recorded_graph_on_the_recorded_code_without_the_cache(s: Services) -> None:
    pinned = {"plugin": "ex", "version": "0.1", "code_hash": "e" * 64}
    row = finished(s, workflow="w", workflow_version=3, code={"t": pinned})
    again = replay(s, row.run_id[:8], command_id="rp")
    assert (again.graph, again.code, again.replay_of, again.no_cache) == (row.graph, row.code, row.run_id, True)
    assert (again.workflow, again.workflow_version) == ("w", 3) and again.code["t"] == pinned
    assert again.label == f"replay of {row.run_id}: train then use"
    assert replay(s, row.run_id, command_id="rp").run_id == again.run_id
    unlabelled = s.runs.submit({"nodes": {"x": {"op": "ex.gen"}}})
    assert replay(s, unlabelled.run_id).label == f"replay of {unlabelled.run_id}"
    with pytest.raises(NotFoundError):
        replay(s, "nope")


def test_a_checkpoint_is_picked_by_step_or_the_latest() -> None:
    saved = [{"job": "j1", "step": 2, "sha256": "a"}, {"job": "j1", "step": 4, "sha256": "b"},
             {"job": "j2", "step": 2, "sha256": "c"}]
    assert pick_checkpoint(saved, None, node="t") == saved[2]
    assert pick_checkpoint(saved, 2, node="t") == saved[2]
    assert pick_checkpoint(saved, 4, node="t") == saved[1]
    assert pick_checkpoint([], None, node="t") is None
    with pytest.raises(ValidationError) as missing:
        pick_checkpoint(saved, 3, node="t")
    assert missing.value.message.startswith("no checkpoint at that step")
    assert missing.value.problems == [{"where": "step", "message": "node 't' has checkpoints at steps 2, 4"}]
    assert missing.value.hint == "leave the step out to fork from the latest checkpoint"
    with pytest.raises(ValidationError) as none:
        pick_checkpoint([], 3, node="u")
    assert none.value.problems == [{"where": "step", "message": "node 'u' has no checkpoints"}]
    assert none.value.hint is None


def test_a_forked_graph_changes_one_nodes_params_and_leaves_the_run_alone(s: Services) -> None:
    row = finished(s)
    graph = forked_graph(row, "u", {"lr": 2.0, "extra": [1]})
    assert graph["nodes"]["u"]["params"] == {"lr": 2.0, "tag": "", "extra": [1]}
    assert graph["nodes"]["t"] == row.graph["nodes"]["t"]
    assert row.graph["nodes"]["u"]["params"] == {"lr": 0.5, "tag": ""} and s.runs.find(row.run_id).graph == row.graph
    graph["nodes"]["t"]["params"]["n"] = 99
    assert row.graph["nodes"]["t"]["params"] == {"n": 4}
    with pytest.raises(ValidationError) as unknown:
        forked_graph(row, "zz", {})
    assert unknown.value.message.startswith("cannot fork")
    assert unknown.value.problems == [{"where": "node", "message": f"run {row.run_id} has no node 'zz' (nodes: t, u)"}]


def test_a_fork_records_its_checkpoint_and_changes_and_runs_the_original_code(s: Services) -> None:
    pinned = {"plugin": "ex", "version": "0.1", "code_hash": "e" * 64}
    row = finished(s, code={"u": pinned})
    t_job = row.nodes["t"].job_id
    at = fork(s, row.run_id[:7], node="t", step=2, changes={"n": 5}, command_id="fk")
    assert at.forked_from == {"run": row.run_id, "node": "t", "step": 2, "job": t_job, "checkpoint": "2" * 64}
    assert at.label == f"fork of {row.run_id} at t step 2: n=5"
    assert at.graph["nodes"]["t"]["params"] == {"n": 5} and at.code == row.code and at.code["u"] == pinned
    assert not at.no_cache and at.replay_of is None
    assert fork(s, row.run_id, node="t", step=2, changes={"n": 5}, command_id="fk").run_id == at.run_id
    latest = fork(s, row.run_id, node="t")
    assert latest.forked_from == {"run": row.run_id, "node": "t", "step": 4, "job": t_job, "checkpoint": "4" * 64}
    assert latest.label == f"fork of {row.run_id} at t step 4: no changes" and latest.graph == row.graph
    bare = fork(s, row.run_id, node="u", changes={"lr": 1, "tag": "y"})
    assert bare.forked_from == {"run": row.run_id, "node": "u", "step": None, "job": None, "checkpoint": None}
    assert bare.label == f"fork of {row.run_id} at u: lr=1, tag='y'"
    s.runs.advance()
    job = s.tables.jobs.get(job_of(s, at.run_id, "t"))
    assert job is not None and (job.resume_of, job.resume_checkpoint) == (t_job, "2" * 64)
    with pytest.raises(ValidationError) as refused:
        fork(s, row.run_id, node="t", step=3)
    assert refused.value.problems == [{"where": "step", "message": "node 't' has checkpoints at steps 2, 4"}]
