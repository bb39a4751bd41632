"""Form parts shared by the pages that start runs (playground, plugin pages): picking adapters,
and where the run a form started stands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from reactpy import html

from tunelog.events.run_state import AdapterRow, RunRow
from tunelog.events.state import JobRow
from tunelog.frontends.web.pages.job_failure import failure_view
from tunelog.frontends.web.widgets import badge, run_link, short, text_input


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


def run_outcome(row: RunRow | None, job: Callable[[str], JobRow | None]) -> Any:
    """A one-line view of where a run a form started stands, with each failed job's whole error."""
    if row is None:
        return ""
    run_id = row.run_id
    jobs = {n: job(node.job_id) if node.state == "failed" and node.job_id else None for n, node in row.nodes.items()}
    failed = [failure_view(job, node=n) for n, job in jobs.items() if job is not None and job.state == "failed"]
    errors = [f"{n}: {node.error}" for n, node in row.nodes.items() if node.error and jobs.get(n) is None]
    return html.div({"className": "run-outcome", "data-state": row.state},
                         html.p("run ", run_link(run_id), " ", badge(row.state),
                                html.span({"className": "error-text"}, "  " + "; ".join(errors))), *failed)
