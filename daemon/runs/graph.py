"""Workflow graphs: parse, validate (every problem at once, named by node and port), order, key.

A graph is JSON or YAML:

    nodes:
      data:  {op: datasets.prepare, inputs: {source: ./facts.jsonl}, params: {format: auto}}
      train: {op: lora_trainer.train, inputs: {model: HuggingFaceTB/SmolLM2-135M-Instruct,
                                               dataset: {node: data, output: dataset}}}

An input is a literal value, a reference `{node, output}` to another node's output (an edge),
or a list or mapping with references inside (e.g. several adapters with weights). Port types
come from the plugin manifests: `any` fits everything, otherwise the output's type must equal
the input's; references nested inside a value feed an `any` port and are checked by the
operation itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tunelog.daemon.plugin_host import params as P
from tunelog.daemon.plugin_host.manager import PluginManager, Resolved
from tunelog.daemon.plugin_host.presets import apply_preset
from tunelog.events.errors import TunelogError, ValidationError

Problems = list[tuple[str, str]]


def is_ref(value: Any) -> bool:
    """True for an edge `{node, output}`."""
    return isinstance(value, Mapping) and set(value) == {"node", "output"}


def refs_in(value: Any) -> list[dict[str, Any]]:
    """Every reference in an input value, at the top or nested in lists and mappings."""
    if is_ref(value):
        return [dict(value)]
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in refs_in(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs_in(v)]
    return []


def substitute(value: Any, output: Any) -> Any:
    """The input value with each reference replaced by `output(node, port)`."""
    if is_ref(value):
        return output(value["node"], value["output"])
    if isinstance(value, Mapping):
        return {k: substitute(v, output) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, output) for v in value]
    return value


@dataclass
class Node:
    """One validated node."""

    id: str
    op: str
    plugin: str
    operation: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    """Literal values and `{node, output}` references."""
    resolved: Resolved
    position: list[float] | None = None


@dataclass
class Graph:
    """A validated graph in topological order."""

    nodes: dict[str, Node]
    order: list[str]
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """The graph as recorded in RunSubmitted: parameters fully resolved."""
        return {"description": self.description, "nodes": {
            n.id: {"op": n.op, "params": n.params, "inputs": n.inputs,
                   **({"position": n.position} if n.position is not None else {})}
            for n in (self.nodes[i] for i in self.order)}}

    def upstream(self, node: str) -> set[str]:
        return {r["node"] for v in self.nodes[node].inputs.values() for r in refs_in(v)}

    def descendants(self, node: str) -> set[str]:
        out: set[str] = set()
        todo = [node]
        while todo:
            cur = todo.pop()
            for other in self.order:
                if other not in out and cur in self.upstream(other):
                    out.add(other)
                    todo.append(other)
        return out


def parse_graph(raw: Any, plugins: PluginManager, *, where: str = "graph") -> Graph:
    """Validate a graph against the registered plugins; raises one ValidationError listing every problem."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("nodes"), Mapping) or not raw["nodes"]:
        raise ValidationError.collect("invalid workflow graph", [(f"{where}.nodes", "must be a non-empty mapping "
                                                                  "of node id -> {op, params, inputs}")])
    problems: Problems = [(f"{where}.{k}", "unknown field (known: nodes, description, name)")
                          for k in raw if k not in ("nodes", "description", "name")]
    nodes: dict[str, Node] = {}
    for node_id, spec in raw["nodes"].items():
        node = _parse_node(str(node_id), spec, plugins, problems)
        if node is not None:
            nodes[node.id] = node
    ids = {str(k) for k in raw["nodes"]}  # YAML may give a node id as a number; references name it as a string
    for node in nodes.values():
        problems += _check_edges(node, nodes, ids)
    order, cycle = _topological(nodes)
    if cycle:
        problems.append((f"nodes.{cycle[0]}", f"cycle: {' -> '.join(cycle)}"))
    if problems:
        raise ValidationError.collect(f"the workflow graph has {len(problems)} problem(s)", problems)
    return Graph(nodes=nodes, order=order, description=str(raw.get("description", "")), raw=dict(raw))


