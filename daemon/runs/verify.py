"""Verify a replay against its original, and diff any two runs. Pure: plain dicts in and out.

Both take *run facts* gathered from the log (`daemon/runs/facts.py`):

    {"run": <RunRow as a dict>,
     "nodes": {node: {"curve": {step: loss}, "metrics": {job: last metrics},
                      "provenance": <TrainingStarted as a dict, or None>, "input_types": {port: type}}}}

`a` is the baseline (the original run), `b` the run being checked. A node is `bit-identical`
when its state, every output (artifact hashes included) and its loss curve are exactly equal;
`within-tolerance` when artifacts differ but its loss curve agrees within the tolerance (or
only numeric outputs drift within it); `differs` otherwise. A run gets its worst node's verdict.
"""

from __future__ import annotations

from typing import Any

from tunelog.daemon.runs.compare import (
    Diff,
    Tolerance,
    compare_curves,
    compare_outputs,
    is_sha256,
    key_diffs,
    prefixed,
    worst,
)
from tunelog.daemon.runs.graph import refs_in, substitute

Facts = dict[str, Any]
PROVENANCE_IGNORED = frozenset({"run_id", "job_id", "resumed_from_step"})
"""Provenance fields that name the job rather than what it ran on."""
CONTENT_PATH = "provenance.dataset.content_sha256"
"""Where training provenance records the content hash of the examples it trained on."""
SUCCEEDED = frozenset({"completed", "cached"})
"""Node states that both mean "has its outputs": a cached node's are a completed job's."""
UNRECORDED_PORTS = frozenset({"path", "model"})
"""Port types whose literal value names something read from outside the log (a file, a hub model)."""


def node_spec(facts: Facts, node: str) -> dict[str, Any] | None:
    """What the graph says a node runs: op, params and inputs as written (layout left out)."""
    spec = facts["run"]["graph"]["nodes"].get(node)
    if spec is None:
        return None
    return {"op": spec.get("op"), "params": spec.get("params") or {}, "inputs": spec.get("inputs") or {}}


def resolved_inputs(facts: Facts, node: str) -> dict[str, Any]:
    """A node's input values with each edge replaced by the upstream output it carried."""
    spec, nodes = node_spec(facts, node) or {"inputs": {}}, facts["run"]["nodes"]
    return {p: substitute(v, lambda node, out: nodes.get(node, {}).get("outputs", {}).get(out))
            for p, v in spec["inputs"].items()}


def _provenance(facts: Facts, node: str) -> dict[str, Any]:
    found = facts["nodes"].get(node, {}).get("provenance") or {}
    return {k: v for k, v in found.items() if k not in PROVENANCE_IGNORED}


def node_drift(a: Facts, b: Facts, node: str) -> list[Diff]:
    """Recorded inputs of a node that differ: graph (op, params, inputs), values arriving over
    edges, plugin code, and training provenance (libraries, device, model, data, determinism)."""
    sa, sb = node_spec(a, node) or {}, node_spec(b, node) or {}
    out: list[Diff] = prefixed("graph", key_diffs(sa, sb))
    edges = [p for p, v in sa.get("inputs", {}).items() if refs_in(v) and sb.get("inputs", {}).get(p) == v]
    ra, rb = resolved_inputs(a, node), resolved_inputs(b, node)
    out += prefixed("inputs", key_diffs({p: ra.get(p) for p in edges}, {p: rb.get(p) for p in edges}))
    out += prefixed("code", key_diffs(a["run"]["code"].get(node, {}), b["run"]["code"].get(node, {})))
    out += [_by_content(d) for d in prefixed("provenance", key_diffs(_provenance(a, node), _provenance(b, node)))]
    return out


def _by_content(d: Diff) -> Diff:
    """A change of the trained-on content hash, said as `data changed`; any other difference as is."""
    if d["path"] == CONTENT_PATH and is_sha256(d.get("a")) and is_sha256(d.get("b")):
        return data_changed(d["path"], d["a"], d["b"])
    return d


