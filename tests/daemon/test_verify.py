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


def test_a_replay_that_sampled_other_completions_names_the_step() -> None:
    """GRPO keeps the sha256 of each step's sampled completions in its metrics output."""
    a = facts()
    a["run"]["nodes"]["train"]["outputs"]["metrics"] = {"completions_sha256": [SHA["ccc"], SHA["ddd"]]}
    assert verify(a, replay(a))["verdict"] == "bit-identical"
    b = replay(a)
    b["run"]["nodes"]["train"]["outputs"]["metrics"]["completions_sha256"][1] = SHA["eee"]
    report = verify(a, b)
    assert report["verdict"] != "bit-identical"
    assert report["nodes"]["train"]["notes"] == ["artifacts differ: metrics.completions_sha256[1]"]


def test_a_node_in_one_run_only_names_the_run_that_lacks_it() -> None:
    a, b = facts(), replay(facts())
    b["run"]["nodes"]["eval"] = {"state": "completed", "outputs": {"score": 1}}
    b["run"]["graph"]["nodes"]["eval"] = {"op": "ev.score"}
    b["run"]["order"] = ["data", "train", "eval"]
    report = verify(a, b)
    assert list(report["nodes"]) == ["data", "train", "eval"]
    assert report["nodes"]["eval"] == {"verdict": "differs", "notes": ["no node 'eval' in run r1"], "drift": [],
                                       "state": {"a": None, "b": "completed"}, "outputs": None, "loss": None}
    assert report["summary"] == "differs: eval: no node 'eval' in run r1"
    back = verify(b, a)
    assert back["nodes"]["eval"]["state"] == {"a": "completed", "b": None}
    assert back["nodes"]["eval"]["notes"] == ["no node 'eval' in run r1"] and back["baseline"] == "r2"


def test_the_summary_lists_each_off_node_its_notes_and_every_drifted_input() -> None:
    a, b = facts(), replay(facts())
    b["run"]["nodes"]["train"]["outputs"] = {"adapter": SHA["ccc"], "loss": 0.5000001}
    b["nodes"]["train"]["curve"] = {"1": 2.0, "2": 1.5000004, "3": 1.25}  # steps as JSON keys
    b["run"]["graph"]["nodes"]["train"]["params"]["lr"] = 2e-3
    report = verify(a, b, Tolerance(rtol=0.01, atol=0.5))
    assert report["tolerance"] == {"rtol": 0.01, "atol": 0.5,
                                   "applies_to": "loss curves and numeric outputs; artifacts by sha256"}
    assert report["summary"] == (
        "within tolerance (rtol=0.01, atol=0.5) but not bit-identical: train: artifacts differ: adapter, "
        "loss curves agree within rtol=0.01, atol=0.5 (max abs diff 4.0000000001150227e-07), numeric outputs "
        "within tolerance: loss; drifted inputs: train.graph.params.lr, train.inputs.model (not recorded)")
    assert verify(a, replay(a))["summary"] == "bit-identical: every artifact hash, output and loss value is equal"
    c = replay(facts())
    c["run"]["nodes"]["data"]["outputs"] = {"dataset": SHA["ddd"], "rows": 11, "cols": 3}
    c["nodes"]["train"]["curve"] = {}
    c["nodes"]["train"]["provenance"]["dataset"] = {"sha256": SHA["ddd"], "content_sha256": SHA["eee"]}
    a["nodes"]["train"]["provenance"]["dataset"]["content_sha256"] = SHA["fff"]
    report = verify(a, c)
    assert report["summary"] == (
        "differs: data: outputs differ: cols, rows, artifacts differ: dataset (no loss curve to compare); "
        "train: loss curves differ (max abs diff None, steps {'a': 3, 'b': 0, 'compared': 0}); drifted inputs: "
        "data.inputs.source (not recorded), train.inputs.dataset, train.provenance.dataset.content_sha256 "
        f"(data changed: sha {'f' * 12} → {'e' * 12}), train.provenance.dataset.sha256, "
        "train.inputs.model (not recorded)")
    assert report["drift"][0] == {"node": "data", "path": "inputs.source", "a": "/data/facts.jsonl",
                                  "b": "/data/facts.jsonl", "recorded": False,
                                  "note": "a path read outside the log: its content is not recorded and may have changed"}
    d = replay(facts())
    d["run"]["nodes"]["data"]["outputs"].update(dataset=SHA["ccc"], extra=SHA["eee"])
    assert verify(facts(), d)["nodes"]["data"]["notes"] == ["artifacts differ: dataset, extra (no loss curve to compare)"]


