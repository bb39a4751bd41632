"""The merge form: choose adapters and weights, a method and a density; it submits an
`adapter_merge.combine` run (the same graph `tunectl merge` builds) and shows the new adapter."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from reactpy import component, hooks, html

from tunelog.events.errors import ValidationError
from tunelog.events.run_state import AdapterRow, RunRow
from tunelog.frontends.web.pages.job_failure import failure_view
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import (
    act,
    badge,
    button,
    field,
    notice_view,
    run_link,
    select,
    short,
    text_input,
    use_notice,
)

METHODS = ("cat", "linear", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd",
           "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd")
"""adapter_merge.combine's `combination_type` choices."""
DENSITY_METHODS = ("ties", "dare", "magnitude_prune")
METHOD_HINT = ("Only `cat` is the exact weighted sum of the adapters' updates (its rank is the sum of the "
               "ranks). linear, ties, dare and magnitude_prune mix the A and B factors separately (not the sum "
               "of the updates) and need equal ranks; the svd types are rank-truncated approximations.")


def adapter_picker(adapters: list[AdapterRow], chosen: dict[str, str], set_chosen: Callable[[Any], None], *,
                   weights: bool, prefix: str) -> Any:
    """A checkbox per adapter (and a weight box for the chosen ones when `weights`)."""
    def toggle(sha: str) -> None:
        set_chosen(lambda c: {k: v for k, v in c.items() if k != sha} if sha in c else {**c, sha: "1"})

    def on_toggle(sha: str, event: Any) -> None:
        toggle(sha)

    def weigh(sha: str, value: str) -> None:
        set_chosen(lambda c: {**c, sha: value})

    rows = []
    for i, a in enumerate(adapters):
        box = html.input({"type": "checkbox", "checked": a.sha256 in chosen, "id": f"{prefix}-pick-{i}",
                          "data-sha": a.sha256, "onChange": functools.partial(on_toggle, a.sha256)})
        weight = text_input(chosen[a.sha256], functools.partial(weigh, a.sha256), size=5,
                            id=f"{prefix}-weight-{i}") if weights and a.sha256 in chosen else ""
        what = f"{a.merge_type} merge" if a.source == "merge" else f"run {a.run_id} / {a.node}"
        rows.append(html.div({"key": a.sha256, "className": "row"},
                             html.label(box, " ", html.span({"className": "mono"}, short(a.sha256)), f"  {what}"),
                             weight))
    return html.div({"className": "picker"}, rows or html.p({"className": "muted"}, "no adapters yet"))


def run_outcome(ui: Ui, run_id: str | None) -> tuple[RunRow | None, Any]:
    """The row of a run this form started, and a one-line view of where it stands."""
    if not run_id:
        return None, ""
    row = ui.services.store.get("runs", run_id)
    if row is None:
        return None, ""
    jobs = {n: ui.services.store.get("jobs", node.job_id) if node.state == "failed" and node.job_id else None
            for n, node in row.nodes.items()}
    failed = [failure_view(job, node=n) for n, job in jobs.items() if job is not None and job.state == "failed"]
    errors = [f"{n}: {node.error}" for n, node in row.nodes.items() if node.error and jobs.get(n) is None]
    return row, html.div({"className": "run-outcome", "data-state": row.state},
                         html.p("run ", run_link(run_id), " ", badge(row.state),
                                html.span({"className": "error-text"}, "  " + "; ".join(errors))), *failed)


def merge_graph(model: str, chosen: dict[str, str], *, method: str, density: str) -> dict[str, Any]:
    """The combine graph, or a ValidationError naming every bad field."""
    problems, pairs = [], []
    for sha, raw in chosen.items():
        try:
            pairs.append({"sha256": sha, "weight": float(raw)})
        except ValueError:
            problems.append((f"weight of {sha[:12]}", f"must be a number, got {raw!r}"))
    if not chosen:
        problems.append(("adapters", "choose the adapters to merge"))
    if not model:
        problems.append(("model", "the base model the adapters were trained on"))
    params: dict[str, Any] = {"combination_type": method}
    if any(method.startswith(m) for m in DENSITY_METHODS):
        try:
            params["density"] = float(density)
        except ValueError:
            problems.append(("density", f"must be a number between 0 and 1, got {density!r}"))
    if problems:
        raise ValidationError.collect("cannot merge", problems)
    return {"description": f"combine {len(pairs)} adapters ({method})",
            "nodes": {"merge": {"op": "adapter_merge.combine", "params": params,
                                "inputs": {"model": model, "adapters": pairs}}}}


@component
def MergeForm(ui: Ui, adapters: list[AdapterRow]) -> Any:
    """Merge adapters into a new one; shows the run and, once it succeeded, the new adapter."""
    chosen, set_chosen = hooks.use_state(cast(dict[str, str], {}))
    method, set_method = hooks.use_state("cat")
    density, set_density = hooks.use_state("0.5")
    model, set_model = hooks.use_state("")
    run_id, set_run_id = hooks.use_state(None)
    notice, set_notice = use_notice()
    by_sha = {a.sha256: a for a in adapters}
    default_model = next((ui.adapter_base(by_sha[s]) for s in chosen if s in by_sha), "")

    def submit(_: Any) -> None:
        graph = act(lambda: merge_graph(model or default_model, chosen, method=method, density=density), set_notice)
        row = act(lambda: ui.services.runs.submit(graph, label=graph["description"]), set_notice) if graph else None
        if row is not None:
            set_run_id(row.run_id)

    row, outcome = run_outcome(ui, run_id)
    made = row.nodes["merge"].outputs.get("adapter") if row is not None and row.state == "succeeded" else None
    return html.section(
        {"className": "panel", "id": "merge"},
        html.h2("Merge adapters"),
        adapter_picker(adapters, chosen, set_chosen, weights=True, prefix="merge"),
        html.div({"className": "row"},
                 field("method", select(method, [(m, m) for m in METHODS], set_method, id="merge-method")),
                 field("density", text_input(density, set_density, size=5, id="merge-density"),
                       hint="ties, dare, magnitude_prune only"),
                 field("base model", text_input(model, set_model, id="merge-model", size=48,
                                                placeholder=default_model or "folder, hub id or registered name")),
                 button("Merge", submit, id="merge-button")),
        html.small({"className": "muted"}, METHOD_HINT),
        notice_view(notice), outcome,
        html.p({"id": "merge-result", "data-sha": made}, "new adapter ",
               html.a({"href": f"#{made}", "className": "mono"}, short(made))) if made else "",
    )
