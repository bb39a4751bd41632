"""Human output of runs, adapters, models, presets and workflows."""

from __future__ import annotations

import shutil
import textwrap
import time
from typing import Any

from tunelog.frontends.cli.render import _fields, compact, failure_lines, short, table, when
from tunelog.frontends.cli.status import duration
from tunelog.frontends.data_counts import data_counts


def sha12(value: Any) -> str:
    """An artifact hash cut to 12 digits (other values unchanged)."""
    return value[:12] if isinstance(value, str) and len(value) == 64 else render_value(value)


def render_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        return "[…]"
    return short(compact(value), 60)


def outputs_text(outputs: dict[str, Any]) -> str:
    """`adapter=758413515a0b metrics={…}`: hashes cut to 12 digits, structured values elided."""
    return " ".join(f"{k}={sha12(v)}" for k, v in outputs.items())


def run_duration(run: dict[str, Any]) -> str:
    return duration((run.get("finished_at") or time.time()) - run["submitted_at"])


def run_title(run: dict[str, Any]) -> str:
    """Label, else the workflow it came from, else its operations."""
    if run.get("label"):
        return str(run["label"])
    if run.get("workflow"):
        return f"{run['workflow']}@{run['workflow_version']}"
    return ", ".join(run["graph"]["nodes"][n]["op"] for n in run["order"])


def runs_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for r in runs:
        done = sum(n["state"] in ("completed", "cached") for n in r["nodes"].values())
        rows.append((r["run_id"], r["state"], f"{done}/{len(r['nodes'])}", when(r["submitted_at"]),
                     run_duration(r), short(run_title(r), 60)))
    return table(("RUN", "STATE", "NODES", "SUBMITTED", "TIME", "WHAT"), rows, empty="(no runs)")


def run_detail(view: dict[str, Any]) -> str:
    """A run: its fields, one line per node, the last metrics of its jobs, and training provenance."""
    run, jobs = view["run"], view.get("jobs") or {}
    out = _fields([
        ("run", run["run_id"]), ("state", run["state"] + (" (cancel requested)" if run.get("cancel_requested")
                                                          and run["state"] == "running" else "")),
        ("label", run.get("label")),
        ("workflow", f"{run['workflow']}@{run['workflow_version']}" if run.get("workflow") else None),
        ("submitted", when(run["submitted_at"])), ("finished", when(run.get("finished_at"))),
        ("time", run_duration(run)), ("replay of", run.get("replay_of")),
        ("forked from", compact(run["forked_from"]) if run.get("forked_from") else None),
        ("no cache", "yes" if run.get("no_cache") else None), ("forced", ", ".join(run.get("force") or [])),
    ])
    rows = []
    for node_id in run["order"]:
        node, spec = run["nodes"][node_id], run["graph"]["nodes"][node_id]
        rows.append((node_id, spec["op"], node["state"], ",".join(node.get("jobs") or []) or node.get("job_id") or "-",
                     outputs_text(node.get("outputs") or {}),
                     short(node.get("error"), 80)))
    out += "\n\n" + table(("NODE", "OPERATION", "STATE", "JOBS", "OUTPUTS", "ERROR"), rows)
    out += "".join(f"\ndata: {line}" for line in data_counts(run["nodes"][n].get("outputs") or {} for n in run["order"]))
    for node_id in run["order"]:
        job = jobs.get(run["nodes"][node_id].get("job_id") or "")
        if job and run["nodes"][node_id]["state"] == "failed" and job.get("state") == "failed":
            out += f"\n\nerror of {node_id} (job {job['job_id']}):\n  {job.get('error')}"
            out += "".join(f"\n  {line}" for line in failure_lines(job))
    for node_id in run["order"]:
        job = jobs.get(run["nodes"][node_id].get("job_id") or "")
        if job and job.get("metrics"):
            values = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in job["metrics"].items())
            out += f"\n\nmetrics of {node_id} (job {job['job_id']}, step {job.get('step')}):\n  {values}"
    for node_id in run["order"]:
        prov = provenance(run, node_id)
        if prov:
            out += f"\n\nprovenance of {node_id}:\n" + "\n".join(f"  {k:<12} {v}" for k, v in prov)
    return out