def unrecorded_sources(a: Facts, b: Facts, node: str) -> list[Diff]:
    """Equal literal inputs naming files or models read outside the log: their content may have changed.
    A model whose identity (weight hashes) both runs' provenance recorded is compared there instead;
    a data file whose content hash a training node recorded is named by that hash (`data changed`)."""
    sa, sb = node_spec(a, node) or {"inputs": {}}, node_spec(b, node) or {"inputs": {}}
    types = b["nodes"].get(node, {}).get("input_types") or a["nodes"].get(node, {}).get("input_types") or {}
    recorded = {"model"} if _provenance(a, node).get("model") and _provenance(b, node).get("model") else set()
    out: list[Diff] = []
    for p, v in sa["inputs"].items():
        if not (types.get(p) in UNRECORDED_PORTS - recorded and isinstance(v, str) and not is_sha256(v)
                and sb["inputs"].get(p) == v):
            continue
        was, now = source_hash(a, node), source_hash(b, node)
        if was and now:
            out += [] if was == now else [data_changed(f"inputs.{p}", was, now)]
        else:
            out.append({"path": f"inputs.{p}", "a": v, "b": v, "recorded": False,
                        "note": f"a {types[p]} read outside the log: its content is not recorded and may have changed"})
    return out


def source_hash(facts: Facts, node: str) -> str | None:
    """The content hash of the source a node's dataset output was prepared from, as recorded by a
    training node that used that dataset (its provenance `dataset.source.sha256`); None if none did."""
    made = {v for v in (facts["run"]["nodes"].get(node) or {}).get("outputs", {}).values() if is_sha256(v)}
    for other in facts["nodes"].values():
        dataset = (other.get("provenance") or {}).get("dataset") or {}
        found = (dataset.get("source") or {}).get("sha256")
        if dataset.get("sha256") in made and isinstance(found, str) and found:
            return found
    return None


def data_changed(path: str, was: str, now: str) -> Diff:
    """A drifted input named by its content hashes."""
    return {"path": path, "a": was, "b": now, "recorded": True, "note": f"data changed: sha {was[:12]} → {now[:12]}"}


def verify_node(a: Facts, b: Facts, node: str, tol: Tolerance) -> dict[str, Any]:
    """The verdict on one node, with the evidence: states, outputs, loss curve and drifted inputs."""
    na, nb = a["run"]["nodes"].get(node), b["run"]["nodes"].get(node)
    if na is None or nb is None:
        missing = a["run"]["run_id"] if na is None else b["run"]["run_id"]
        return {"verdict": "differs", "notes": [f"no node {node!r} in run {missing}"], "drift": [],
                "state": {"a": na and na["state"], "b": nb and nb["state"]}, "outputs": None, "loss": None}
    outputs = compare_outputs(na["outputs"], nb["outputs"], tol)
    curve = compare_curves(_curve(a, node), _curve(b, node), tol)
    drift = node_drift(a, b, node)
    reasons = _reasons(na, nb, outputs, curve)
    if reasons or outputs["artifacts_differ"]:
        drift += unrecorded_sources(a, b, node)
    soft = outputs["artifacts_differ"] or outputs["values_within_tolerance"] or (curve and curve["verdict"] != "bit-identical")
    verdict = "differs" if reasons else "within-tolerance" if soft else "bit-identical"
    return {"verdict": verdict, "state": {"a": na["state"], "b": nb["state"]}, "outputs": outputs, "loss": curve,
            "drift": drift, "notes": reasons or _soft_notes(outputs, curve, tol)}


def _curve(facts: Facts, node: str) -> dict[int, float]:
    return {int(k): float(v) for k, v in (facts["nodes"].get(node, {}).get("curve") or {}).items()}


def _reasons(na: dict[str, Any], nb: dict[str, Any], outputs: dict[str, Any], curve: dict[str, Any] | None) -> list[str]:
    out = []
    if na["state"] != nb["state"] and not {na["state"], nb["state"]} <= SUCCEEDED:
        out.append(f"state {na['state']} vs {nb['state']}")
    if outputs["values_differ"]:
        out.append("outputs differ: " + ", ".join(d["path"] for d in outputs["values_differ"]))
    if curve is not None and curve["verdict"] == "differs":
        out.append(f"loss curves differ (max abs diff {curve['max_abs_diff']}, steps {curve['steps']})")
    if outputs["artifacts_differ"] and curve is None:
        out.append("artifacts differ: " + ", ".join(d["path"] for d in outputs["artifacts_differ"])
                   + " (no loss curve to compare)")
    return out


