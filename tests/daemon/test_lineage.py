"""Lineage trees over plain rows (no daemon): ancestors, replays, forks, resumes, adapters, merges."""

from __future__ import annotations

from typing import Any

from tunelog.daemon.runs.lineage import adapter_listing, lineage, parent_of


def run(run_id: str, pos: int, *, replay_of: str | None = None, fork: str | None = None,
        jobs: list[str] | None = None) -> dict[str, Any]:
    return {"run_id": run_id, "state": "succeeded", "label": run_id, "submitted_position": pos, "order": ["t"],
            "nodes": {"t": {"state": "completed", "jobs": jobs or [f"{run_id}-j"]}}, "replay_of": replay_of,
            "forked_from": {"run": fork, "node": "t", "step": 4, "job": "x"} if fork else None}


def shape(node: dict[str, Any]) -> Any:
    return (node["kind"], node["id"], node["relation"], [shape(c) for c in node["children"]])


def test_the_tree_is_rooted_at_the_oldest_ancestor_and_marks_the_focus() -> None:
    runs = [run("r3", 9, fork="r1"), run("r1", 1, jobs=["j1", "j2", "j3"]), run("r2", 5, replay_of="r1"),
            run("r4", 12, replay_of="r3"), run("other", 13)]  # children come in submitted order
    jobs = {"j1": {"state": "interrupted", "checkpoint_step": 2}, "j2": {"state": "interrupted", "resume_of": "j1",
                                                                          "checkpoint_step": 4},
            "j3": {"state": "succeeded", "resume_of": "j2"}}
    adapters = [{"sha256": "a" * 64, "source": "run", "run_id": "r1", "node": "t", "created_at": 1.0},
                {"sha256": "m" * 64, "source": "merge", "merge_type": "cat", "created_at": 2.0,
                 "parents": [{"sha256": "a" * 64, "weight": 1.0}, {"sha256": "z" * 64, "weight": 1.0}]},
                {"sha256": "n" * 64, "source": "merge", "merge_type": "linear", "created_at": 3.0,
                 "parents": [{"sha256": "m" * 64, "weight": 0.5}]}]
    tree = lineage("r4", runs, resumes={"r1": [["t"]]}, jobs=jobs, adapters=adapters)
    assert shape(tree) == ("run", "r1", "origin", [
        ("resume", "r1:resume:1", "resumed", []),
        ("node", "r1:t", "attempts", [("job", "j1", "first", [("job", "j2", "resume", [("job", "j3", "resume", [])])])]),
        ("adapter", "a" * 64, "produced", [("adapter", "m" * 64, "merged into", [("adapter", "n" * 64, "merged into", [])])]),
        ("run", "r2", "replay", []),
        ("run", "r3", "fork at t step 4", [("run", "r4", "replay", [])]),
    ])
    r4 = tree["children"][-1]["children"][0]
    assert r4["focus"] is True and "focus" not in tree
    assert tree["children"][1]["children"][0]["label"] == "checkpoint at step 2"


def test_a_lone_run_is_its_own_origin_and_a_dangling_parent_is_ignored() -> None:
    assert shape(lineage("other", [run("other", 1)])) == ("run", "other", "origin", [])
    orphan = lineage("r2", [run("r2", 2, replay_of="gone")])
    assert (orphan["id"], orphan["relation"], orphan["focus"]) == ("r2", "replay", True)


def test_exports_of_an_adapter_show_under_it_directly_or_through_a_merge() -> None:
    a, other = "a" * 64, "b" * 64
    trained = run("r1", 1)
    merged_export = {"run_id": "e1", "state": "succeeded", "label": "export", "submitted_position": 5,
                     "order": ["merge", "export"],
                     "graph": {"nodes": {"merge": {"op": "adapter_merge.merge_and_unload",
                                                   "inputs": {"model": "/base", "adapter": a}},
                                         "export": {"op": "export.gguf", "params": {"quant": "q8_0"},
                                                    "inputs": {"model": {"node": "merge", "output": "model"}}}}},
                     "nodes": {"merge": {"state": "completed"},
                               "export": {"state": "cached", "outputs": {"gguf": "g" * 64, "report": {}}}}}
    lora_export = {"run_id": "e2", "state": "succeeded", "label": "export", "submitted_position": 7, "order": ["export"],
                   "graph": {"nodes": {"export": {"op": "export.gguf_lora", "inputs": {"model": "/base",
                                                                                      "adapter": other}}}},
                   "nodes": {"export": {"state": "completed", "inputs": {"adapter": a}}}}
    adapters = [{"sha256": a, "source": "run", "run_id": "r1", "node": "t", "created_at": 1.0}]
    tree = lineage("r1", [trained, lora_export, merged_export], adapters=adapters)  # exports in submitted order
    assert shape(tree) == ("run", "r1", "origin", [
        ("adapter", a, "produced", [("export", "e1:export", "exported", []), ("export", "e2:export", "exported", [])]),
    ])
    first = tree["children"][0]["children"][0]
    assert (first["label"], first["state"]) == (f"export.gguf q8_0 -> {'g' * 12}", "cached")


