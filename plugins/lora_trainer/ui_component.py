"""The lora_trainer plugin's page (`component(api)`, api: `tunelog.plugins.api.UiApi`): choose a
model (registered, a local folder or a .gguf file), the data, a preset (its values shown), the
method, the stage when the manifest has one, and any parameter of `lora_trainer.train`'s schema;
every change is checked at once by the daemon's own parameter validation (presets applied), with
an estimate of the optimizer steps and the memory the settings take (`estimate`), and Start submits the two-node graph `tunectl train` submits (datasets.prepare -> lora_trainer.train)
through the checked submit, then opens the run page.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from reactpy import component as reactpy_component
from reactpy import html

from .estimate import estimate, human

TITLE = "Train"
NAV_ORDER = 20
OP = "lora_trainer.train"
PROMINENT = ("preset", "method", "stage")
"""Parameters with their own control above the rest."""


def train_graph(*, model: str, data: str, params: dict[str, Any], data_params: dict[str, Any],
                description: str = "") -> dict[str, Any]:
    """The graph `tunectl train` runs: `data` (datasets.prepare) feeding `train` (lora_trainer.train)."""
    return {"description": description, "nodes": {
        "data": {"op": "datasets.prepare", "inputs": {"source": data}, "params": data_params},
        "train": {"op": OP, "params": params,
                  "inputs": {"model": model, "dataset": {"node": "data", "output": "dataset"}}},
    }}


def parse_value(raw: str) -> Any:
    """As `tunectl train --set`: JSON when it parses (`2`, `true`, `[1,2]`), else the string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def form_params(typed: dict[str, str], choices: dict[str, str]) -> dict[str, Any]:
    """The train parameters the form sets (empty fields leave the preset's or the default value)."""
    out: dict[str, Any] = {k: v for k, v in choices.items() if v}
    out.update({k: parse_value(v) for k, v in typed.items() if v.strip()})
    return out


def data_params(query: dict[str, str]) -> dict[str, Any]:
    """datasets.prepare's parameters as the Data page handed them over (format, columns)."""
    out: dict[str, Any] = {"format": query.get("format") or "auto"}
    if query.get("columns"):
        try:
            out["columns"] = json.loads(query["columns"])
        except ValueError:
            out["columns"] = query["columns"]  # refused by the check, naming the parameter
    return out


def param_field(k: Any, name: str, spec: Any, value: str, on_value: Any, problem: str, placeholder: str) -> Any:
    control = (k.select(value, [("", f"(default: {placeholder})")] + [(str(c), str(c)) for c in spec.choices],
                      on_value, id=f"train-param-{name}")
               if spec.choices else k.text_input(value, on_value, id=f"train-param-{name}", size=14,
                                               placeholder=placeholder))
    return html.div({"key": name, "title": spec.description},
                    k.field(name, control, hint=spec.description[:90]),
                    html.div({"className": "field-problem", "id": f"train-problem-{name}"}, problem) if problem else "")


def estimate_view(model: str, params: dict[str, Any], rows: int | None) -> Any:
    """Steps and a rough memory estimate for these settings (see `estimate`)."""
    e = estimate(model, params, rows=rows)
    parts = [f"{e['steps']:,} optimizer steps" if e["steps"] else "steps unknown"]
    if e["parameters"]:
        parts.append(f"{e['parameters']:,} parameters, {e['trained']:,} trained")
    memory = e["memory"]
    detail = " + ".join(f"{k} {human(v)}" for k, v in memory.items()) if memory else ""
    return html.div({"id": "train-estimate", "data-steps": e["steps"] or "",
                     "data-memory": sum(memory.values()) if memory else ""},
                    html.b("Estimate: "), " · ".join(parts),
                    html.span(f" · memory ~{human(sum(memory.values()))} ({detail}; a rough order, allocator and "
                              "kernels come on top)") if memory else "",
                    html.small({"className": "muted"}, " " + "; ".join(e["notes"])) if e["notes"] else "")


def rows_handed(query: dict[str, str]) -> int | None:
    """The number of rows the Data page says prepare will use (None when not handed over)."""
    raw = query.get("rows", "")
    return int(raw) if raw.isdigit() else None


def component(api: Any) -> Any:
    """The plugin's page in the web UI."""
    return TrainPage(api)


