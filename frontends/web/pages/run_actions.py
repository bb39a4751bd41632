"""What one can do with a run: cancel, resume, replay (and verify), fork from a checkpoint, diff.

Each action calls what the API calls (`services.runs`, `daemon.reproduce`, `daemon.verify`), so
the UI and `tunectl` record the same events and refuse the same things with the same errors.
"""

from __future__ import annotations

import json
from typing import Any

from reactpy import component, hooks, html

from tunelog.daemon.runs import reproduce
from tunelog.daemon.runs.facts import checkpoints, run_facts
from tunelog.daemon.runs.verify import diff, verify
from tunelog.events.errors import ValidationError
from tunelog.events.run_state import NODE_AGAIN, RunRow
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import (
    act,
    badge,
    button,
    compact,
    field,
    notice_view,
    ok_notice,
    run_link,
    select,
    table,
    text_input,
    use_notice,
)


def change(d: dict[str, Any]) -> str:
    """`path: a -> b` for one difference (`(absent)` where a side lacks the key)."""
    a = compact(d["a"], 60) if "a" in d else "(absent)"
    b = compact(d["b"], 60) if "b" in d else "(absent)"
    return f"{d['path']}: {a} -> {b}" + (f" ({d['note']})" if d.get("note") else "")


def diff_view(result: dict[str, Any]) -> Any:
    """Per node: the same, or the inputs and outcomes that differ."""
    rows = []
    for node, n in result["nodes"].items():
        if n["a"] is None or n["b"] is None:
            what: Any = f"only in {'b' if n['a'] is None else 'a'}"
        elif n["same"]:
            what = "same"
        else:
            what = html.ul([html.li({"key": f"i{i}"}, "input ", change(d)) for i, d in enumerate(n["inputs_differ"])]
                           + [html.li({"key": f"o{i}"}, "outcome ", change(d))
                              for i, d in enumerate(n["outcomes_differ"])])
        rows.append((node, [html.b(node), what]))
    return html.div({"id": "diff"},
                    html.p(f"a = {result['a']['run_id']}, b = {result['b']['run_id']}; inputs ",
                           html.b("the same" if result["same_inputs"] else "differ")),
                    table(("NODE", "DIFFERENCES"), rows))


def verify_view(report: dict[str, Any]) -> Any:
    """Verdict, summary and one row per node."""
    rows = [(node, [html.b(node), badge(r["verdict"]), "; ".join(r.get("notes") or [])])
            for node, r in report["nodes"].items()]
    drift = [html.li({"key": str(i)}, f"{d['node']}.", change(d)) for i, d in enumerate(report.get("drift") or [])]
    return html.section({"className": "panel", "id": "verify"},
                        html.h2("Verify against ", run_link(report["baseline"]), ": ", badge(report["verdict"])),
                        html.p(report["summary"]), table(("NODE", "VERDICT", "NOTES"), rows),
                        html.div(html.h2("Inputs that drifted"), html.ul(drift)) if drift else "")


@component
def VerifyPanel(ui: Ui, run: RunRow) -> Any:
    """For a finished replay: whether it reproduces the run it replays."""
    baseline = ui.services.tables.runs.get(run.replay_of) if run.replay_of else None
    ready = baseline is not None and "running" not in (run.state, baseline.state)
    s = ui.services.store

    def build() -> dict[str, Any] | None:
        return verify(run_facts(s, baseline), run_facts(s, run)) if ready and baseline is not None else None

    report = hooks.use_memo(build, [ready, run.finished_at, baseline.finished_at if baseline else None])
    if report is None:
        return html.p({"className": "muted"}, "The verify report appears when the replay has finished.") \
            if run.replay_of else html.div()
    return verify_view(report)