def _parse_node(node_id: str, spec: Any, plugins: PluginManager, problems: Problems) -> Node | None:
    at = f"nodes.{node_id}"
    if not isinstance(spec, Mapping):
        problems.append((at, "must be a mapping with op, params and inputs"))
        return None
    problems += [(f"{at}.{k}", "unknown field (known: op, params, inputs, position, title)")
                 for k in spec if k not in ("op", "params", "inputs", "position", "title")]
    op = spec.get("op")
    if not isinstance(op, str) or op.count(".") != 1:
        problems.append((f"{at}.op", f"must be 'plugin.operation', got {op!r}"))
        return None
    plugin, operation = op.split(".")
    try:
        resolved = plugins.resolve(plugin, operation)
    except TunelogError as exc:
        problems.append((f"{at}.op", f"unknown operation {op!r}: {_with_hint(exc)}"))
        return None
    params, inputs = spec.get("params") or {}, spec.get("inputs") or {}
    try:
        params = resolve_params(resolved, params, where=f"{at}.params")
    except ValidationError as exc:
        problems += [(p["where"], p["message"]) for p in exc.problems] or [(f"{at}.params", exc.message)]
        params = params if isinstance(params, Mapping) else {}
    problems += _uses_problems(resolved, params, plugins, where=f"{at}.params")
    if not isinstance(inputs, Mapping):
        problems.append((f"{at}.inputs", "must be a mapping of port -> value or {node, output}"))
        inputs = {}
    position = spec.get("position")
    if position is not None and not _is_point(position):
        problems.append((f"{at}.position", f"must be [x, y], two numbers, got {position!r}"))
        position = None
    return Node(id=node_id, op=op, plugin=plugin, operation=operation, params=dict(params),
                inputs=dict(inputs), resolved=resolved, position=position)


def _is_point(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value)


def used_operations(resolved: Resolved, params: Mapping[str, Any]) -> list[str]:
    """The `plugin.operation` names an operation's `uses_param` parameter holds (e.g. reward functions)."""
    name = resolved.op.uses_param
    values = params.get(name) if name else None
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def used_plugins(node: Node, plugins: PluginManager) -> dict[str, str]:
    """Plugin name -> current code hash of each plugin whose operations the node calls in its job."""
    out = {}
    for name in used_operations(node.resolved, node.params):
        plugin, _, operation = name.partition(".")
        out[plugin] = plugins.resolve(plugin, operation).row.code_hash
    return out


def _uses_problems(resolved: Resolved, params: Any, plugins: PluginManager, *, where: str) -> Problems:
    """Each name in the `uses_param` parameter must be a loaded `plugin.operation`."""
    if not isinstance(params, Mapping):
        return []
    problems: Problems = []
    for i, name in enumerate(used_operations(resolved, params)):
        plugin, _, operation = name.partition(".")
        at = f"{where}.{resolved.op.uses_param}[{i}]"
        if not plugin or not operation or "." in operation:
            problems.append((at, f"{name!r} is not plugin.operation (e.g. rewards.exact_match)"))
            continue
        try:
            plugins.resolve(plugin, operation)
        except TunelogError as exc:
            problems.append((at, f"no operation {name!r}: {_with_hint(exc)}"))
    return problems


def resolve_params(resolved: Resolved, params: Any, *, where: str) -> dict[str, Any]:
    """Defaults, then a named preset (operations with a `preset` parameter), then the given values."""
    out = P.validate_params(resolved.op, params, where=where)
    preset = out.get("preset")  # present only where the operation has the parameter (others are refused above)
    if not preset:
        return out
    # "preset" among the defaults, so apply_preset records it even where the parameter has no default
    defaults = {"preset": "", **{k: s.default for k, s in resolved.op.params.items() if s.default is not msgspec.UNSET}}
    try:
        out = apply_preset(preset, dict(params), defaults, presets=resolved.presets())
    except ValidationError as exc:
        raise ValidationError.collect(exc.message, [(f"{where}.preset", _with_hint(exc))]) from exc
    try:
        return P.validate_params(resolved.op, out, where=where)
    except ValidationError as exc:  # the given values passed above: what fails now came from the preset
        raise ValidationError.collect(f"preset {preset!r} does not fit the operation", [
            (p["where"], f"{p['message']}, set by preset {preset!r} (give the parameter a value, or fix the "
                         "plugin's presets file)") for p in exc.problems]) from exc