def provenance(run: dict[str, Any], node_id: str) -> list[tuple[str, str]]:
    """What a training node ran on: from its TrainingStarted record, else from its metrics output."""
    node = run["nodes"][node_id]
    started = next((run["training"][j] for j in reversed(node.get("jobs") or []) if j in (run.get("training") or {})),
                   None)
    if started is not None:
        src, params, libs = started, started.get("params") or {}, started.get("libraries") or {}
        device = started.get("device") or {}
    else:
        src = (node.get("outputs") or {}).get("metrics")
        if not isinstance(src, dict) or "base_model" not in src:
            return []
        params, libs, device = src.get("params") or {}, src.get("versions") or {}, {"kind": src.get("device")}
    model, data = src.get("model") or src.get("base_model") or {}, src.get("dataset") or {}
    weights = model.get("weights_sha256") or model.get("weights") or model.get("artifact")
    lines = [
        ("base model", f"{model.get('ref', '?')}" + (f" (weights {sha12(weights)})" if weights else "")),
        ("dataset", sha12(data.get("sha256") or data.get("artifact") or "?")),
        ("method", f"{params.get('method', '?')} r={params.get('r', '?')} lr={params.get('lr', '?')} "
                   f"steps={params.get('max_steps', '?')} preset={params.get('preset') or '-'}"),
        ("seed", str(src.get("seed", params.get("seed", "?")))),
        ("device", " ".join(str(v) for v in device.values() if v not in (None, ""))),
        ("libraries", " ".join(f"{k} {v}" for k, v in libs.items() if k in ("torch", "transformers", "peft")))]
    if started is not None and started.get("determinism"):
        lines.append(("determinism", " ".join(f"{k}={compact(v)}" for k, v in started["determinism"].items()
                                              if not k.endswith("sha256"))))
    if started is not None and started.get("resumed_from_step") is not None:
        lines.append(("resumed at", f"step {started['resumed_from_step']}"))
    return [(k, v) for k, v in lines if v]


def adapters_table(adapters: list[dict[str, Any]]) -> str:
    rows = []
    for a in adapters:
        parents = " + ".join(f"{_weight(p.get('weight', 1.0))}{sha12(p['sha256'])}" for p in a.get("parents") or [])
        exact = "" if a.get("exact") is None else ("exact" if a["exact"] else "approx")
        rows.append((sha12(a["sha256"]), a["source"], a.get("run_id") or "-", a.get("merge_type") or "-", exact,
                     parents or "-", when(a.get("created_at"))))
    return table(("ADAPTER", "SOURCE", "RUN", "MERGE", "EXACT", "PARENTS", "CREATED"), rows, empty="(no adapters)")


def _weight(w: float) -> str:
    return "" if w == 1 else f"{w:g}×"


def models_table(models: list[dict[str, Any]]) -> str:
    rows = [(m["name"], m["ref"], when(m.get("added_at")), m.get("note") or "") for m in models]
    return table(("NAME", "REF", "ADDED", "NOTE"), rows, empty="(no models; add one with `tunectl models add`)")


def presets_table(presets: dict[str, Any]) -> str:
    rows = [(name, p["params"].get("method", "-"), short(p.get("description"), 90)) for name, p in presets.items()]
    return table(("PRESET", "METHOD", "DESCRIPTION"), rows, empty="(no presets)")


def preset_detail(name: str, preset: dict[str, Any]) -> str:
    about = textwrap.fill(" ".join(str(preset.get("description", "")).split()), 96)
    params = "\n".join(f"  {k:<24} {compact(v)}" for k, v in preset["params"].items())
    return f"{name}\n{about}\n\nparameters (replace the defaults; `--set` replaces these):\n{params}"


def workflows_table(workflows: list[dict[str, Any]]) -> str:
    rows = [(w["name"], w["version"], len((w.get("graph") or {}).get("nodes") or {}), when(w.get("saved_at")),
             short((w.get("graph") or {}).get("description"), 60)) for w in workflows]
    return table(("WORKFLOW", "VERSION", "NODES", "SAVED", "DESCRIPTION"), rows, empty="(no workflows)")


def answers(report: dict[str, dict[str, str]], labels: dict[str, str], *, width: int | None = None) -> str:
    """Each prompt, then the variants' answers side by side when the terminal is wide enough, else
    one below the other. `labels` maps report names to what to print (e.g. short adapter hashes)."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    blocks = []
    for prompt, by_name in report.items():
        names = list(by_name)
        col = (width - 3 * (len(names) - 1)) // max(1, len(names))
        head = f"prompt: {prompt}"
        if col >= 28 and len(names) > 1:
            cells = [[labels.get(n, n), "-" * min(col, len(labels.get(n, n)))] + _wrap(by_name[n], col)
                     for n in names]
            rows = max(len(c) for c in cells)
            lines = [" | ".join((c[i] if i < len(c) else "").ljust(col) for c in cells).rstrip() for i in range(rows)]
            blocks.append(head + "\n" + "\n".join(lines))
        else:
            parts = [f"[{labels.get(n, n)}]\n" + "\n".join("  " + line for line in _wrap(by_name[n], max(20, width - 2)))
                     for n in names]
            blocks.append(head + "\n" + "\n".join(parts))
    return "\n\n".join(blocks)


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` characters; the answer's own line breaks kept, control characters shown as �."""
    clean = "".join(ch if ch.isprintable() or ch == "\n" else "\ufffd" for ch in text.replace("\t", "    ")).strip()
    return [w for line in clean.splitlines() for w in (textwrap.wrap(line, width) or [""])] or [""]