@component
def ForkForm(ui: Ui, run: RunRow, set_notice: Any) -> Any:
    """Fork: the same graph with one node's parameters changed, from one of its checkpoints."""
    node, set_node = hooks.use_state(run.order[0] if run.order else "")
    step, set_step = hooks.use_state("")
    changes, set_changes = hooks.use_state("{}")
    saved = checkpoints(ui.services.store, ui.node_jobs(run, node)) if node in run.nodes else []
    steps = [("", "latest checkpoint" if saved else "no checkpoint (start over)")]
    steps += [(str(c["step"]), f"step {c['step']}") for c in saved]

    def fork(_: Any) -> None:
        try:
            parsed = json.loads(changes or "{}")
        except ValueError as exc:
            parsed = exc
        if not isinstance(parsed, dict):
            set_notice({"kind": "error", "message": "parameter changes must be a JSON object, e.g. {\"lr\": 0.001}",
                        "problems": [], "hint": ""})
            return
        row = act(lambda: reproduce.fork(ui.services, run.run_id, node=node, step=int(step) if step else None,
                                         changes=parsed), set_notice)
        if row is not None:
            set_notice(ok_notice(f"fork started: run {row.run_id} (open it at /runs/{row.run_id})"))

    return html.div({"className": "row", "id": "fork"},
                    field("fork node", select(node, [(n, n) for n in run.order], set_node, id="fork-node")),
                    field("from", select(step, steps, set_step, id="fork-step")),
                    field("parameter changes (JSON)", text_input(changes, set_changes, id="fork-set", size=36)),
                    button("Fork", fork, id="fork-button"))


@component
def DiffForm(ui: Ui, run: RunRow, set_notice: Any) -> Any:
    """Diff this run with another one."""
    newest = ui.services.tables.runs.select(order="submitted_position", descending=True, limit=101)
    others = [r for r in newest if r.run_id != run.run_id][:100]
    other, set_other = hooks.use_state(run.replay_of or (others[0].run_id if others else ""))
    result, set_result = hooks.use_state(None)

    def run_diff(_: Any) -> None:
        def compute() -> dict[str, Any]:
            if not other:
                raise ValidationError.collect("choose a run to compare with", [("run", "no other run")])
            s = ui.services.store
            return diff(run_facts(s, ui.services.runs.find(other)), run_facts(s, run))

        set_result(act(compute, set_notice))

    return html.div(
        html.div({"className": "row"},
                 field("diff with", select(other, [(r.run_id, f"{r.run_id} {r.label[:40]}") for r in others],
                                           set_other, id="diff-other")),
                 button("Diff", run_diff, id="diff-button")),
        diff_view(result) if result else "")


@component
def RunActions(ui: Ui, run: RunRow) -> Any:
    """Buttons and forms acting on the run, and the notice their outcome leaves."""
    notice, set_notice = use_notice()
    runs = ui.services.runs
    can_resume = run.state != "running" and any(n.state in NODE_AGAIN for n in run.nodes.values())

    def replay(_: Any) -> None:
        row = act(lambda: reproduce.replay(ui.services, run.run_id), set_notice)
        if row is not None:
            set_notice({**ok_notice(f"replay started: run {row.run_id}"), "link": row.run_id})

    actions = [
        button("Cancel", lambda _: act(lambda: runs.cancel(run.run_id), set_notice, ok="cancel requested"),
               id="cancel-button", className="danger", disabled=run.state != "running"),
        button("Resume", lambda _: act(lambda: runs.resume(run.run_id), set_notice, ok="resumed"),
               id="resume-button", disabled=not can_resume),
        button("Replay + verify", replay, id="replay-button", disabled=run.state == "running"),
    ]
    link = (notice or {}).get("link")
    return html.section(
        {"className": "panel", "id": "actions"},
        html.div({"className": "row"}, *actions),
        notice_view(notice),
        html.p("open the replay: ", run_link(link), " (its page shows the verify report when it finishes)") if link else "",
        ForkForm(ui, run, set_notice),
        DiffForm(ui, run, set_notice),
        VerifyPanel(ui, run),
    )
