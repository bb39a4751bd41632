"""Verify and diff reports over plain run facts (no daemon): verdicts, tolerance, drifted inputs."""

from __future__ import annotations

import copy
from typing import Any

from tunelog.daemon.runs.compare import Tolerance, compare_curves, key_diffs
from tunelog.daemon.runs.verify import diff, verify

SHA = {name: name[0] * 64 for name in ("aaa", "bbb", "ccc", "ddd", "eee", "fff")}


def facts(run_id: str = "r1", *, loss: dict[int, float] | None = None) -> dict[str, Any]:
    """Two nodes: `data` reads a file by path, `train` trains on its output and records provenance."""
    graph = {"nodes": {
        "data": {"op": "ds.prepare", "params": {"format": "auto"}, "inputs": {"source": "/data/facts.jsonl"}},
        "train": {"op": "tr.train", "params": {"lr": 1e-3, "seed": 0}, "position": [1, 2],
                  "inputs": {"dataset": {"node": "data", "output": "dataset"}, "model": "tiny"}},
    }}
    nodes = {"data": {"state": "completed", "jobs": ["j1"], "outputs": {"dataset": SHA["aaa"], "rows": 10}},
             "train": {"state": "completed", "jobs": ["j2"], "outputs": {"adapter": SHA["bbb"], "loss": 0.5}}}
    code = {"data": {"plugin": "ds", "version": "1", "code_hash": "c1"},
            "train": {"plugin": "tr", "version": "1", "code_hash": "c2"}}
    provenance = {"run_id": run_id, "job_id": "j2", "seed": 0, "libraries": {"torch": "2.13"},
                  "device": {"kind": "cpu", "threads": 2}, "dataset": {"sha256": SHA["aaa"]}}
    return {"run": {"run_id": run_id, "state": "succeeded", "graph": graph, "order": ["data", "train"],
                    "code": code, "nodes": nodes, "label": "", "no_cache": False, "force": []},
            "nodes": {"data": {"curve": {}, "metrics": {"j1": {}}, "provenance": None,
                               "input_types": {"source": "path"}},
                      "train": {"curve": loss if loss is not None else {1: 2.0, 2: 1.5, 3: 1.25},
                                "metrics": {"j2": {"step": 3, "loss": 1.25}}, "provenance": provenance,
                                "input_types": {"dataset": "dataset", "model": "model"}}}}


def replay(base: dict[str, Any], run_id: str = "r2") -> dict[str, Any]:
    out = copy.deepcopy(base)
    out["run"]["run_id"] = run_id
    out["nodes"]["train"]["provenance"] = {**out["nodes"]["train"]["provenance"], "run_id": run_id, "job_id": "j9"}
    return out


def test_an_exact_replay_is_bit_identical_even_though_job_ids_differ() -> None:
    report = verify(facts(), replay(facts()))
    assert report["verdict"] == "bit-identical" and report["drift"] == []
    assert {n: r["verdict"] for n, r in report["nodes"].items()} == {"data": "bit-identical", "train": "bit-identical"}
    assert report["nodes"]["train"]["loss"]["max_abs_diff"] == 0.0
    assert report["nodes"]["data"]["outputs"]["artifacts_equal"] == ["dataset"]
    assert report["tolerance"]["rtol"] == 1e-3 and report["baseline"] == "r1" and report["run"] == "r2"


def test_losses_within_tolerance_with_different_artifacts_say_so() -> None:
    b = replay(facts())
    b["run"]["nodes"]["train"]["outputs"] = {"adapter": SHA["ccc"], "loss": 0.5000001}
    b["nodes"]["train"]["curve"] = {1: 2.0, 2: 1.5000004, 3: 1.25}
    report = verify(facts(), b)
    train = report["nodes"]["train"]
    assert report["verdict"] == train["verdict"] == "within-tolerance"
    assert train["outputs"]["artifacts_differ"] == [{"path": "adapter", "a": SHA["bbb"], "b": SHA["ccc"]}]
    assert train["loss"]["verdict"] == "within-tolerance" and train["loss"]["first_differing_step"] == 2
    assert abs(train["loss"]["max_abs_diff"] - 4e-7) < 1e-12
    assert any("artifacts differ: adapter" in n for n in train["notes"])
    assert "rtol=0.001" in report["summary"]