def _with_hint(exc: TunelogError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def _check_edges(node: Node, nodes: dict[str, Node], ids: set[str]) -> Problems:
    op = node.resolved.op
    at = f"nodes.{node.id}.inputs"
    known = ", ".join(op.inputs) or "none"
    problems: Problems = [(f"{at}.{k}", f"unknown input port (known: {known})")
                          for k in node.inputs if k not in op.inputs]
    for port, spec in op.inputs.items():
        value = node.inputs.get(port)
        if value is None:
            if spec.required:
                problems.append((f"{at}.{port}", f"required {spec.type} input is not connected"))
            continue
        refs = refs_in(value)
        if not refs:
            problem = P.port_problem(spec.type, value)
            if problem:
                problems.append((f"{at}.{port}", problem))
            continue
        if not is_ref(value) and spec.type != "any":
            problems.append((f"{at}.{port}", f"a {spec.type} input takes one value or one connection, "
                                             "not a list or mapping of them"))
            continue
        for ref in refs:  # one reference into a typed port, or any number nested in an `any` port's value
            problems += _check_ref(node, port, spec.type, ref, nodes, ids)
    return problems


def _check_ref(node: Node, port: str, port_type: str, ref: dict[str, Any], nodes: dict[str, Node],
               ids: set[str]) -> Problems:
    at = f"nodes.{node.id}.inputs.{port}"
    src_id, out_port = ref["node"], ref["output"]
    if not isinstance(src_id, str) or not isinstance(out_port, str):  # the run looks nodes up by string id
        return [(at, f"a connection names its node and output as strings: {{node: <node id>, output: <port>}}, "
                     f"got {ref!r}")]
    if src_id == node.id:
        return [(at, "a node cannot take its own output")]
    if src_id not in ids:
        return [(at, f"connected to unknown node {src_id!r}")]
    src = nodes.get(src_id)
    if src is None:
        return []  # that node's own problems are reported already
    out_spec = src.resolved.op.outputs.get(out_port)
    if out_spec is None:
        have = ", ".join(src.resolved.op.outputs) or "none"
        return [(at, f"node {src_id!r} ({src.op}) has no output {out_port!r} (outputs: {have})")]
    if not ports_fit(out_spec.type, port_type):
        return [(at, f"port type mismatch: {src_id}.{out_port} is {out_spec.type!r}, "
                     f"{node.id}.{port} takes {port_type!r}")]
    return []


def ports_fit(output_type: str, input_type: str) -> bool:
    """Whether an output of one type may feed an input of another."""
    return "any" in (output_type, input_type) or output_type == input_type or (
        input_type == "path" and output_type == "text")


def _topological(nodes: dict[str, Node]) -> tuple[list[str], list[str]]:
    """(order, []) or ([], a cycle)."""
    deps = {n.id: {r["node"] for v in n.inputs.values() for r in refs_in(v) if r["node"] in nodes and r["node"] != n.id}
            for n in nodes.values()}  # a node fed by itself is refused by _check_ref, not reported as a cycle too
    order: list[str] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str]:
        if state.get(n) == 2:
            return []
        if state.get(n) == 1:
            return [*stack[stack.index(n):], n]
        state[n] = 1
        stack.append(n)
        for d in sorted(deps[n]):
            cycle = visit(d)
            if cycle:
                return cycle
        stack.pop()
        state[n] = 2
        order.append(n)
        return []

    for n in nodes:  # declaration order breaks ties, so the order is stable
        cycle = visit(n)
        if cycle:
            return [], cycle
    return order, []


def cache_key(*, op: str, code_hash: str, params: dict[str, Any], inputs: dict[str, Any],
              uses: dict[str, str] | None = None) -> str:
    """sha256 of what determines a node's result; equal keys give equal outputs. `uses` (plugin ->
    code hash of the other plugins the node's job calls) joins the key only when there is one."""
    payload = msgspec.json.encode({"op": op, "code": code_hash, "params": params, "inputs": inputs,
                                   **({"uses": uses} if uses else {})}, order="sorted")
    return hashlib.sha256(payload).hexdigest()