def test_which_literal_inputs_are_suspect_when_a_node_changed() -> None:
    a, b = facts(), replay(facts())
    b["run"]["nodes"]["data"]["outputs"]["dataset"] = SHA["ccc"]
    b["nodes"]["data"]["input_types"] = {}  # only the baseline's facts know the port types
    for f in (a, b):  # a second file input, and a literal hash, which names its content itself
        f["run"]["graph"]["nodes"]["data"]["inputs"].update(extra="/data/more.jsonl", pinned=SHA["eee"])
    a["nodes"]["data"]["input_types"].update(extra="path", pinned="path")
    paths = [d["path"] for d in verify(a, b)["nodes"]["data"]["drift"]]
    assert paths == ["inputs.source", "inputs.extra"]
    b["run"]["graph"]["nodes"]["data"]["inputs"]["extra"] = "/data/other.jsonl"  # not equal: a graph drift instead
    paths = [d["path"] for d in verify(a, b)["nodes"]["data"]["drift"]]
    assert paths == ["graph.inputs.extra", "inputs.source"]


def test_a_model_is_trusted_only_when_both_runs_recorded_its_identity() -> None:
    a, b = facts(), replay(facts())
    b["run"]["nodes"]["train"]["outputs"]["adapter"] = SHA["fff"]
    a["nodes"]["train"]["provenance"]["model"] = {"ref": "tiny", "weights_sha256": SHA["eee"]}
    assert [d["path"] for d in verify(a, b)["nodes"]["train"]["drift"]] == ["provenance.model", "inputs.model"]


def test_source_hashes_name_a_changed_file_only_when_both_runs_recorded_them() -> None:
    def with_source(f: dict[str, Any], dataset: str, source: str) -> None:
        f["run"]["nodes"]["data"]["outputs"]["dataset"] = dataset
        f["nodes"]["train"]["provenance"]["dataset"] = {"sha256": dataset, "source": {"sha256": source}}
        f["run"]["graph"]["nodes"]["data"]["inputs"]["other"] = "/data/other.jsonl"
        f["nodes"]["data"]["input_types"]["other"] = "path"

    a, b = facts(), replay(facts())
    with_source(a, SHA["aaa"], SHA["eee"])
    with_source(b, SHA["ddd"], SHA["bbb"])
    drift = verify(a, b)["nodes"]["data"]["drift"]
    assert [(d["path"], d["a"], d["b"]) for d in drift] == [  # one per port: both read from outside
        ("inputs.source", SHA["eee"], SHA["bbb"]), ("inputs.other", SHA["eee"], SHA["bbb"])]
    same = replay(facts())
    with_source(same, SHA["ddd"], SHA["eee"])  # other prepared bytes, the same source: nothing drifted there
    assert verify(a, same)["nodes"]["data"]["drift"] == []
    blank = replay(facts())
    with_source(blank, SHA["ddd"], "")  # an empty recorded hash is no hash
    assert [d["recorded"] for d in verify(a, blank)["nodes"]["data"]["drift"]] == [False, False]
    elsewhere = replay(facts())
    with_source(elsewhere, SHA["ddd"], SHA["bbb"])
    elsewhere["nodes"]["train"]["provenance"]["dataset"]["sha256"] = SHA["ccc"]  # trained on another dataset
    assert [d["recorded"] for d in verify(a, elsewhere)["nodes"]["data"]["drift"]] == [False, False]


def test_only_a_changed_content_hash_is_said_as_data_changed() -> None:
    a, b = facts(), replay(facts())
    a["nodes"]["train"]["provenance"]["dataset"]["content_sha256"] = SHA["ccc"]
    b["nodes"]["train"]["provenance"]["dataset"]["content_sha256"] = "not recorded"
    b["nodes"]["train"]["provenance"]["weights_sha256"] = SHA["ddd"]
    a["nodes"]["train"]["provenance"]["weights_sha256"] = SHA["eee"]
    drift = {d["path"]: d for d in verify(a, b)["nodes"]["train"]["drift"]}
    assert "note" not in drift["provenance.dataset.content_sha256"]
    assert drift["provenance.weights_sha256"] == {"path": "provenance.weights_sha256", "a": SHA["eee"],
                                                  "b": SHA["ddd"]}