def test_a_tighter_tolerance_turns_the_same_drift_into_differs() -> None:
    b = replay(facts())
    b["nodes"]["train"]["curve"] = {1: 2.0, 2: 1.6, 3: 1.25}
    assert verify(facts(), b)["verdict"] == "differs"
    b["nodes"]["train"]["curve"] = {1: 2.0, 2: 1.5001, 3: 1.25}
    assert verify(facts(), b)["verdict"] == "within-tolerance"
    assert verify(facts(), b, Tolerance(rtol=1e-6))["verdict"] == "differs"


def test_a_changed_file_names_the_node_and_its_unrecorded_input_and_downstream_drift() -> None:
    b = replay(facts())
    b["run"]["nodes"]["data"]["outputs"] = {"dataset": SHA["ddd"], "rows": 11}
    b["nodes"]["train"]["provenance"]["dataset"] = {"sha256": SHA["ddd"]}
    report = verify(facts(), b)
    assert report["verdict"] == "differs" and report["nodes"]["data"]["verdict"] == "differs"
    drifted = {(d["node"], d["path"]): d for d in report["drift"]}
    source = drifted[("data", "inputs.source")]
    assert source["recorded"] is False and source["a"] == source["b"] == "/data/facts.jsonl"
    assert drifted[("train", "inputs.dataset")] == {"node": "train", "path": "inputs.dataset", "a": SHA["aaa"],
                                                    "b": SHA["ddd"]}
    assert ("train", "provenance.dataset.sha256") in drifted
    assert "data.inputs.source (not recorded)" in report["summary"]
    assert ("train", "inputs.model") not in drifted  # the train node's outputs are equal


def test_a_model_read_by_name_is_suspect_unless_provenance_recorded_its_identity() -> None:
    b = replay(facts())
    b["run"]["nodes"]["train"]["outputs"]["adapter"] = SHA["fff"]
    paths = [d["path"] for d in verify(facts(), b)["nodes"]["train"]["drift"]]
    assert paths == ["inputs.model"]
    a, b = facts(), replay(b)
    for f in (a, b):
        f["nodes"]["train"]["provenance"]["model"] = {"ref": "tiny", "weights_sha256": SHA["eee"]}
    assert verify(a, b)["nodes"]["train"]["drift"] == []


def test_every_recorded_input_that_drifted_is_listed_with_both_values() -> None:
    b = replay(facts())
    b["run"]["graph"]["nodes"]["train"]["params"]["lr"] = 2e-3
    b["run"]["graph"]["nodes"]["train"]["position"] = [9, 9]  # layout is not an input
    b["run"]["code"]["train"]["code_hash"] = "c3"
    b["nodes"]["train"]["provenance"]["libraries"] = {"torch": "2.14", "peft": "0.21"}
    b["nodes"]["train"]["provenance"]["device"]["threads"] = 8
    paths = {d["path"]: d for d in verify(facts(), b)["nodes"]["train"]["drift"]}
    assert set(paths) == {"graph.params.lr", "code.code_hash", "provenance.libraries.torch",
                          "provenance.libraries.peft", "provenance.device.threads"}
    assert (paths["graph.params.lr"]["a"], paths["graph.params.lr"]["b"]) == (1e-3, 2e-3)
    assert paths["provenance.libraries.peft"] == {"path": "provenance.libraries.peft", "b": "0.21", "only_in": "b"}


def test_state_or_json_outputs_or_missing_nodes_make_a_run_differ() -> None:
    b = replay(facts())
    b["run"]["nodes"]["data"]["outputs"]["rows"] = 12
    assert verify(facts(), b)["nodes"]["data"]["notes"] == ["outputs differ: rows"]
    c = replay(facts())
    c["run"]["nodes"]["train"]["state"] = "failed"
    assert verify(facts(), c)["nodes"]["train"]["notes"][0] == "state completed vs failed"
    d = replay(facts())
    del d["run"]["nodes"]["train"], d["run"]["graph"]["nodes"]["train"]
    d["run"]["order"] = ["data"]
    report = verify(facts(), d)
    assert report["verdict"] == "differs" and report["nodes"]["train"]["notes"] == ["no node 'train' in run r2"]