@reactpy_component
def TrainPage(api: Any) -> Any:
    api.use_log_head()
    k = api.kit
    op = api.manifest.operations["train"]
    model, set_model = api.use_form("model", api.query.get("model", ""))
    data, set_data = api.use_form("data", api.query.get("data", ""))
    chosen, set_chosen = api.use_form("chosen", {})
    typed, set_typed = api.use_form("typed", {k: api.query[k] for k in ("max_length",) if api.query.get(k)})
    run_id, set_run_id = api.use_form("run_id", None)
    notice, set_notice = k.use_notice()
    presets = api.presets()
    params = form_params(typed, chosen)
    graph = train_graph(model=model, data=data, params=params, data_params=data_params(api.query),
                        description=f"train {model} on {data}")
    problems = [(w, m) for w, m in api.check(graph) if (model and data) or ".inputs" not in w]
    by_param = {w.split(".params.", 1)[1].split(".")[0].split("[")[0]: m for w, m in problems
                if w.startswith("nodes.train.params.")}
    preset = chosen.get("preset", "")
    base = presets.get(preset, {}).get("params", {})

    def choose(name: str, value: str) -> None:
        set_chosen(lambda c: {**c, name: value})

    def type_param(name: str, value: str) -> None:
        set_typed(lambda t: {**t, name: value})

    async def start(_: Any) -> None:
        done = await k.act_async(lambda: api.submit(graph, label=graph["description"]), set_notice)
        if done is not None:
            set_run_id(done[0])
            set_notice(k.warnings_notice(done[1], "training started, with warnings"))

    def shown(name: str) -> str:
        value = base.get(name, op.params[name].default)
        return json.dumps(value) if not isinstance(value, str) else value

    effective = {**{n: spec.default for n, spec in op.params.items() if spec.default is not msgspec.UNSET}, **base,
                 **params}
    refs = {m.name: m.ref for m in api.models()}
    registered = [("", "registered models…")] + [(m.name, f"{m.name} ({m.ref})") for m in api.models()]
    prominent = [html.span({"key": name}, k.field(name, k.select(
        chosen.get(name, ""), [("", f"(default: {shown(name) or 'none'})")]
        + [(str(c), str(c)) for c in (op.params[name].choices or ())], lambda v, n=name: choose(n, v),
        id=f"train-{name}"), hint=op.params[name].description[:90])) for name in PROMINENT
        if name in op.params and name != "preset"]
    rest = [param_field(k, name, spec, typed.get(name, ""), lambda v, n=name: type_param(n, v), by_param.get(name, ""),
                        shown(name)) for name, spec in op.params.items() if name not in PROMINENT]
    preset_rows = [(k, [k, json.dumps(v)]) for k, v in base.items()]
    return html.section(
        {"className": "panel", "id": "train"},
        html.h2("Train an adapter"),
        html.div({"className": "row"},
                 k.field("model", html.span(k.text_input(model, set_model, id="train-model", size=48,
                                                     placeholder="registered name, model folder or .gguf file"),
                                          k.select("", registered, set_model, id="train-registered"))),
                 k.field("data", k.text_input(data, set_data, id="train-data", size=48,
                                          placeholder="a data file (the Data page hands one over)"),
                       hint=f"prepared as: {json.dumps(data_params(api.query))}")),
        html.div({"className": "row"},
                 k.field("preset", k.select(preset, [("", "none (the defaults)")] + [
                     (n, f"{n}: {p.get('description', '')}"[:90]) for n, p in sorted(presets.items())],
                     lambda v: choose("preset", v), id="train-preset")), *prominent),
        k.table(("PRESET SETS", "VALUE"), preset_rows, id="train-preset-values") if preset_rows else "",
        estimate_view(refs.get(model, model), effective, rows_handed(api.query)) if not problems else
        html.p({"id": "train-estimate", "className": "muted"}, "Estimate: once the parameters are valid"),
        html.details({"id": "train-params"}, html.summary(f"All {len(rest)} other parameters"),
                     html.div({"className": "params-grid"}, rest)),
        html.div({"id": "train-problems", "data-count": len(problems)},
                 html.ul([html.li({"key": f"{w}{m}"}, f"{w}: {m}".lstrip(": ")) for w, m in problems])
                 if problems else html.small({"className": "muted"}, "parameters valid")),
        html.div({"className": "row"},
                 k.button("Start", start, id="train-start", disabled=bool(problems) or not model or not data)),
        k.notice_view(notice),
        html.div(html.meta({"httpEquiv": "refresh", "content": f"0;url=/runs/{run_id}"}),
                 html.p({"id": "train-run"}, "run ", k.link(f"/runs/{run_id}", run_id, className="mono"),
                        " started: opening its page")) if run_id else "",
    )
