"""The editor's graph edits and canvas props, on the testops plugin's real manifest: connections
are checked by port type with daemon.graph.ports_fit, parameters by their schema, and every
refusal names the node and port the way parse_graph does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tunelog.frontends.web.editor import doc as D
from tunelog.frontends.web.editor import model
from tunelog.frontends.web.editor.catalog import Catalog, browser_schemas, manifest_operations
from tunelog.frontends.web.editor.view import flow_edges, flow_nodes, split_problems

MANIFEST = Path(__file__).resolve().parents[1] / "plugins_fixtures" / "testops" / "manifest.yaml"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return manifest_operations("testops", yaml.safe_load(MANIFEST.read_text()))


def graph() -> dict[str, Any]:
    return model.normalize({"nodes": {
        "a": {"op": "testops.outputs", "params": {"text": "hi"}, "position": [0, 0]},
        "b": {"op": "testops.outputs", "inputs": {"data": {"node": "a", "output": "report"}}},
        "r": {"op": "testops.read_file", "inputs": {"path": "/etc/hostname"}, "position": [300, 200]},
    }})


def test_a_mismatched_connection_is_refused_on_the_target_port(catalog: Catalog) -> None:
    g = graph()
    out, found = model.connect(g, catalog, {"source": "a", "sourceHandle": "report", "target": "r",
                                            "targetHandle": "path"})
    assert out is g and found == {"where": "nodes.r.inputs.path",
                                  "message": "port type mismatch: a.report is 'report', r.path takes 'path'"}


def test_a_fitting_connection_replaces_the_input_and_becomes_an_edge(catalog: Catalog) -> None:
    g = graph()
    out, found = model.connect(g, catalog, {"source": "a", "sourceHandle": "text", "target": "r",
                                            "targetHandle": "path"})
    assert found is None and out["nodes"]["r"]["inputs"]["path"] == {"node": "a", "output": "text"}
    assert g["nodes"]["r"]["inputs"]["path"] == "/etc/hostname"  # the argument is not mutated
    assert {e["id"] for e in model.edges(out)} == {"a.report->b.data", "a.text->r.path"}


def test_cycles_self_loops_and_unknown_ports_are_refused(catalog: Catalog) -> None:
    g = graph()
    for c, message in [({"source": "b", "sourceHandle": "report", "target": "a", "targetHandle": "data"}, "cycle"),
                       ({"source": "a", "sourceHandle": "report", "target": "a", "targetHandle": "data"}, "cycle"),
                       ({"source": "a", "sourceHandle": "nope", "target": "b", "targetHandle": "data"}, "no such port"),
                       ({"source": "ghost", "sourceHandle": "x", "target": "b", "targetHandle": "data"}, "unknown")]:
        out, found = model.connect(g, catalog, c)
        assert out is g and found is not None and message in found["message"], (c, found)


def test_deleting_a_node_drops_its_edges_and_deleting_an_edge_drops_the_input(catalog: Catalog) -> None:
    g = graph()
    assert "data" not in model.delete(g, ["a"], [])["nodes"]["b"]["inputs"]
    assert set(model.delete(g, ["a"], [])["nodes"]) == {"b", "r"}
    assert model.delete(g, [], ["a.report->b.data"])["nodes"]["b"]["inputs"] == {}
    nested = model.normalize({"nodes": {**g["nodes"], "m": {"op": "testops.outputs", "inputs": {"data": [
        {"ref": {"node": "a", "output": "report"}, "w": 1}, {"ref": {"node": "b", "output": "report"}, "w": 2}]}}}})
    ids = [e["id"] for e in model.edges(nested) if e["target"] == "m"]
    assert ids == ["a.report->m.data#0", "b.report->m.data#1"]
    kept = model.delete(nested, [], ["a.report->m.data#0"])["nodes"]["m"]["inputs"]["data"]
    assert kept == [{"ref": {"node": "b", "output": "report"}, "w": 2}]


def test_parameter_edits_follow_the_schema(catalog: Catalog) -> None:
    g = graph()
    out, found = model.set_param(g, catalog, {"node": "a", "key": "text", "value": "changed"})
    assert found is None and out["nodes"]["a"]["params"] == {"text": "changed"}
    bad = [({"node": "a", "key": "text", "value": 3}, "nodes.a.params.text", "expected string"),
           ({"node": "a", "key": "nope", "value": 3}, "nodes.a.params.nope", "unknown"),
           ({"node": "b", "key": "text", "raw": "{", "json": True}, "nodes.b.params.text", "JSON")]
    for edit, where, message in bad:
        same, found = model.set_param(g, catalog, edit)
        assert same is g and found is not None and found["where"] == where and message in found["message"]
    g2 = model.add_node(g, "testops.curve")[0]
    low, found = model.set_param(g2, catalog, {"node": "curve", "key": "steps", "value": 0})
    assert found == {"where": "nodes.curve.params.steps", "message": "0 is below the minimum 1"}
    out, _ = model.set_param(g2, catalog, {"node": "curve", "key": "scale", "value": 2})
    assert out["nodes"]["curve"]["params"]["scale"] == 2.0 and isinstance(out["nodes"]["curve"]["params"]["scale"],
                                                                           float)
    assert model.set_param(out, catalog, {"node": "curve", "key": "scale", "reset": True})[0]["nodes"]["curve"][
        "params"] == {}


def test_literal_inputs_added_nodes_moves_and_saved_form(catalog: Catalog) -> None:
    g = graph()
    assert model.set_input(g, catalog, {"node": "r", "key": "path", "value": ""})[0]["nodes"]["r"]["inputs"] == {}
    g, node_id = model.add_node(g, "testops.outputs")
    assert node_id == "outputs" and g["nodes"]["outputs"]["position"] == [620, 0]
    g = model.move(g, [{"id": "b", "x": 10.4, "y": -3}, {"id": "ghost", "x": 1, "y": 1}])
    assert g["nodes"]["b"]["position"] == [10, -3] and "ghost" not in g["nodes"]
    assert model.strip_empty(g)["nodes"]["outputs"] == {"op": "testops.outputs", "position": [620, 0]}


def test_canvas_props_carry_ports_states_and_problems_where_they_belong(catalog: Catalog) -> None:
    g = graph()
    by_node, general = split_problems(g, [{"where": "nodes.r.inputs.path", "message": "bad"},
                                          {"where": "graph.nodes", "message": "empty"}])
    assert by_node == {"r": [{"where": "inputs.path", "message": "bad"}]} and general == ["graph.nodes: empty"]
    states = {"b": {"state": "running", "detail": "step 1/3"}, "a": {"state": "cached", "detail": ""}}
    nodes = {n["id"]: n for n in flow_nodes(g, catalog, problems=by_node, states=states)}
    assert nodes["b"]["x"] is None and nodes["a"]["x"] == 0 and nodes["a"]["state"] == "cached"
    assert [p["name"] for p in nodes["r"]["inputs"]] == ["path"] and nodes["r"]["inputs"][0]["literal"] == "/etc/hostname"
    assert nodes["b"]["inputs"][0]["connected"] and nodes["r"]["errors"] == [{"where": "inputs.path", "message": "bad"}]
    assert flow_edges(g, states)[0]["animated"] is True
    assert browser_schemas(catalog)["testops.crash"]["params"]["how"]["choices"] == ["segv", "abort"]
    ghost = model.normalize({"nodes": {"x": {"op": "gone.op"}}})
    assert "unknown operation" in flow_nodes(ghost, catalog, problems={}, states={})[0]["errors"][0]["message"]


def test_doc_reducers_keep_refusals_on_the_node_and_clear_them_on_a_good_edit(catalog: Catalog) -> None:
    doc = D.new_doc("w", 1, graph())
    refused = D.on_connect(doc, catalog, {"source": "a", "sourceHandle": "report", "target": "r",
                                          "targetHandle": "path"})
    assert refused.graph == doc.graph and not refused.dirty and refused.tone == "error"
    assert refused.problems[0]["where"] == "nodes.r.inputs.path"
    fixed = D.on_connect(refused, catalog, {"source": "a", "sourceHandle": "text", "target": "r",
                                            "targetHandle": "path"})
    assert fixed.problems == () and fixed.dirty and "connected a.text -> r.path" in fixed.notice
    assert D.on_rename(fixed, "other").name == "w" and D.on_rename(D.new_doc("", 0, None), " x ").name == "x"
    assert D.on_move(doc, {"moved": [{"id": "a", "x": 0, "y": 0}]}) is doc