def test_diff_shows_every_field_of_both_sides_and_nodes_in_one_run_only() -> None:
    a, b = facts(), replay(facts(), "r3")
    a["run"].update(label="base", workflow="wf", workflow_version=2)
    b["run"].update(replay_of="r1", forked_from="r0", no_cache=True, label="again", workflow="wf",
                    workflow_version=3)
    b["run"]["nodes"]["train"].update(state="failed", error="boom", outputs={})
    b["run"]["code"]["train"]["version"] = "2"
    del b["nodes"]["train"]["metrics"]
    b["run"]["nodes"]["eval"] = {"state": "completed", "outputs": {"score": 1}}
    b["run"]["graph"]["nodes"]["eval"] = {"op": "ev.score", "inputs": {"adapter": {"node": "train", "output": "adapter"}}}
    b["run"]["order"] = ["data", "train", "eval"]
    out = diff(a, b)
    assert out["a"] == {"run_id": "r1", "state": "succeeded", "label": "base", "replay_of": None, "forked_from": None,
                        "no_cache": False, "force": [], "workflow": "wf", "workflow_version": 2}
    assert out["b"] == {"run_id": "r3", "state": "succeeded", "label": "again", "replay_of": "r1",
                        "forked_from": "r0", "no_cache": True, "force": [], "workflow": "wf", "workflow_version": 3}
    assert out["run"] == [{"path": "no_cache", "a": False, "b": True}, {"path": "workflow_version", "a": 2, "b": 3}]
    assert out["only_in_a"] == [] and out["only_in_b"] == ["eval"] and out["same_inputs"] is False
    assert out["nodes"]["eval"] == {"a": None, "inputs_differ": [], "outcomes_differ": [], "same": False, "b": {
        "op": "ev.score", "params": {}, "inputs": {"adapter": None}, "code_hash": None, "version": None,
        "state": "completed", "error": "", "outputs": {"score": 1}, "metrics": {}}}
    train = out["nodes"]["train"]
    assert train["b"] == {"op": "tr.train", "params": {"lr": 1e-3, "seed": 0},
                          "inputs": {"dataset": SHA["aaa"], "model": "tiny"}, "code_hash": "c2", "version": "2",
                          "state": "failed", "error": "boom", "outputs": {}, "metrics": {}}
    assert train["a"]["error"] == "" and train["a"]["version"] == "1" and train["same"] is False
    assert train["inputs_differ"] == [{"path": "code.version", "a": "1", "b": "2"}]
    assert train["outcomes_differ"] == [{"path": "outputs.adapter", "a": SHA["bbb"], "only_in": "a"},
                                        {"path": "outputs.loss", "a": 0.5, "only_in": "a"},
                                        {"path": "state", "a": "completed", "b": "failed"}]
    same = diff(facts(), replay(facts()))
    assert same["same_inputs"] is True and all(n["same"] for n in same["nodes"].values())
    c = replay(facts())
    c["run"]["code"]["train"]["code_hash"] = "c9"  # other code, same outcome: not the same
    assert diff(facts(), c)["nodes"]["train"]["same"] is False
    del c["run"]["nodes"]["train"], c["run"]["graph"]["nodes"]["train"]
    assert diff(facts(), c)["only_in_a"] == ["train"] and diff(facts(), c)["nodes"]["train"]["b"] is None


def test_a_node_without_gathered_facts_compares_by_its_row_alone() -> None:
    """Facts gathered for a node that recorded no curve, metrics or port types (e.g. an older log)."""
    a = facts()
    del a["nodes"]["data"]
    assert verify(a, replay(a))["verdict"] == "bit-identical"
    b = replay(a)
    b["run"]["nodes"]["data"]["outputs"]["dataset"] = SHA["ccc"]
    report = verify(a, b)
    assert report["nodes"]["data"]["notes"] == ["artifacts differ: dataset (no loss curve to compare)"]
    assert report["nodes"]["data"]["drift"] == []  # no port types: nothing to suspect
    assert diff(a, b)["nodes"]["data"]["a"]["metrics"] == {}


def test_soft_notes_list_every_path() -> None:
    a, b = facts(), replay(facts())
    a["run"]["nodes"]["train"]["outputs"].update(report=SHA["ddd"], acc=0.25)
    b["run"]["nodes"]["train"]["outputs"].update(adapter=SHA["ccc"], report=SHA["eee"], loss=0.5000001, acc=0.2500001)
    notes = verify(a, b)["nodes"]["train"]["notes"]
    assert notes == ["artifacts differ: adapter, report", "numeric outputs within tolerance: acc, loss"]
