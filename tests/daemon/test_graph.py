"""Workflow graphs (daemon/runs/graph.py) against real plugins registered by a real plugin manager: each
refusal's place (`where`: node, field, port) and text, every problem of a graph at once, the run order,
parameters with their defaults, coercion and presets, and the spec a run records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import yaml

from tunelog.daemon.paths import Paths
from tunelog.daemon.plugin_host.manager import PluginManager
from tunelog.daemon.runs.graph import (
    _with_hint,
    is_ref,
    parse_graph,
    ports_fit,
    refs_in,
    resolve_params,
    substitute,
    used_operations,
    used_plugins,
)
from tunelog.events.errors import NotFoundError, ValidationError
from tunelog.store.sqlite import SqliteStore


def port(kind: str, *, required: bool = True) -> dict[str, Any]:
    return {"type": kind, "description": kind, **({} if required else {"required": False})}


G = {"name": "g", "version": "1", "description": "graph test plugin", "presets": "presets.yaml", "operations": {
    "src": {"description": "makes things", "resource": "cpu",
            "params": {"n": {"type": "integer", "description": "how many", "default": 1, "minimum": 0, "maximum": 5}},
            "outputs": {"rows": port("json"), "text": port("text"), "file": port("path"), "adapter": port("adapter"),
                        "blob": port("any")}},
    "sink": {"description": "takes things", "resource": "cpu",
             "inputs": {"data": port("json"), "file": port("path", required=False),
                        "model": port("model", required=False), "extra": port("any", required=False),
                        "adapter": port("adapter", required=False)},
             "params": {"lr": {"type": "number", "description": "rate", "default": 1},
                        "mode": {"type": "string", "description": "how", "default": "a", "choices": ["a", "b"]},
                        "steps": {"type": "integer", "description": "how long"}},
             "outputs": {"out": port("json")}},
    "tuned": {"description": "has presets", "resource": "cpu",
              "params": {"preset": {"type": "string", "description": "a preset", "default": ""},
                         "lr": {"type": "number", "description": "rate", "default": 0.1},
                         "r": {"type": "integer", "description": "rank", "default": 8}}},
    "strict": {"description": "its preset is required", "resource": "cpu",
               "params": {"preset": {"type": "string", "description": "a preset"},
                          "lr": {"type": "number", "description": "rate", "default": 0.1},
                          "r": {"type": "integer", "description": "rank", "default": 8}}},
    "judge": {"description": "calls other operations", "resource": "cpu", "uses_param": "rewards",
              "params": {"rewards": {"type": "list", "items": "string", "description": "operations", "default": []}}},
    "bare": {"description": "no ports", "resource": "cpu"},
}}
PRESETS = {"presets": {"fast": {"description": "f", "params": {"lr": 1, "r": 16}},
                       "slow": {"description": "s", "params": {"lr": 0.01}},
                       "odd": {"description": "values that do not fit", "params": {"lr": "high", "r": 2.5}}}}
H = {"name": "h", "version": "1", "description": "a plugin without presets", "operations": {
    "tuned": {"description": "has a preset parameter", "resource": "cpu",
              "params": {"preset": {"type": "string", "description": "a preset", "default": ""}}},
    "score": {"description": "a reward", "resource": "cpu"},
}}


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginManager]:
    root = tmp_path_factory.mktemp("graph")
    paths = Paths.from_env(root / "home")
    paths.ensure()
    builtin = root / "builtin"
    builtin.mkdir()
    for manifest in (G, H):
        folder = paths.user_plugins / manifest["name"]
        folder.mkdir(parents=True)
        (folder / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))  # keep the declared order
        ops = list(manifest["operations"])
        (folder / "backend.py").write_text(f"def {ops[0]}(ctx, params, inputs):\n    return {{}}\n\n\n"
                                           + "".join(f"{op} = {ops[0]}\n" for op in ops[1:]))
    (paths.user_plugins / "g" / "presets.yaml").write_text(yaml.safe_dump(PRESETS))
    store = SqliteStore(paths.db)
    manager = PluginManager(store, paths, builtin_dir=builtin)
    anyio.run(manager.scan)
    assert [row.status for row in manager.tables.plugins.all()] == ["loaded", "loaded"]
    yield manager
    store.close()


def refused(raw: Any, plugins: PluginManager, **kw: Any) -> tuple[str, list[tuple[str, str]]]:
    with pytest.raises(ValidationError) as exc:
        parse_graph(raw, plugins, **kw)
    return exc.value.message, [(p["where"], p["message"]) for p in exc.value.problems]


def problems(raw: Any, plugins: PluginManager) -> list[tuple[str, str]]:
    return refused(raw, plugins)[1]


def ref(node: Any, output: Any) -> dict[str, Any]:
    return {"node": node, "output": output}


SINK = {"op": "g.sink", "params": {"steps": 1}}


def sink(**inputs: Any) -> dict[str, Any]:
    return {**SINK, "inputs": inputs}


# -- the graph's shape ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, [], "nodes", {}, {"nodes": {}}, {"nodes": []}, {"nodes": None}])
def test_a_graph_without_nodes_is_refused_naming_what_it_must_be(raw: Any, plugins: PluginManager) -> None:
    assert refused(raw, plugins) == ("invalid workflow graph", [
        ("graph.nodes", "must be a non-empty mapping of node id -> {op, params, inputs}")])
    assert refused(raw, plugins, where="body.graph")[1][0][0] == "body.graph.nodes"


def test_unknown_fields_are_named_at_the_top_and_in_each_node(plugins: PluginManager) -> None:
    raw = {"nodes": {"a": {"op": "g.src", "parms": {}, "title": "A"}}, "name": "n", "description": "d",
           "edges": [], "version": 2}
    message, found = refused(raw, plugins)
    assert message == "the workflow graph has 3 problem(s)"
    assert found == [("graph.edges", "unknown field (known: nodes, description, name)"),
                     ("graph.version", "unknown field (known: nodes, description, name)"),
                     ("nodes.a.parms", "unknown field (known: op, params, inputs, position, title)")]
    assert refused({**raw, "nodes": {"a": {"op": "g.src"}}}, plugins, where="cmd")[1] == [
        ("cmd.edges", "unknown field (known: nodes, description, name)"),
        ("cmd.version", "unknown field (known: nodes, description, name)")]


@pytest.mark.parametrize(("spec", "where", "message"), [
    ("g.src", "nodes.a", "must be a mapping with op, params and inputs"),
    (["g.src"], "nodes.a", "must be a mapping with op, params and inputs"),
    ({}, "nodes.a.op", "must be 'plugin.operation', got None"),
    ({"op": 3}, "nodes.a.op", "must be 'plugin.operation', got 3"),
    ({"op": "src"}, "nodes.a.op", "must be 'plugin.operation', got 'src'"),
    ({"op": "g.src.x"}, "nodes.a.op", "must be 'plugin.operation', got 'g.src.x'"),
    ({"op": "nope.src"}, "nodes.a.op", "unknown operation 'nope.src': no plugin named 'nope' (known plugins: g, h)"),
    ({"op": "g.nope"}, "nodes.a.op",
     "unknown operation 'g.nope': plugin 'g' has no operation 'nope' (its operations: src, sink, tuned, strict, judge, bare)"),
    ({"op": "g.src", "inputs": ["x"]}, "nodes.a.inputs", "must be a mapping of port -> value or {node, output}"),
    ({"op": "g.src", "inputs": "x"}, "nodes.a.inputs", "must be a mapping of port -> value or {node, output}"),
    ({"op": "g.src", "params": "n=2"}, "nodes.a.params", "expected an object, got string"),
    ({"op": "g.src", "params": [["n", 2]]}, "nodes.a.params", "expected an object, got list"),
    ({"op": "g.src", "position": "left"}, "nodes.a.position", "must be [x, y], two numbers, got 'left'"),
    ({"op": "g.src", "position": [1]}, "nodes.a.position", "must be [x, y], two numbers, got [1]"),
    ({"op": "g.src", "position": [1, "2"]}, "nodes.a.position", "must be [x, y], two numbers, got [1, '2']"),
    ({"op": "g.src", "position": [True, 2]}, "nodes.a.position", "must be [x, y], two numbers, got [True, 2]"),
])
def test_a_bad_node_is_refused_at_its_field(spec: Any, where: str, message: str, plugins: PluginManager) -> None:
    assert refused({"nodes": {"a": spec}}, plugins) == ("the workflow graph has 1 problem(s)", [(where, message)])


def test_every_node_s_problems_are_reported_at_once_in_declaration_order(plugins: PluginManager) -> None:
    raw = {"nodes": {"z": {"op": "x"}, "b": {"op": "g.src", "params": {"n": 9}, "inputs": {"q": 1}},
                     3: {"op": "g.bare", "inputs": {"p": 1}}}, "extra": 1}
    assert problems(raw, plugins) == [
        ("graph.extra", "unknown field (known: nodes, description, name)"),
        ("nodes.z.op", "must be 'plugin.operation', got 'x'"),
        ("nodes.b.params.n", "9 is above the maximum 5"),
        ("nodes.b.inputs.q", "unknown input port (known: none)"),
        ("nodes.3.inputs.p", "unknown input port (known: none)")]


def test_parameters_are_checked_with_the_node_s_place(plugins: PluginManager) -> None:
    raw = {"nodes": {"s": {"op": "g.sink", "params": {"lr": "fast", "mode": "c", "speed": 1},
                           "inputs": {"data": {"x": 1}}}}}
    assert problems(raw, plugins) == [
        ("nodes.s.params.speed", "unknown parameter (known: lr, mode, steps)"),
        ("nodes.s.params.lr", "expected number, got string"),
        ("nodes.s.params.mode", "'c' is not one of the choices: 'a', 'b'"),
        ("nodes.s.params.steps", "required integer parameter is missing (how long)")]


# -- edges ---------------------------------------------------------------------------------------


def test_inputs_are_checked_against_the_operation_s_ports(plugins: PluginManager) -> None:
    raw = {"nodes": {"s": sink(dataset=1, file=3, model="", adapter="abc")}}
    assert problems(raw, plugins) == [
        ("nodes.s.inputs.dataset", "unknown input port (known: data, file, model, extra, adapter)"),
        ("nodes.s.inputs.data", "required json input is not connected"),
        ("nodes.s.inputs.file", "a path input is a non-empty string, got integer"),
        ("nodes.s.inputs.model", "a model input is a non-empty string, got string"),
        ("nodes.s.inputs.adapter", "a adapter input is the sha256 of a stored artifact (64 hex digits), got 'abc'")]
    # a null input is an unconnected one: optional ports may stay so
    assert problems({"nodes": {"s": sink(data=None, file=None)}}, plugins) == [
        ("nodes.s.inputs.data", "required json input is not connected")]


def test_literal_inputs_of_the_right_kind_are_kept_as_given(plugins: PluginManager) -> None:
    literal = {"data": {"rows": [1, {"node": "x"}]}, "file": "./f.jsonl", "model": "owner/name", "adapter": "a" * 64,
               "extra": [1, "two"]}
    g = parse_graph({"nodes": {"s": sink(**literal)}}, plugins)
    assert g.nodes["s"].inputs == literal and g.upstream("s") == set()


def test_connections_to_missing_nodes_outputs_and_to_itself_are_refused(plugins: PluginManager) -> None:
    raw = {"nodes": {
        "a": {"op": "g.src"},
        "b": sink(data=ref("b", "out")),
        "c": sink(data=ref("ghost", "rows")),
        "d": sink(data=ref("a", "nope")),
        "e": sink(data=ref("f", "x")),
        "f": {"op": "g.bare"},
        "g": sink(data=ref("broken", "rows")),
        "broken": {"op": "g.missing"},
    }}
    assert problems(raw, plugins) == [
        ("nodes.broken.op", "unknown operation 'g.missing': plugin 'g' has no operation 'missing' "
                            "(its operations: src, sink, tuned, strict, judge, bare)"),
        ("nodes.b.inputs.data", "a node cannot take its own output"),
        ("nodes.c.inputs.data", "connected to unknown node 'ghost'"),
        ("nodes.d.inputs.data", "node 'a' (g.src) has no output 'nope' (outputs: rows, text, file, adapter, blob)"),
        ("nodes.e.inputs.data", "node 'f' (g.bare) has no output 'x' (outputs: none)"),
        # g's edge goes to a node refused above: only that node's own problem is reported
    ]


@pytest.mark.parametrize("bad", [ref(1, "rows"), ref("a", ["rows"]), ref(None, None)])
def test_a_connection_names_its_node_and_output_as_strings(bad: dict[str, Any], plugins: PluginManager) -> None:
    raw = {"nodes": {"b": sink(data=bad), "1": {"op": "g.src"}, "a": {"op": "g.src"}}}
    assert problems(raw, plugins) == [("nodes.b.inputs.data", "a connection names its node and output as strings: "
                                                              f"{{node: <node id>, output: <port>}}, got {bad!r}")]


def test_a_node_id_written_as_a_number_is_connected_by_its_string(plugins: PluginManager) -> None:
    raw = yaml.safe_load("nodes:\n  2: {op: g.sink, params: {steps: 1}, inputs: {data: {node: '1', output: rows}}}\n"
                         "  1: {op: g.src}\n")
    g = parse_graph(raw, plugins)
    assert g.order == ["1", "2"] and g.upstream("2") == {"1"}


def test_port_types_must_fit(plugins: PluginManager) -> None:
    raw = {"nodes": {"a": {"op": "g.src"}, "b": sink(data=ref("a", "text"), file=ref("a", "rows"),
                                                      model=ref("a", "adapter"), adapter=ref("a", "file"))}}
    assert problems(raw, plugins) == [
        ("nodes.b.inputs.data", "port type mismatch: a.text is 'text', b.data takes 'json'"),
        ("nodes.b.inputs.file", "port type mismatch: a.rows is 'json', b.file takes 'path'"),
        ("nodes.b.inputs.model", "port type mismatch: a.adapter is 'adapter', b.model takes 'model'"),
        ("nodes.b.inputs.adapter", "port type mismatch: a.file is 'path', b.adapter takes 'adapter'")]
    fits = {"a": {"op": "g.src"}, "b": sink(data=ref("a", "blob"), file=ref("a", "text"), extra=ref("a", "adapter"),
                                              adapter=ref("a", "adapter"))}
    assert parse_graph({"nodes": fits}, plugins).upstream("b") == {"a"}


def test_which_output_types_feed_which_inputs() -> None:
    fits = [("any", "json"), ("json", "any"), ("any", "any"), ("json", "json"), ("text", "path"), ("path", "path"),
            ("adapter", "adapter")]
    misfits = [("json", "text"), ("path", "text"), ("text", "json"), ("adapter", "path"), ("json", "path"),
               ("model", "adapter")]
    assert [ports_fit(o, i) for o, i in fits] == [True] * len(fits)
    assert [ports_fit(o, i) for o, i in misfits] == [False] * len(misfits)


def test_references_nested_in_a_value_feed_only_an_any_port(plugins: PluginManager) -> None:
    nested = {"weights": [ref("a", "adapter"), 0.5], "more": {"k": ref("c", "rows")}}
    raw = {"nodes": {"a": {"op": "g.src"}, "c": {"op": "g.src"}, "b": sink(data=ref("a", "rows"), extra=nested)}}
    g = parse_graph(raw, plugins)
    assert g.upstream("b") == {"a", "c"} and g.nodes["b"].inputs["extra"] == nested
    wrong = {"nodes": {"a": {"op": "g.src"}, "b": sink(data=[ref("a", "rows")], file={"p": ref("a", "file")},
                                                        extra=[ref("a", "nope"), {"x": ref("ghost", "rows")}])}}
    assert problems(wrong, plugins) == [
        ("nodes.b.inputs.data", "a json input takes one value or one connection, not a list or mapping of them"),
        ("nodes.b.inputs.file", "a path input takes one value or one connection, not a list or mapping of them"),
        ("nodes.b.inputs.extra", "node 'a' (g.src) has no output 'nope' (outputs: rows, text, file, adapter, blob)"),
        ("nodes.b.inputs.extra", "connected to unknown node 'ghost'")]


# -- order and cycles ----------------------------------------------------------------------------


def test_nodes_run_after_what_feeds_them_ties_in_declaration_order(plugins: PluginManager) -> None:
    raw = {"nodes": {
        "d": sink(data=ref("z", "rows"), extra=[ref("m", "blob"), ref("y", "blob")]),
        "x": {"op": "g.bare"},
        "z": {"op": "g.src"},
        "y": {"op": "g.src"},
        "m": {"op": "g.src"},
        "e": sink(data=ref("d", "out"), extra=ref("z", "blob")),
    }}
    g = parse_graph(raw, plugins)
    assert g.order == ["m", "y", "z", "d", "x", "e"]  # d's inputs in name order first, then the rest as declared
    assert g.upstream("e") == {"d", "z"} and g.upstream("x") == set()
    assert g.descendants("z") == {"d", "e"} and g.descendants("m") == {"d", "e"} and g.descendants("e") == set()
    assert g.descendants("x") == set()


def test_a_diamond_runs_each_node_once(plugins: PluginManager) -> None:
    raw = {"nodes": {"top": sink(data=ref("l", "out"), extra=ref("r", "out")),
                     "l": sink(data=ref("root", "rows")), "r": sink(data=ref("root", "rows")), "root": {"op": "g.src"}}}
    g = parse_graph(raw, plugins)
    assert g.order == ["root", "l", "r", "top"]
    assert g.descendants("root") == {"l", "r", "top"} and g.descendants("l") == {"top"}


def test_a_cycle_is_named_from_where_it_was_entered(plugins: PluginManager) -> None:
    raw = {"nodes": {
        "start": sink(data=ref("a", "out")),
        "a": sink(data=ref("b", "out")),
        "b": sink(data=ref("c", "out")),
        "c": sink(data=ref("a", "out")),
    }}
    assert refused(raw, plugins) == ("the workflow graph has 1 problem(s)", [("nodes.a", "cycle: a -> b -> c -> a")])
    two = {"nodes": {"p": sink(data=ref("q", "out")), "q": sink(data=ref("p", "out")), "r": {"op": "g.src"}}}
    assert problems(two, plugins) == [("nodes.p", "cycle: p -> q -> p")]


def test_a_node_fed_by_itself_is_one_problem_not_a_cycle_too(plugins: PluginManager) -> None:
    raw = {"nodes": {"a": {"op": "g.src"}, "b": sink(data=ref("a", "rows"), extra=ref("b", "out"))}}
    assert problems(raw, plugins) == [("nodes.b.inputs.extra", "a node cannot take its own output")]


# -- parameters ----------------------------------------------------------------------------------


def test_parameters_get_their_defaults_and_canonical_numbers(plugins: PluginManager) -> None:
    resolved = plugins.resolve("g", "sink")
    assert resolve_params(resolved, {"steps": 3}, where="p") == {"lr": 1.0, "mode": "a", "steps": 3}
    assert isinstance(resolve_params(resolved, {"steps": 3, "lr": 2}, where="p")["lr"], float)
    with pytest.raises(ValidationError) as exc:
        resolve_params(resolved, {"steps": 1.5, "mode": "b"}, where="at")
    assert exc.value.problems == [{"where": "at.steps", "message": "expected integer, got number"}]


def test_a_preset_sits_between_the_defaults_and_the_values_given(plugins: PluginManager) -> None:
    tuned = plugins.resolve("g", "tuned")
    assert resolve_params(tuned, {}, where="p") == {"preset": "", "lr": 0.1, "r": 8}
    assert resolve_params(tuned, {"preset": "fast"}, where="p") == {"preset": "fast", "lr": 1.0, "r": 16}
    assert resolve_params(tuned, {"preset": "fast", "r": 4}, where="p") == {"preset": "fast", "lr": 1.0, "r": 4}
    assert resolve_params(tuned, {"preset": "slow", "lr": 3}, where="p") == {"preset": "slow", "lr": 3.0, "r": 8}
    assert isinstance(resolve_params(tuned, {"preset": "fast"}, where="p")["lr"], float)  # the preset's 1 checked too
    with pytest.raises(ValidationError) as exc:
        resolve_params(tuned, {"preset": "quick", "r": 2}, where="nodes.t.params")
    assert exc.value.message == "unknown preset 'quick'"
    assert exc.value.problems == [{"where": "nodes.t.params.preset", "message": "unknown preset 'quick' "
                                                                                "(presets: fast, odd, slow)"}]


def test_a_required_preset_parameter_takes_a_preset(plugins: PluginManager) -> None:
    strict = plugins.resolve("g", "strict")
    assert resolve_params(strict, {"preset": "fast"}, where="p") == {"preset": "fast", "lr": 1.0, "r": 16}
    assert resolve_params(strict, {"preset": ""}, where="p") == {"preset": "", "lr": 0.1, "r": 8}
    with pytest.raises(ValidationError) as exc:
        resolve_params(strict, {}, where="p")
    assert exc.value.problems == [{"where": "p.preset", "message": "required string parameter is missing (a preset)"}]


def test_a_preset_value_that_does_not_fit_is_blamed_on_the_preset(plugins: PluginManager) -> None:
    tuned = plugins.resolve("g", "tuned")
    with pytest.raises(ValidationError) as exc:
        resolve_params(tuned, {"preset": "odd"}, where="nodes.t.params")
    assert exc.value.message == "preset 'odd' does not fit the operation"
    fix = "(give the parameter a value, or fix the plugin's presets file)"
    assert exc.value.problems == [
        {"where": "nodes.t.params.lr", "message": f"expected number, got string, set by preset 'odd' {fix}"},
        {"where": "nodes.t.params.r", "message": f"expected integer, got number, set by preset 'odd' {fix}"}]
    assert resolve_params(tuned, {"preset": "odd", "lr": 2, "r": 3}, where="p") == {"preset": "odd", "lr": 2.0, "r": 3}


def test_an_unknown_preset_is_refused_at_its_node_naming_the_presets(plugins: PluginManager) -> None:
    raw = {"nodes": {"t": {"op": "g.tuned", "params": {"preset": "quick"}},
                     "u": {"op": "h.tuned", "params": {"preset": "fast"}},
                     "v": {"op": "g.tuned", "params": {"preset": "odd", "r": 1}}}}
    assert problems(raw, plugins) == [
        ("nodes.t.params.preset", "unknown preset 'quick' (presets: fast, odd, slow)"),
        ("nodes.u.params.preset", "unknown preset 'fast' (presets: none)"),
        ("nodes.v.params.lr", "expected number, got string, set by preset 'odd' (give the parameter a value, or fix "
                              "the plugin's presets file)")]
    g = parse_graph({"nodes": {"t": {"op": "g.tuned", "params": {"preset": "slow", "r": 2}}}}, plugins)
    assert g.nodes["t"].params == {"preset": "slow", "lr": 0.01, "r": 2}


def test_the_operations_a_node_calls_must_be_loaded(plugins: PluginManager) -> None:
    names = ["h.score", "nodot", "a.b.c", ".x", "x.", "nope.x", "h.nope", "g.src"]
    raw = {"nodes": {"j": {"op": "g.judge", "params": {"rewards": names}}}}
    at = "nodes.j.params.rewards"
    assert problems(raw, plugins) == [
        (f"{at}[1]", "'nodot' is not plugin.operation (e.g. rewards.exact_match)"),
        (f"{at}[2]", "'a.b.c' is not plugin.operation (e.g. rewards.exact_match)"),
        (f"{at}[3]", "'.x' is not plugin.operation (e.g. rewards.exact_match)"),
        (f"{at}[4]", "'x.' is not plugin.operation (e.g. rewards.exact_match)"),
        (f"{at}[5]", "no operation 'nope.x': no plugin named 'nope' (known plugins: g, h)"),
        (f"{at}[6]", "no operation 'h.nope': plugin 'h' has no operation 'nope' (its operations: tuned, score)")]
    # names are checked even when another parameter of the node is wrong
    bad = {"nodes": {"j": {"op": "g.judge", "params": {"rewards": ["nodot", 3]}}}}
    assert problems(bad, plugins) == [(f"{at}[1]", "expected string, got integer"),
                                      (f"{at}[0]", "'nodot' is not plugin.operation (e.g. rewards.exact_match)")]
    g = parse_graph({"nodes": {"j": {"op": "g.judge", "params": {"rewards": ["h.score", "g.src"]}},
                               "k": {"op": "g.judge"}}}, plugins)
    j = g.nodes["j"]
    assert used_operations(j.resolved, j.params) == ["h.score", "g.src"]
    assert used_plugins(j, plugins) == {"h": plugins.resolve("h", "score").row.code_hash,
                                        "g": plugins.resolve("g", "src").row.code_hash}
    assert used_plugins(g.nodes["k"], plugins) == {}
    assert used_operations(plugins.resolve("g", "sink"), {"rewards": ["h.score"]}) == []


# -- the recorded spec ---------------------------------------------------------------------------


def test_the_spec_records_resolved_parameters_in_run_order_and_parses_to_itself(plugins: PluginManager) -> None:
    raw = {"name": "demo", "description": "a demo", "nodes": {
        "train": {"op": "g.sink", "title": "Train", "position": [10, 20.5],
                  "params": {"steps": 2, "lr": 3}, "inputs": {"data": ref("prep", "rows"), "file": "./x"}},
        "prep": {"op": "g.src", "params": None, "inputs": None},
    }}
    g = parse_graph(raw, plugins)
    spec = g.spec()
    assert spec == {"description": "a demo", "nodes": {
        "prep": {"op": "g.src", "params": {"n": 1}, "inputs": {}},
        "train": {"op": "g.sink", "params": {"lr": 3.0, "mode": "a", "steps": 2},
                  "inputs": {"data": ref("prep", "rows"), "file": "./x"}, "position": [10, 20.5]}}}
    assert list(spec["nodes"]) == ["prep", "train"] == g.order
    assert g.raw == raw and g.description == "a demo"
    node = g.nodes["train"]
    assert (node.id, node.op, node.plugin, node.operation) == ("train", "g.sink", "g", "sink")
    assert node.resolved.row.name == "g" and node.resolved.op.description == "takes things"
    again = parse_graph(spec, plugins)
    assert again.spec() == spec and again.order == g.order
    assert parse_graph({"nodes": {"a": {"op": "g.bare"}}}, plugins).spec() == {
        "description": "", "nodes": {"a": {"op": "g.bare", "params": {}, "inputs": {}}}}


# -- references ----------------------------------------------------------------------------------


def test_references_are_found_and_replaced_wherever_they_sit() -> None:
    value = {"w": [ref("a", "x"), 2, {"deep": ref("b", "y")}], "lit": {"node": "a"}, "n": 1,
             "three": {"node": "a", "output": "x", "more": 1}}
    assert is_ref(ref("a", "x")) and not is_ref({"node": "a"}) and not is_ref(value["three"]) and not is_ref("a")
    assert refs_in(value) == [ref("a", "x"), ref("b", "y")]
    assert refs_in(ref("c", "z")) == [ref("c", "z")] and refs_in([1, "x"]) == [] and refs_in(5) == []
    seen: list[tuple[str, str]] = []

    def output(node: str, port: str) -> str:
        seen.append((node, port))
        return f"<{node}.{port}>"

    assert substitute(value, output) == {"w": ["<a.x>", 2, {"deep": "<b.y>"}], "lit": {"node": "a"}, "n": 1,
                                         "three": {"node": "a", "output": "x", "more": 1}}
    assert seen == [("a", "x"), ("b", "y")]
    assert substitute(ref("c", "z"), output) == "<c.z>"
    assert substitute([ref("c", "z"), "t"], output) == ["<c.z>", "t"]
    assert substitute("plain", output) == "plain"


def test_an_error_without_a_hint_is_its_message_alone() -> None:
    assert _with_hint(NotFoundError("no plugin named 'x'")) == "no plugin named 'x'"
    assert _with_hint(NotFoundError("no plugin named 'x'", hint="known: a")) == "no plugin named 'x' (known: a)"
