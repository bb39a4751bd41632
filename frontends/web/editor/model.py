"""Edits of a workflow graph in the daemon's format, as pure functions.

A graph is `{"nodes": {id: {"op", "params", "inputs", "position"}}, "description"?}`; an edge
is an input whose value is a reference `{node, output}` (possibly nested in a list or mapping).
Every function returns a new graph and never mutates its argument; an edit that cannot be made
returns the graph unchanged with a Problem naming the node and port, in the same `where` form
as `parse_graph` (`nodes.<id>.inputs.<port>`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

import msgspec

from tunelog.daemon.plugin_host.params import check_value, coerce, port_problem
from tunelog.daemon.runs.graph import is_ref, ports_fit, refs_in
from tunelog.frontends.web.editor.catalog import Catalog

Graph = dict[str, Any]
Problem = dict[str, str]
"""`{"where": "nodes.<id>[.inputs.<port>|.params.<name>]", "message": ...}`."""


def problem(node: str, at: str, message: str) -> Problem:
    return {"where": f"nodes.{node}" + (f".{at}" if at else ""), "message": message}


def normalize(raw: Any) -> Graph:
    """A deep copy with `params` and `inputs` present on every node (what the editor works on)."""
    graph = copy.deepcopy(dict(raw or {}))
    nodes = graph["nodes"] if isinstance(graph.get("nodes"), dict) else {}
    graph["nodes"] = {str(k): {**v, "params": dict(v.get("params") or {}), "inputs": dict(v.get("inputs") or {})}
                      for k, v in nodes.items() if isinstance(v, dict)}
    return graph


def content(graph: Graph) -> Graph:
    """The graph without its layout (node positions): what a run computes from."""
    return {**graph, "nodes": {k: {f: v for f, v in spec.items() if f != "position"}
                               for k, spec in graph["nodes"].items()}}


def _with_node(graph: Graph, node_id: str, **changes: Any) -> Graph:
    nodes = dict(graph["nodes"])
    nodes[node_id] = {**nodes[node_id], **changes}
    return {**graph, "nodes": nodes}


def edge_id(src: str, output: str, dst: str, port: str, index: int | None = None) -> str:
    return f"{src}.{output}->{dst}.{port}" + (f"#{index}" if index is not None else "")


def edges(graph: Graph) -> list[dict[str, Any]]:
    """Every reference as an edge: id, source, sourceHandle, target, targetHandle."""
    out = []
    for dst, spec in graph["nodes"].items():
        for port, value in spec.get("inputs", {}).items():
            refs = refs_in(value)
            for i, ref in enumerate(refs):
                index = None if is_ref(value) else i
                out.append({"id": edge_id(ref["node"], ref["output"], dst, port, index), "source": ref["node"],
                            "sourceHandle": ref["output"], "target": dst, "targetHandle": port})
    return out


def upstream(graph: Graph, node_id: str) -> set[str]:
    """Every node `node_id` depends on, directly or not."""
    seen: set[str] = set()
    todo = [node_id]
    while todo:
        spec = graph["nodes"].get(todo.pop()) or {}
        for value in spec.get("inputs", {}).values():
            for ref in refs_in(value):
                if ref["node"] not in seen:
                    seen.add(ref["node"])
                    todo.append(ref["node"])
    return seen


def connect(graph: Graph, catalog: Catalog, c: dict[str, Any]) -> tuple[Graph, Problem | None]:
    """Wire `source.sourceHandle` into `target.targetHandle` if the port types fit (one edge per input)."""
    src, out, dst, port = (str(c.get(k) or "") for k in ("source", "sourceHandle", "target", "targetHandle"))
    nodes = graph["nodes"]
    if dst not in nodes or src not in nodes:
        return graph, problem(dst or src, "", f"cannot connect unknown node {src if src not in nodes else dst!r}")
    where = f"inputs.{port}"
    if src == dst or dst in upstream(graph, src):
        return graph, problem(dst, where, f"connecting {src}.{out} here would make a cycle")
    src_op, dst_op = catalog.get(nodes[src]["op"]), catalog.get(nodes[dst]["op"])
    if src_op is None or dst_op is None:
        unknown = nodes[src]["op"] if src_op is None else nodes[dst]["op"]
        return graph, problem(dst, where, f"unknown operation {unknown!r}: its port types are not known")
    out_type, in_type = src_op.output_type(out), dst_op.input_type(port)
    if out_type is None or in_type is None:
        return graph, problem(dst, where, f"no such port: {src}.{out} -> {dst}.{port}")
    if not ports_fit(out_type, in_type):
        return graph, problem(dst, where, f"port type mismatch: {src}.{out} is {out_type!r}, "
                                          f"{dst}.{port} takes {in_type!r}")
    inputs = {**nodes[dst]["inputs"], port: {"node": src, "output": out}}
    return _with_node(graph, dst, inputs=inputs), None


def move(graph: Graph, moved: Iterable[dict[str, Any]]) -> Graph:
    """Set `position: [x, y]` of the nodes named in `moved` ([{id, x, y}])."""
    out = graph
    for m in moved:
        node_id = str(m.get("id"))
        if node_id in out["nodes"] and isinstance(m.get("x"), int | float) and isinstance(m.get("y"), int | float):
            out = _with_node(out, node_id, position=[round(m["x"]), round(m["y"])])
    return out


def _drop_refs(value: Any, gone: Any) -> Any:
    """`value` without the references for which `gone(ref)` holds (None when nothing is left)."""
    if is_ref(value):
        return None if gone(value) else value
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if not any(gone(r) for r in refs_in(v))}
        return kept or None
    if isinstance(value, list):
        kept_list = [v for v in value if not any(gone(r) for r in refs_in(v))]
        return kept_list or None
    return value


def delete(graph: Graph, node_ids: Iterable[str], edge_ids: Iterable[str]) -> Graph:
    """Remove nodes (and every edge touching them) and edges by id."""
    drop_nodes, drop_edges = set(node_ids), set(edge_ids)
    by_id = {e["id"]: e for e in edges(graph)}
    dropped = {(by_id[i]["source"], by_id[i]["sourceHandle"], by_id[i]["target"], by_id[i]["targetHandle"])
               for i in drop_edges if i in by_id}
    nodes = {}
    for node_id, spec in graph["nodes"].items():
        if node_id in drop_nodes:
            continue
        inputs = {}
        for port, value in spec["inputs"].items():
            def gone(ref: dict[str, Any], port: str = port, node_id: str = node_id) -> bool:
                return ref["node"] in drop_nodes or (ref["node"], ref["output"], node_id, port) in dropped
            kept = _drop_refs(value, gone)
            if kept is not None:
                inputs[port] = kept
        nodes[node_id] = {**spec, "inputs": inputs}
    return {**graph, "nodes": nodes}


def set_param(graph: Graph, catalog: Catalog, edit: dict[str, Any]) -> tuple[Graph, Problem | None]:
    """Apply a form edit `{node, key, value}`, `{node, key, reset: true}` or `{node, key, raw, json: true}`,
    checked against the parameter's schema (type, choices, minimum, maximum)."""
    node_id, key = str(edit.get("node")), str(edit.get("key"))
    spec = graph["nodes"].get(node_id)
    op = catalog.get(spec["op"]) if spec else None
    if spec is None or op is None or key not in op.spec.params:
        return graph, problem(node_id, f"params.{key}", "unknown node or parameter")
    params = dict(spec["params"])
    if edit.get("reset"):
        params.pop(key, None)
        return _with_node(graph, node_id, params=params), None
    value = edit.get("value")
    if edit.get("json"):
        try:
            value = json.loads(str(edit.get("raw") or ""))
        except ValueError as exc:
            return graph, problem(node_id, f"params.{key}", f"not valid JSON: {exc}")
    found = check_value(op.spec.params[key], value, f"params.{key}")
    if found:
        return graph, problem(node_id, found[0][0], found[0][1])
    params[key] = coerce(op.spec.params[key], value)
    return _with_node(graph, node_id, params=params), None


