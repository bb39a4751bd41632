"""Lineage trees over plain rows (no daemon): ancestors, replays, forks, resumes, adapters, merges."""

from __future__ import annotations

from typing import Any

from tunelog.daemon.runs.lineage import lineage


def run(run_id: str, pos: int, *, replay_of: str | None = None, fork: str | None = None,
        jobs: list[str] | None = None) -> dict[str, Any]:
    return {"run_id": run_id, "state": "succeeded", "label": run_id, "submitted_position": pos, "order": ["t"],
            "nodes": {"t": {"state": "completed", "jobs": jobs or [f"{run_id}-j"]}}, "replay_of": replay_of,
            "forked_from": {"run": fork, "node": "t", "step": 4, "job": "x"} if fork else None}


def shape(node: dict[str, Any]) -> Any:
    return (node["kind"], node["id"], node["relation"], [shape(c) for c in node["children"]])


def test_the_tree_is_rooted_at_the_oldest_ancestor_and_marks_the_focus() -> None:
    runs = [run("r1", 1, jobs=["j1", "j2", "j3"]), run("r2", 5, replay_of="r1"), run("r3", 9, fork="r1"),
            run("r4", 12, replay_of="r3"), run("other", 13)]
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
    tree = lineage("r1", [trained, merged_export, lora_export], adapters=adapters)
    assert shape(tree) == ("run", "r1", "origin", [
        ("adapter", a, "produced", [("export", "e1:export", "exported", []), ("export", "e2:export", "exported", [])]),
    ])
    first = tree["children"][0]["children"][0]
    assert (first["label"], first["state"]) == (f"export.gguf q8_0 -> {'g' * 12}", "cached")
