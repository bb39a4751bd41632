"""Playground: one prompt to a base model and to adapters, answers side by side.

It submits an `evaluate.generate` run (every adapter loaded onto one copy of the base and
switched in place), so each answer is recorded in the log like any other run's output.
"""

from __future__ import annotations

from typing import Any, cast

from reactpy import component, hooks, html

from tunelog.daemon.runs.preflight import submit_checked
from tunelog.events.errors import ValidationError
from tunelog.frontends.web.forms import adapter_picker, run_outcome
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import (
    act,
    act_async,
    button,
    field,
    notice_view,
    short,
    text_input,
    use_notice,
    warnings_notice,
)


def label(name: str) -> str:
    """Column title of an answer: `base`, or `adapter <sha12>`."""
    return f"adapter {name[1:]}" if name.startswith("a") and len(name) == 13 else name


def generate_graph(model: str, prompt: str, chosen: list[str], *, max_new_tokens: str) -> dict[str, Any]:
    """The evaluate.generate graph, or a ValidationError naming every bad field."""
    problems = []
    if not model.strip():
        problems.append(("model", "a base model: folder, hub id, artifact or registered name"))
    if not prompt.strip():
        problems.append(("prompt", "type a prompt"))
    if not max_new_tokens.isdigit() or int(max_new_tokens) < 1:
        problems.append(("max new tokens", f"a positive whole number, got {max_new_tokens!r}"))
    if problems:
        raise ValidationError.collect("cannot generate", problems)
    inputs: dict[str, Any] = {"model": model.strip()}
    if chosen:
        inputs["adapters"] = [{"name": f"a{s[:12]}", "sha256": s} for s in chosen]
    return {"description": f"playground: {len(chosen)} adapter(s)",
            "nodes": {"generate": {"op": "evaluate.generate", "inputs": inputs,
                                   "params": {"prompts": [prompt], "max_new_tokens": int(max_new_tokens)}}}}


def answers_view(report: dict[str, Any]) -> Any:
    """Each prompt with its answers in columns."""
    blocks = []
    for prompt, by_name in report.items():
        cols = [html.div({"className": "answer", "key": name, "data-answer": name},
                         html.h3(label(name)), html.pre(text)) for name, text in by_name.items()]
        blocks.append(html.div({"key": prompt}, html.p(html.b("Prompt: "), prompt),
                               html.div({"className": "answers"}, cols)))
    return html.div({"id": "answers"}, blocks)


@component
def PlaygroundPage(ui: Ui, *, query: dict[str, str]) -> Any:
    """Prompt a base model and adapters; follows the run it starts."""
    use_head(ui)
    adapters = sorted(ui.services.tables.adapters.all(), key=lambda a: a.created_at, reverse=True)
    chosen, set_chosen = hooks.use_state(cast(dict[str, str], {}))
    model, set_model = hooks.use_state("")
    prompt, set_prompt = hooks.use_state("")
    tokens, set_tokens = hooks.use_state("32")
    run_id, set_run_id = hooks.use_state(query.get("run"))
    notice, set_notice = use_notice()
    by_sha = {a.sha256: a for a in adapters}
    default_model = next((ui.adapter_base(by_sha[s]) for s in chosen if s in by_sha), "")

    async def submit(_: Any) -> None:
        graph = act(lambda: generate_graph(model or default_model, prompt, list(chosen), max_new_tokens=tokens),
                    set_notice)
        done = await act_async(lambda: submit_checked(ui.services, graph, label=graph["description"]),
                               set_notice) if graph else None
        if done is not None:
            set_run_id(done[0].run_id)
            set_notice(warnings_notice(done[1], "started, with warnings"))

    row = ui.services.tables.runs.get(run_id) if run_id else None
    outcome = run_outcome(row, lambda j: ui.services.tables.jobs.get(j))
    report = row.nodes["generate"].outputs.get("report") if row is not None and "generate" in row.nodes else None
    return html.div(
        html.h1("Playground"),
        html.section(
            {"className": "panel"},
            field("base model", text_input(model, set_model, id="play-model", size=60,
                                           placeholder=default_model or "folder, hub id or registered name")),
            html.div(html.span({"className": "label muted"}, "adapters (each answers next to the base model)"),
                     adapter_picker(adapters, chosen, set_chosen, weights=False, prefix="play")),
            field("prompt", html.textarea({"value": prompt, "id": "play-prompt",
                                           "onChange": lambda e: set_prompt(e["target"]["value"])})),
            html.div({"className": "row"},
                     field("max new tokens", text_input(tokens, set_tokens, size=5, id="play-tokens")),
                     button("Generate", submit, id="play-button")),
            notice_view(notice), outcome,
        ),
        answers_view(report) if isinstance(report, dict) else "",
        html.p({"className": "muted"}, f"adapters: {', '.join(short(s) for s in chosen) or 'none (base only)'}"),
    )
