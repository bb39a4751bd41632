"""Human output: aligned plain-text tables and detail views of jobs, plugins and events."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from tunelog.events.jobs import progress_note
from tunelog.frontends.cli.status import duration

TERMINAL_STATES = ("succeeded", "failed", "cancelled", "interrupted")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str = "(none)") -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    if not rows:
        return empty
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        padded = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)]
        lines.append("  ".join([*padded, r[-1]]).rstrip())
    return "\n".join(lines)


def when(t: float | None) -> str:
    """Local date and time of a Unix timestamp, or `-`."""
    return "-" if not t else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def short(text: Any, width: int = 60) -> str:
    """First line of `text`, cut to `width` characters."""
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def compact(value: Any) -> str:
    """A value as compact JSON (strings unquoted)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


def progress(job: dict[str, Any]) -> str:
    """`5/10 (50%)`, `5` or `-`."""
    step, total = job.get("step") or 0, job.get("total")
    if total:
        return f"{step}/{total} ({100 * step // total}%)"
    return str(step) if step else "-"


SHOWN_PROBLEMS = 20
"""Problems of a failed job shown as text; `--json` has them all."""


def failure_lines(job: dict[str, Any], *, limit: int = SHOWN_PROBLEMS) -> list[str]:
    """What a failed job's error says beyond its one-line summary: the rest of its message, its hint,
    and its problems (the first `limit`, then how many more), which a hint such as "fix the rows
    named below" refers to."""
    message = str(job.get("error_message") or "").strip().splitlines()
    lines = [f"  {line}" for line in message[1:]]
    if job.get("hint"):
        lines.append(f"Hint: {job['hint']}")
    problems = job.get("problems") or []
    lines += [f"  - {problem_text(p)}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  … and {len(problems) - limit} more (see --json)")
    return lines


def problem_text(problem: dict[str, Any]) -> str:
    """`row 3: field 'response' is missing`, or its fields as `key=value` when it has no `where`/`message`."""
    if "where" in problem or "message" in problem:
        where, message = str(problem.get("where") or ""), str(problem.get("message") or "")
        rest = " ".join(f"{k}={compact(v)}" for k, v in problem.items() if k not in ("where", "message"))
        return ": ".join(p for p in (where, " ".join(x for x in (message, rest) if x)) if p)
    return " ".join(f"{k}={compact(v)}" for k, v in problem.items())


def job_duration(job: dict[str, Any]) -> str:
    started = job.get("started_at")
    if not started:
        return "-"
    return duration((job.get("ended_at") or time.time()) - started)


def jobs_table(jobs: list[dict[str, Any]]) -> str:
    rows = [(j["job_id"], f"{j['plugin']}.{j['operation']}", j["state"], progress(j), when(j.get("queued_at")),
             job_duration(j)) for j in jobs]
    return table(("JOB", "OPERATION", "STATE", "PROGRESS", "QUEUED", "TIME"), rows, empty="(no jobs)")