def test_a_cycle_in_damaged_data_ends_and_a_fork_without_a_step_names_only_its_node() -> None:
    a = {"run_id": "a", "state": "failed", "replay_of": "b", "submitted_position": 1}
    b = {"run_id": "b", "state": "running", "forked_from": {"run": "a", "node": "n"}, "submitted_position": 2}
    tree = lineage("a", [a, b])
    assert (tree["id"], tree["relation"], tree["state"], tree["label"], tree["run_id"]) == ("b", "fork at n", "running",
                                                                                         "", "b")
    assert [(c["id"], c["relation"], c.get("focus")) for c in tree["children"]] == [("a", "replay", True)]
    assert tree["children"][0]["children"] == []
    c = {"run_id": "c", "state": "failed", "replay_of": "b", "submitted_position": 3}
    assert lineage("a", [{**a, "replay_of": "b"}, {**b, "forked_from": {"run": "c", "node": "n"}}, c])["id"] in "bc"
    assert parent_of({"replay_of": "x", "forked_from": {"run": "y"}}) == "x"
    assert parent_of({"forked_from": {"run": "y"}}) == "y" and parent_of({"forked_from": None}) is None


def test_resumes_and_job_chains_are_labelled_with_their_nodes_and_checkpoints() -> None:
    r = {"run_id": "r", "state": "failed", "label": "L", "order": ["one", "t", "u"],
         "nodes": {"one": {"state": "completed", "jobs": ["j0"]},
                   "t": {"state": "failed", "jobs": ["j1", "j2", "j3"]},
                   "u": {"state": "completed", "jobs": ["k1", "k2"]}}}
    jobs = {"j1": {"state": "interrupted", "checkpoint_step": 0}, "j2": {"state": "failed", "resume_of": "j1"},
            "j3": {"state": "failed", "resume_of": "elsewhere"}, "k2": {"state": "succeeded", "resume_of": "k1"}}
    tree = lineage("r", [r], resumes={"r": [["t", "u"], ["t"]], "other": [["x"]]}, jobs=jobs)
    assert tree == {"kind": "run", "id": "r", "run_id": "r", "relation": "origin", "label": "L", "state": "failed",
                    "focus": True, "children": [
        {"kind": "resume", "id": "r:resume:1", "run_id": "r", "relation": "resumed",
         "label": "nodes run again: t, u", "state": "", "children": []},
        {"kind": "resume", "id": "r:resume:2", "run_id": "r", "relation": "resumed", "label": "nodes run again: t",
         "state": "", "children": []},
        {"kind": "node", "id": "r:t", "run_id": "r", "relation": "attempts", "label": "node t: 3 jobs",
         "state": "failed", "children": [
            {"kind": "job", "id": "j1", "run_id": "r", "relation": "first", "label": "checkpoint at step 0",
             "state": "interrupted", "children": [
                {"kind": "job", "id": "j2", "run_id": "r", "relation": "resume", "label": "no checkpoint",
                 "state": "failed", "children": []}]},
            {"kind": "job", "id": "j3", "run_id": "r", "relation": "first", "label": "no checkpoint",
             "state": "failed", "children": []}]},
        {"kind": "node", "id": "r:u", "run_id": "r", "relation": "attempts", "label": "node u: 2 jobs",
         "state": "completed", "children": [
            {"kind": "job", "id": "k1", "run_id": "r", "relation": "first", "label": "no checkpoint", "state": "",
             "children": [{"kind": "job", "id": "k2", "run_id": "r", "relation": "resume", "label": "no checkpoint",
                           "state": "succeeded", "children": []}]}]}]}


def test_adapters_in_creation_order_and_merge_chains_stop_at_depth_nine() -> None:
    r = {"run_id": "r", "state": "succeeded", "submitted_position": 1}
    shas = [f"{i}" * 64 for i in range(12)]
    adapters = [{"sha256": shas[0], "source": "run", "run_id": "r", "node": "t2", "created_at": 5.0},
                {"sha256": "f" * 64, "source": "run", "run_id": "r", "node": "t1", "created_at": 1.0},
                {"sha256": "e" * 64, "source": "run", "run_id": "other", "node": "t", "created_at": 2.0},
                *({"sha256": shas[i], "source": "merge", "merge_type": "ties", "parents": [{"sha256": shas[i - 1]}],
                   "created_at": 10.0 + i} for i in range(1, 12))]
    tree = lineage("r", [r], adapters=adapters)
    first, second = tree["children"]
    assert (first["id"], first["label"], first["run_id"], first["relation"], first["state"]) == (
        "f" * 64, "node t1", "r", "produced", "")
    assert second["label"] == "node t2"
    depth, node = 0, second
    while node["children"]:
        node = node["children"][0]
        depth += 1
        assert (node["relation"], node["label"], node["id"]) == ("merged into", "ties merge", shas[depth])
    assert depth == 9  # nine merges below the adapter; the tenth and eleventh are cut


