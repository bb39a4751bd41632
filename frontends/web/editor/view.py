"""What the canvas is given: nodes and edges as plain JSON, with ports, run states and problems.

Problems arrive in `parse_graph`'s form (`where` = `nodes.<id>.inputs.<port>`); each is shown
on the node it names, relative to it (`inputs.<port>`), and those naming no node are returned
apart for the page to show.
"""

from __future__ import annotations

from typing import Any

from tunelog.daemon.runs.graph import refs_in
from tunelog.events.run_state import NODE_ACTIVE
from tunelog.frontends.web.editor.catalog import Catalog
from tunelog.frontends.web.editor.model import Graph, edges

SUMMARY_LINES = 4


def split_problems(graph: Graph, problems: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, str]]], list[str]]:
    """({node id: [{where (relative), message}]}, messages naming no node)."""
    by_node: dict[str, list[dict[str, str]]] = {}
    general: list[str] = []
    ids = sorted(graph["nodes"], key=len, reverse=True)  # longest first: ids may contain dots
    for p in problems:
        where, message = str(p.get("where", "")), str(p.get("message", ""))
        node = next((i for i in ids if where == f"nodes.{i}" or where.startswith(f"nodes.{i}.")), None)
        if node is None:
            general.append(f"{where}: {message}" if where else message)
            continue
        rest = where[len(f"nodes.{node}"):].lstrip(".")
        by_node.setdefault(node, []).append({"where": rest, "message": message})
    return by_node, general


def _short(value: Any, limit: int = 32) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ports(graph: Graph, node_id: str, spec: dict[str, Any], catalog: Catalog) -> tuple[list[Any], list[Any]]:
    op = catalog.get(spec["op"])
    given = spec.get("inputs", {})
    if op is None:  # unknown operation: show what the graph itself says
        inputs = [{"name": p, "type": "?", "required": True, "connected": bool(refs_in(v)),
                   "literal": None, "literalEditable": False, "description": ""} for p, v in given.items()]
        used = sorted({r["output"] for s in graph["nodes"].values() for v in s.get("inputs", {}).values()
                       for r in refs_in(v) if r["node"] == node_id})
        return inputs, [{"name": o, "type": "?", "description": ""} for o in used]
    inputs = []
    for port, p in op.spec.inputs.items():
        value = given.get(port)
        connected = bool(refs_in(value))
        literal = None if connected or value is None else (value if isinstance(value, str) else _short(value))
        inputs.append({"name": port, "type": p.type, "required": p.required, "connected": connected,
                       "literal": literal, "description": p.description,
                       "literalEditable": not connected and (value is None or isinstance(value, str))})
    outputs = [{"name": o, "type": p.type, "description": p.description} for o, p in op.spec.outputs.items()]
    return inputs, outputs


def flow_nodes(graph: Graph, catalog: Catalog, *, problems: dict[str, list[dict[str, str]]],
               states: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """One canvas node per graph node."""
    out = []
    for node_id, spec in graph["nodes"].items():
        inputs, outputs = _ports(graph, node_id, spec, catalog)
        pos = spec.get("position")
        placed = isinstance(pos, list) and len(pos) == 2
        params = spec.get("params", {})
        errors = list(problems.get(node_id, []))
        if spec["op"] not in catalog and not any(e["where"] in ("", "op") for e in errors):
            errors.insert(0, {"where": "op", "message": f"unknown operation {spec['op']!r} (is its plugin loaded?)"})
        state = states.get(node_id, {})
        out.append({
            "id": node_id, "op": spec["op"], "label": str(spec.get("title") or node_id),
            "x": pos[0] if placed else None, "y": pos[1] if placed else None,
            "inputs": inputs, "outputs": outputs, "params": params,
            "summary": [f"{k} = {_short(v)}" for k, v in list(params.items())[:SUMMARY_LINES]]
                       + ([f"… {len(params) - SUMMARY_LINES} more"] if len(params) > SUMMARY_LINES else []),
            "state": state.get("state", ""), "detail": state.get("detail", ""), "errors": errors,
        })
    return out


def flow_edges(graph: Graph, states: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Edges, animated while their target is waiting for or running its job."""
    out = []
    for e in edges(graph):
        target_state = states.get(e["target"], {}).get("state", "")
        out.append({**e, "animated": target_state in NODE_ACTIVE,
                    "className": f"tl-edge-{target_state}" if target_state else ""})
    return out