def test_curves_with_missing_steps_differ() -> None:
    got = compare_curves({1: 1.0, 2: 0.5}, {1: 1.0}, Tolerance())
    assert got is not None and got["verdict"] == "differs" and got["only_in_a"] == [2]
    assert compare_curves({}, {}, Tolerance()) is None


def test_key_diffs_names_nested_paths_and_keeps_booleans_apart_from_numbers() -> None:
    assert key_diffs({"a": {"b": [1, 2]}, "x": True}, {"a": {"b": [1, 3]}, "x": 1, "y": None}) == [
        {"path": "a.b[1]", "a": 2, "b": 3}, {"path": "x", "a": True, "b": 1}, {"path": "y", "b": None, "only_in": "b"}]
    assert key_diffs([1, 2], [1, 2, 3]) == [{"path": "value", "a": [1, 2], "b": [1, 2, 3]}]
    assert key_diffs({"n": 1}, {"n": 1.0}) == []


def test_diff_puts_inputs_and_outcomes_side_by_side() -> None:
    b = replay(facts(), "r3")
    b["run"]["graph"]["nodes"]["train"]["params"]["lr"] = 5e-4
    b["run"]["nodes"]["train"]["outputs"] = {"adapter": SHA["eee"], "loss": 0.7}
    b["nodes"]["train"]["metrics"] = {"j9": {"step": 3, "loss": 1.4}}
    out = diff(facts(), b)
    assert out["a"]["run_id"] == "r1" and out["b"]["run_id"] == "r3" and out["same_inputs"] is False
    assert out["nodes"]["data"]["same"] is True
    train = out["nodes"]["train"]
    assert [d["path"] for d in train["inputs_differ"]] == ["graph.params.lr"]
    assert [d["path"] for d in train["outcomes_differ"]] == ["outputs.adapter", "outputs.loss"]
    assert (train["a"]["metrics"], train["b"]["metrics"]) == ({"j2": {"step": 3, "loss": 1.25}},
                                                             {"j9": {"step": 3, "loss": 1.4}})
    assert train["a"]["inputs"]["dataset"] == SHA["aaa"] and train["a"]["code_hash"] == "c2"
    assert out["only_in_a"] == out["only_in_b"] == [] and out["run"] == []


def test_a_cached_node_reproduces_a_completed_one() -> None:
    a, b = facts(), replay(facts())
    a["run"]["nodes"]["data"]["state"] = "cached"  # the original took it from the cache, the replay re-ran it
    report = verify(a, b)
    assert report["verdict"] == "bit-identical", report["summary"]
    assert report["nodes"]["data"]["state"] == {"a": "cached", "b": "completed"}
    a["run"]["nodes"]["data"]["state"] = "failed"
    assert verify(a, b)["nodes"]["data"]["notes"][0] == "state failed vs completed"


def test_a_changed_data_file_is_named_by_its_content_hash_when_training_recorded_it() -> None:
    a, b = facts(), replay(facts())
    a["nodes"]["train"]["provenance"]["dataset"] = {"sha256": SHA["aaa"], "content_sha256": SHA["ccc"],
                                                   "source": {"sha256": SHA["eee"]}}
    b["run"]["nodes"]["data"]["outputs"] = {"dataset": SHA["ddd"], "rows": 10}
    b["nodes"]["train"]["provenance"]["dataset"] = {"sha256": SHA["ddd"], "content_sha256": SHA["fff"],
                                                   "source": {"sha256": SHA["bbb"]}}
    report = verify(a, b)
    drifted = {(d["node"], d["path"]): d for d in report["drift"]}
    assert drifted[("data", "inputs.source")] == {
        "node": "data", "path": "inputs.source", "a": SHA["eee"], "b": SHA["bbb"], "recorded": True,
        "note": f"data changed: sha {SHA['eee'][:12]} → {SHA['bbb'][:12]}"}
    content = drifted[("train", "provenance.dataset.content_sha256")]
    assert content["note"] == f"data changed: sha {SHA['ccc'][:12]} → {SHA['fff'][:12]}"
    assert "not recorded" not in report["summary"]