def merge_run(adapters: Any, base: Any, outputs: dict[str, Any], op: str = "adapter_merge.combine") -> dict[str, Any]:
    inputs = {"adapters": adapters, **({"model": base} if base is not None else {})}
    return {"run_id": "m", "state": "succeeded", "submitted_position": 3, "order": ["pre", "merge"],
            "graph": {"nodes": {"pre": {"op": "ex.gen"}, "merge": {"op": op}}},
            "nodes": {"pre": {"state": "completed"}, "merge": {"state": "completed", "inputs": inputs,
                                                               "outputs": outputs}}}


def test_a_merge_lists_its_weighted_inputs_and_what_it_made() -> None:
    a, b, c, d = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    run = merge_run([f"{a}:0.25", b, f"{c}:bad", {"sha256": d, "weight": 2}, {"sha256": "e" * 64}, {"sha256": 3}, 7],
                    "9" * 64, {"adapter": "o" * 64, "model": "p" * 64, "report": "q" * 64})
    (merge,) = lineage("m", [run])["children"]
    assert (merge["kind"], merge["id"], merge["run_id"], merge["relation"], merge["state"]) == (
        "merge", "m:merge", "m", "merged", "completed")
    assert merge["label"] == f"combine of 5 adapter(s) on {'9' * 12}"
    assert {k["state"] for k in merge["children"]} == {""}
    assert [(k["kind"], k["id"], k["run_id"], k["relation"], k["label"]) for k in merge["children"]] == [
        ("adapter", a, None, "input", "weight 0.25"), ("adapter", b, None, "input", "weight 1"),
        ("adapter", c, None, "input", "weight 1"), ("adapter", d, None, "input", "weight 2"),
        ("adapter", "e" * 64, None, "input", "weight 1"),
        ("adapter", "o" * 64, "m", "produced", "node merge"), ("model", "p" * 64, "m", "produced", "node merge")]
    named = lineage("m", [merge_run(a, "org/base", {}, op="adapter_merge.merge_and_unload")])["children"][0]
    assert named["label"] == "merge_and_unload of 1 adapter(s) on org/base"
    single = merge_run(None, None, {})
    single["nodes"]["merge"]["inputs"] = {"adapter": f"{a}:0.5"}
    assert lineage("m", [single])["children"][0]["label"] == "combine of 1 adapter(s)"
    assert lineage("m", [merge_run(None, "short", {})])["children"][0]["label"] == "combine of 0 adapter(s) on short"


def test_exports_are_found_through_lists_and_wiring_and_labelled_with_their_settings() -> None:
    a = "a" * 64
    trained = {"run_id": "r", "state": "succeeded", "submitted_position": 1}
    adapters = [{"sha256": a, "source": "run", "run_id": "r", "node": "t", "created_at": 1.0}]
    looped = {"run_id": "x", "state": "failed", "submitted_position": 9,
              "graph": {"nodes": {"p": {"op": "ex.use", "inputs": {"data": {"node": "q", "output": "o"}}},
                                  "q": {"op": "ex.use", "inputs": {"data": {"node": "p", "output": "o"}}},
                                  "e": {"op": "export.gguf", "inputs": {"model": {"node": "p", "output": "o"}}}}},
              "nodes": {"e": {"state": "skipped"}}}
    listed = {"run_id": "l", "state": "succeeded", "submitted_position": 4,
              "graph": {"nodes": {"e": {"op": "export.gguf", "params": {"outtype": "f16", "quant": "q4"},
                                        "inputs": {"bits": 4, "adapters": ["z", a]}}}},
              "nodes": {"e": {"state": "completed", "outputs": {"gguf": "g" * 64, "size": 3, "report": "r" * 64}}}}
    other = {"run_id": "o", "state": "succeeded", "submitted_position": 2,
             "graph": {"nodes": {"e": {"op": "export.gguf", "inputs": {"model": "b" * 64}},
                                 "n": {"op": "notexport.gguf", "inputs": {"model": a}}}}}
    tree = lineage("r", [trained, looped, listed, other], adapters=adapters)
    (adapter,) = tree["children"]
    assert [(e["kind"], e["id"], e["run_id"], e["relation"], e["label"], e["state"]) for e in adapter["children"]] == [
        ("export", "l:e", "l", "exported", f"export.gguf q4 f16 -> {'g' * 12}", "completed")]


def test_an_adapter_listing_names_its_base_model_from_the_merge_or_the_training_node() -> None:
    merged = {"sha256": "m", "source": "merge", "base_model": {"ref": "/base"}}
    assert adapter_listing(merged, run=None, path="/p") == {**merged, "path": "/p"}
    trained = {"sha256": "t", "source": "run", "node": "train", "base_model": {}}
    run = {"nodes": {"train": {"inputs": {"model": "org/m", "data": "d"}}, "other": {}}}
    assert adapter_listing(trained, run=run, path=None) == {**trained, "path": None, "base_model": {"ref": "org/m"}}
    assert adapter_listing({**trained, "node": "other"}, run=run, path=None)["base_model"] is None
    assert adapter_listing({**trained, "node": "gone"}, run={"nodes": None}, path=None)["base_model"] is None
    assert adapter_listing(trained, run=None, path=None)["base_model"] == {}
