"""Human output of verify reports, run diffs, lineage trees and past state."""

from __future__ import annotations

from typing import Any

from tunelog.frontends.cli import render, render_runs
from tunelog.frontends.cli.render import short, table, when


def value(v: Any) -> str:
    """A compared value: hashes cut to 12 digits, the rest compact and short."""
    if isinstance(v, str) and len(v) == 64:
        return v[:12]
    return short(render.compact(v), 60)


def change(d: dict[str, Any]) -> str:
    """`path: a -> b` for one difference (`(absent)` on the side that lacks the key)."""
    a = value(d["a"]) if "a" in d else "(absent)"
    b = value(d["b"]) if "b" in d else "(absent)"
    note = f"  ({d['note']})" if d.get("note") else ""
    return f"{d['path']}: {a} -> {b}{note}"


def verify_report(report: dict[str, Any]) -> str:
    """Verdict, summary, tolerance, one line per node, and every input that drifted."""
    tol = report["tolerance"]
    out = [f"run {report['run']} against {report['baseline']}: {report['verdict']}",
           f"  {report['summary']}",
           f"tolerance: rtol={tol['rtol']} atol={tol['atol']} ({tol.get('applies_to', '')})", ""]
    rows = []
    for node, r in report["nodes"].items():
        rows.append((node, r["verdict"], _curve(r.get("loss")), _artifacts(r.get("outputs")),
                     short("; ".join(r.get("notes") or []), 80)))
    out.append(table(("NODE", "VERDICT", "LOSS CURVE", "ARTIFACTS", "NOTES"), rows))
    if report.get("drift"):
        out += ["", "inputs that drifted:"] + [f"  - {d['node']}.{change(d)}" for d in report["drift"]]
    return "\n".join(out)


def _curve(loss: dict[str, Any] | None) -> str:
    if not loss:
        return "-"
    gap = loss.get("max_abs_diff")
    return f"{loss['verdict']}, {loss['steps']['compared']} steps" + (f", max diff {gap:.3g}" if gap else "")


def _artifacts(outputs: dict[str, Any] | None) -> str:
    if not outputs:
        return "-"
    equal = outputs.get("artifacts_equal") or []
    differ = [d["path"] for d in outputs.get("artifacts_differ") or []]
    return ", ".join([*(f"{p} equal" for p in equal), *(f"{p} differs" for p in differ)]) or "-"


def diff_report(diff: dict[str, Any]) -> str:
    """Both runs, then per node: same, or the inputs and outcomes that differ."""
    out = [f"{side}  {r['run_id']}  {r['state']}  {r.get('label') or ''}".rstrip() for side, r in
           (("a", diff["a"]), ("b", diff["b"]))]
    out.append("inputs: " + ("the same" if diff["same_inputs"] else "differ"))
    out += [f"  run {change(d)}" for d in diff.get("run") or []]
    for node, n in diff["nodes"].items():
        if n["a"] is None or n["b"] is None:
            out.append(f"node {node}: only in {'b' if n['a'] is None else 'a'}")
        elif n["same"]:
            out.append(f"node {node}: same")
        else:
            out.append(f"node {node}:")
            out += [f"  input    {change(d)}" for d in n["inputs_differ"]]
            out += [f"  outcome  {change(d)}" for d in n["outcomes_differ"]]
    return "\n".join(out)


def lineage_tree(tree: dict[str, Any]) -> str:
    """The lineage as an indented tree; the run asked about is marked with `*`."""
    lines: list[str] = []

    def walk(e: dict[str, Any], lead: str, tail: str) -> None:
        lines.append(lead + _entry(e))
        kids = e.get("children") or []
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            walk(kid, tail + ("└── " if last else "├── "), tail + ("    " if last else "│   "))

    walk(tree, "", "")
    return "\n".join(lines)


def _entry(e: dict[str, Any]) -> str:
    kind = e["kind"]
    ident = e["id"][:12] if kind in ("adapter", "model") else e["id"].rsplit(":", 1)[-1] if kind in ("resume", "merge") \
        else e["id"]
    text = f"{e['kind']} {ident} ({e['relation']})"
    if e.get("state"):
        text += f" {e['state']}"
    if e.get("label"):
        text += f"  {short(e['label'], 70)}"
    return ("* " if e.get("focus") else "") + text


def state_report(state: dict[str, Any]) -> str:
    """The projections at a past position: a section per table."""
    out = [f"state after event {state['at']} of {state['head']} ({when(state.get('time'))})"]
    tables = state["tables"]
    shown = {
        "runs": lambda rows: render_runs.runs_table(rows) + "\n" + node_states(rows),
        "jobs": lambda rows: render.jobs_table(rows),
        "plugins": lambda rows: render.plugins_table(rows),
        "adapters": lambda rows: render_runs.adapters_table(rows),
        "models": lambda rows: render_runs.models_table(rows),
        "workflows": lambda rows: render_runs.workflows_table(rows),
    }
    for name, rows in tables.items():
        out.append(f"\n{name} ({len(rows)})")
        rows = [_as_of(r, state.get("time")) for r in rows]
        if name in shown and rows:
            out.append(shown[name](rows))
        elif name == "daemon" and rows:
            out.append("  " + "  ".join(f"{k}={when(v) if k.endswith('_at') else value(v)}"
                                        for k, v in rows[-1].items() if k != "key"))
    return "\n".join(out)


def node_states(runs: list[dict[str, Any]]) -> str:
    """Each run's nodes with their states: `r1a2...  data=completed train=running`."""
    return "\n".join(f"  {r['run_id']}  " + " ".join(f"{n}={r['nodes'][n]['state']}" for n in r["order"])
                     for r in runs)


def _as_of(row: dict[str, Any], t: float | None) -> dict[str, Any]:
    """A row whose run time is counted up to the past moment shown, not up to now."""
    if t is None:
        return row
    if "finished_at" in row and "submitted_at" in row and not row["finished_at"]:
        return {**row, "finished_at": t}
    if "ended_at" in row and row.get("started_at") and not row["ended_at"]:
        return {**row, "ended_at": t}
    return row
