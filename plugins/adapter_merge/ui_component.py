"""The adapter_merge plugin's page (`component(api)`, api: `tunelog.plugins.api.UiApi`): choose
adapters and weights, a method (each labelled exact or approximate) and a density; it submits an
`adapter_merge.combine` run through the daemon's checked submit (the same graph `tunectl merge`
builds) and shows the new adapter, or the whole reason the merge failed."""

from __future__ import annotations

from typing import Any

from reactpy import component as reactpy_component
from reactpy import html

from tunelog.events.errors import ValidationError
from tunelog.events.merges import EXACT_COMBINATIONS

METHODS = ("cat", "linear", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd",
           "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd")
"""adapter_merge.combine's `combination_type` choices."""
TITLE = "Merge"
NAV_ORDER = 30
DENSITY_METHODS = ("ties", "dare", "magnitude_prune")
METHOD_HINT = ("Only `cat` is the exact weighted sum of the adapters' updates (its rank is the sum of the "
               "ranks). linear, ties, dare and magnitude_prune mix the A and B factors separately (not the sum "
               "of the updates) and need equal ranks; the svd types are rank-truncated approximations.")


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


def method_label(method: str) -> str:
    """`cat (exact)`, `linear (approximate)`...: exact means the weighted sum of the updates (with a
    float32 base; a single adapter is always applied with linear, exactly)."""
    return f"{method} ({'exact' if method in EXACT_COMBINATIONS else 'approximate'})"


def component(api: Any) -> Any:
    """The plugin's page in the web UI."""
    return MergeForm(api)


@reactpy_component
def MergeForm(api: Any) -> Any:
    """Merge adapters into a new one; shows the run and, once it succeeded, the new adapter (or why not)."""
    api.use_log_head()
    k = api.kit
    adapters = api.adapters()
    chosen, set_chosen = api.use_form("chosen", {})
    method, set_method = api.use_form("method", "cat")
    density, set_density = api.use_form("density", "0.5")
    model, set_model = api.use_form("model", "")
    run_id, set_run_id = api.use_form("run_id", None)
    notice, set_notice = k.use_notice()
    default_model = next((api.adapter_base(s) for s in chosen), "")

    async def submit(_: Any) -> None:
        graph = k.act(lambda: merge_graph(model or default_model, chosen, method=method, density=density), set_notice)
        done = await k.act_async(lambda: api.submit(graph, label=graph["description"]), set_notice) if graph else None
        if done is not None:
            set_run_id(done[0])
            set_notice(k.warnings_notice(done[1], "merge started, with warnings"))

    row = api.run(run_id) if run_id else None
    made = row.nodes["merge"].outputs.get("adapter") if row is not None and row.state == "succeeded" else None
    return html.section(
        {"className": "panel", "id": "merge"},
        html.h2("Merge adapters"),
        k.adapter_picker(adapters, chosen, set_chosen, weights=True, prefix="merge"),
        html.div({"className": "row"},
                 k.field("method", k.select(method, [(m, method_label(m)) for m in METHODS], set_method,
                                        id="merge-method")),
                 k.field("density", k.text_input(density, set_density, size=5, id="merge-density"),
                       hint="ties, dare, magnitude_prune only"),
                 k.field("base model", k.text_input(model, set_model, id="merge-model", size=48,
                                                placeholder=default_model or "folder, hub id or registered name")),
                 k.button("Merge", submit, id="merge-button")),
        html.small({"className": "muted", "id": "merge-exactness"},
                   f"{method_label(method)}: " + METHOD_HINT),
        k.notice_view(notice), k.run_outcome(row, api.job),
        html.p({"id": "merge-result", "data-sha": made}, "new adapter ",
               html.a({"href": f"/adapters#{made}", "className": "mono"}, k.short(made)), " · ",
               k.link(f"/plugin-pages/export?adapter={made}", "Export it", id="merge-export")) if made else "",
    )