def job_detail(job: dict[str, Any]) -> str:
    """State, progress, metrics, outputs, and for a failed job its error and last log lines."""
    state = job["state"] + (" (cancel requested)" if job.get("cancel_requested") and
                            job["state"] not in TERMINAL_STATES else "")
    if job.get("slot") and job["state"] == "running":
        state += f" on {job['slot']} (pid {job.get('pid')})"
    fields: list[tuple[str, Any]] = [
        ("job", job["job_id"]),
        ("operation", f"{job['plugin']}.{job['operation']} (plugin {job.get('plugin_version') or '?'}, "
                      f"code {str(job.get('code_hash', ''))[:12]})"),
        ("state", state),
        ("progress", progress(job) + (f"  {progress_note(job['message'])}" if job.get("message") else "")),
        ("queued", when(job.get("queued_at"))),
        ("started", when(job.get("started_at"))),
        ("ended", when(job.get("ended_at"))),
        ("time", job_duration(job)),
        ("resource", job.get("resource")),
        ("resume of", job.get("resume_of")),
        ("params", compact(job.get("params") or {})),
        ("inputs", compact(job.get("inputs") or {})),
        ("metrics", "  ".join(f"{k}={_num(v)}" for k, v in (job.get("metrics") or {}).items())),
        ("outputs", compact(job["outputs"]) if job.get("outputs") else None),
        ("artifacts", "  ".join(f"{k}={v[:12]}" for k, v in (job.get("artifacts") or {}).items())),
        ("checkpoint", f"step {job['checkpoint_step']} ({str(job.get('checkpoint_sha256'))[:12]})"
                       if job.get("checkpoint_step") is not None else None),
        ("log", job.get("log_path")),
        ("error", (job.get("error") or "") + (f" (cause: {job['cause']})" if job.get("cause") else "")),
    ]
    out = _fields(fields)
    if job["state"] == "failed":
        out += "".join(f"\n{line}" for line in failure_lines(job))
    if job["state"] == "failed" and job.get("last_lines"):
        out += "\nlast lines:\n" + "\n".join(f"  {line}" for line in job["last_lines"])
    return out


def plugins_table(plugins: list[dict[str, Any]]) -> str:
    rows = [(p["name"], p.get("version") or "-", p["status"], p.get("source", ""), (p.get("code_hash") or "-")[:12],
             short(p.get("error"), 60) if p["status"] == "failed" else "") for p in plugins]
    return table(("NAME", "VERSION", "STATUS", "SOURCE", "CODE", "ERROR"), rows, empty="(no plugins)")


def plugin_detail(p: dict[str, Any]) -> str:
    """A plugin, its operations with their ports and parameters, and why it failed if it did."""
    manifest = p.get("manifest") or {}
    out = _fields([
        ("plugin", p["name"]), ("version", p.get("version") or "-"), ("status", p["status"]),
        ("source", p.get("source")), ("path", p.get("path")), ("code hash", p.get("code_hash") or "-"),
        ("failed hash", p.get("failed_hash")), ("loads", p.get("loads")), ("updated", when(p.get("updated_at"))),
        ("about", manifest.get("description")),
    ])
    for name, op in (manifest.get("operations") or {}).items():
        out += f"\n\n{p['name']}.{name}  [{op.get('resource', 'any')}]  {op.get('description', '')}"
        for kind in ("inputs", "outputs"):
            for port, spec in (op.get(kind) or {}).items():
                opt = "" if spec.get("required", True) or kind == "outputs" else " (optional)"
                out += f"\n  {kind[:-1]:<7} {port}: {spec.get('type')}{opt}  {spec.get('description', '')}"
        for param, spec in (op.get("params") or {}).items():
            default = f" = {compact(spec['default'])}" if "default" in spec else " (required)"
            out += f"\n  param   {param}: {spec.get('type')}{default}  {spec.get('description', '')}"
    if p["status"] == "failed":
        out += f"\n\nError: {p.get('error', '')}"
        out += "".join(f"\n  - {q.get('where', '')}: {q.get('message', '')}" for q in p.get("problems") or [])
        if p.get("traceback"):
            out += "\n" + p["traceback"].rstrip()
    return out


def event_line(env: dict[str, Any]) -> str:
    """One log event on one line: position, time, stream, type, payload fields."""
    payload = {k: v for k, v in (env.get("event") or {}).items() if k != "type" and v not in (None, "", [], {})}
    summary = short(" ".join(f"{k}={short(compact(v), 48)}" for k, v in payload.items()), 160)
    return f"{env['position']:>6}  {when(env.get('time'))}  {env.get('stream', ''):<24}  {env.get('type', ''):<22}  {summary}"


def _fields(fields: list[tuple[str, Any]]) -> str:
    shown = [(k, v) for k, v in fields if v not in (None, "", "-", {}) or k in ("state", "progress")]
    width = max(len(k) for k, _ in shown)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in shown)


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