def _soft_notes(outputs: dict[str, Any], curve: dict[str, Any] | None, tol: Tolerance) -> list[str]:
    out = []
    if outputs["artifacts_differ"]:
        out.append("artifacts differ: " + ", ".join(d["path"] for d in outputs["artifacts_differ"]))
    if curve is not None and curve["verdict"] == "within-tolerance":
        out.append(f"loss curves agree within rtol={tol.rtol}, atol={tol.atol} (max abs diff {curve['max_abs_diff']})")
    if outputs["values_within_tolerance"]:
        out.append("numeric outputs within tolerance: " + ", ".join(d["path"] for d in outputs["values_within_tolerance"]))
    return out


def _order(a: Facts, b: Facts) -> list[str]:
    first = list(a["run"]["order"])
    return first + [n for n in b["run"]["order"] if n not in first]


def verify(a: Facts, b: Facts, tol: Tolerance | None = None) -> dict[str, Any]:
    """Report whether run `b` reproduces run `a`, node by node, and every input that drifted."""
    tol = tol or Tolerance()
    nodes = {n: verify_node(a, b, n, tol) for n in _order(a, b)}
    verdict = worst([r["verdict"] for r in nodes.values()])
    drift = [{"node": n, **d} for n, r in nodes.items() for d in r["drift"]]
    return {"run": b["run"]["run_id"], "baseline": a["run"]["run_id"], "verdict": verdict,
            "tolerance": {**tol.to_dict(), "applies_to": "loss curves and numeric outputs; artifacts by sha256"},
            "summary": _summary(verdict, nodes, drift, tol), "nodes": nodes, "drift": drift}


def _summary(verdict: str, nodes: dict[str, Any], drift: list[Diff], tol: Tolerance) -> str:
    if verdict == "bit-identical":
        return "bit-identical: every artifact hash, output and loss value is equal"
    off = [n for n, r in nodes.items() if r["verdict"] != "bit-identical"]
    text = (f"within tolerance (rtol={tol.rtol}, atol={tol.atol}) but not bit-identical: " if verdict != "differs"
            else "differs: ") + "; ".join(f"{n}: {', '.join(nodes[n]['notes'])}" for n in off)
    if drift:
        text += "; drifted inputs: " + ", ".join(f"{d['node']}.{d['path']}" + _aside(d) for d in drift)
    return text


def _aside(d: Diff) -> str:
    if not d.get("recorded", True):
        return " (not recorded)"
    return f" ({d['note']})" if d.get("note") else ""


def _side(facts: Facts, node: str) -> dict[str, Any] | None:
    row, spec = facts["run"]["nodes"].get(node), node_spec(facts, node)
    if row is None or spec is None:
        return None
    code = facts["run"]["code"].get(node, {})
    return {"op": spec["op"], "params": spec["params"], "inputs": resolved_inputs(facts, node),
            "code_hash": code.get("code_hash"), "version": code.get("version"), "state": row["state"],
            "error": row.get("error", ""), "outputs": row["outputs"],
            "metrics": facts["nodes"].get(node, {}).get("metrics") or {}}


def diff(a: Facts, b: Facts) -> dict[str, Any]:
    """Two runs' inputs and outcomes side by side, with the differences of each node listed."""
    nodes = {}
    for n in _order(a, b):
        sa, sb = _side(a, n), _side(b, n)
        inputs = node_drift(a, b, n) if sa and sb else []
        outcomes = key_diffs({"state": sa["state"], "outputs": sa["outputs"]},
                             {"state": sb["state"], "outputs": sb["outputs"]}) if sa and sb else []
        nodes[n] = {"a": sa, "b": sb, "inputs_differ": inputs, "outcomes_differ": outcomes,
                    "same": bool(sa and sb) and not inputs and not outcomes}
    return {"a": _summary_row(a), "b": _summary_row(b), "nodes": nodes,
            "only_in_a": [n for n in nodes if nodes[n]["b"] is None],
            "only_in_b": [n for n in nodes if nodes[n]["a"] is None],
            "run": key_diffs(_summary_row(a, settings_only=True), _summary_row(b, settings_only=True)),
            "same_inputs": all(not r["inputs_differ"] and r["a"] and r["b"] for r in nodes.values())}


def _summary_row(facts: Facts, *, settings_only: bool = False) -> dict[str, Any]:
    run = facts["run"]
    settings = {k: run.get(k) for k in ("no_cache", "force", "workflow", "workflow_version")}
    if settings_only:
        return settings
    return {"run_id": run["run_id"], "state": run["state"], "label": run.get("label", ""),
            "replay_of": run.get("replay_of"), "forked_from": run.get("forked_from"), **settings}