def set_input(graph: Graph, catalog: Catalog, edit: dict[str, Any]) -> tuple[Graph, Problem | None]:
    """Give an unconnected input port a literal value (`""` removes it), checked against its type."""
    node_id, port, value = str(edit.get("node")), str(edit.get("key")), edit.get("value")
    spec = graph["nodes"].get(node_id)
    op = catalog.get(spec["op"]) if spec else None
    if spec is None or op is None or port not in op.spec.inputs:
        return graph, problem(node_id, f"inputs.{port}", "unknown node or input port")
    inputs = dict(spec["inputs"])
    if value in ("", None):
        inputs.pop(port, None)
        return _with_node(graph, node_id, inputs=inputs), None
    found = port_problem(op.spec.inputs[port].type, value)
    if found:
        return graph, problem(node_id, f"inputs.{port}", found)
    inputs[port] = value
    return _with_node(graph, node_id, inputs=inputs), None


def add_node(graph: Graph, op: str, *, position: list[int] | None = None) -> tuple[Graph, str]:
    """A new node of operation `op` with default parameters, to the right of the others."""
    base = op.split(".")[-1]
    node_id, n = base, 1
    while node_id in graph["nodes"]:
        n += 1
        node_id = f"{base}_{n}"
    if position is None:
        placed = [s["position"] for s in graph["nodes"].values() if isinstance(s.get("position"), list)]
        position = [max(p[0] for p in placed) + 320, min(p[1] for p in placed)] if placed else [0, 0]
    return {**graph, "nodes": {**graph["nodes"], node_id: {"op": op, "params": {}, "inputs": {},
                                                            "position": position}}}, node_id


def strip_empty(graph: Graph) -> Graph:
    """The graph as saved: empty `params`/`inputs` left out, like a hand-written one."""
    nodes = {}
    for node_id, spec in graph["nodes"].items():
        nodes[node_id] = {k: v for k, v in spec.items() if not (k in ("params", "inputs") and not v)}
    return msgspec.json.decode(msgspec.json.encode({**graph, "nodes": nodes}))  # type: ignore[no-any-return]
