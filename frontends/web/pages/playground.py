"""Playground: one prompt to a base model and to adapters, answers side by side, with the
generation controls of `tunectl generate` (sampling, temperature, top_p, top_k, min_p, repetition
penalty, seed, stop strings, system prompt, chat template on/off, earlier turns).

It submits an `evaluate.generate` run (every adapter loaded onto one copy of the base and
switched in place, each starting from the same seed), so each answer is recorded in the log like
any other run's output. The run streams: while the job runs, its latest progress message holds
the answers so far (see evaluate.generate's `stream` parameter), shown in their columns with the
one still generating marked; when the run ends, its report replaces them. The controls are
checked as they are typed by the daemon's own parameter validation.
"""

from __future__ import annotations

import json
from typing import Any, cast

import msgspec
from reactpy import component, hooks, html

from tunelog.daemon.runs.graph import parse_graph
from tunelog.daemon.runs.preflight import submit_checked
from tunelog.events.errors import TunelogError, ValidationError
from tunelog.events.run_state import RunRow
from tunelog.frontends.web.forms import adapter_picker, run_outcome
from tunelog.frontends.web.live import use_head
from tunelog.frontends.web.ui import Ui
from tunelog.frontends.web.widgets import (
    act,
    act_async,
    button,
    field,
    notice_view,
    select,
    short,
    text_input,
    use_notice,
    warnings_notice,
)


def label(name: str) -> str:
    """Column title of an answer: `base`, or `adapter <sha12>`."""
    return f"adapter {name[1:]}" if name.startswith("a") and len(name) == 13 else name


CONTROLS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed", "system")
"""evaluate.generate parameters typed as one value each (JSON when it parses, else the text)."""


def control_params(controls: dict[str, str]) -> dict[str, Any]:
    """evaluate.generate's parameters from the controls (empty ones keep the defaults): `sample`
    turns greedy decoding off, `stop` holds one stop string per line, `history` earlier turns as
    JSON, `chat` "false" sends the prompt as plain text, `chat_template` a Jinja template used
    instead of the tokenizer's own."""
    out: dict[str, Any] = {}
    for name in CONTROLS:
        raw = controls.get(name, "")
        if raw.strip():
            out[name] = raw if name == "system" else _value(raw)
    if controls.get("sample") == "true":
        out["greedy"] = False
    if controls.get("chat") == "false":
        out["chat"] = False
    stops = [line for line in controls.get("stop", "").splitlines() if line]
    if stops:
        out["stop"] = stops
    if controls.get("history", "").strip():
        out["history"] = _value(controls["history"])
    if controls.get("chat_template", "").strip():
        out["chat_template"] = controls["chat_template"]
    return out


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def generate_graph(model: str, prompt: str, chosen: list[str], *, max_new_tokens: str,
                   controls: dict[str, str] | None = None) -> dict[str, Any]:
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
                                   "params": {"prompts": [prompt], "max_new_tokens": int(max_new_tokens),
                                              "stream": True, **control_params(controls or {})}}}}


class Streamed(msgspec.Struct):
    """The answers so far in a progress message of evaluate.generate with `stream` (its JSON part)."""

    prompt: int
    """Index of the prompt being answered."""
    variants: list[str]
    """Every column, in order: `base` and the adapters' names."""
    answers: dict[str, str]
    """Text so far of each variant that has started."""
    generating: str | None = None
    """The variant still generating, if any."""


def streamed(message: str) -> Streamed | None:
    """The answers in a progress message, or None when it holds none (another note, or not yet)."""
    _, _, body = message.partition("\n")
    try:
        return msgspec.json.decode(body, type=Streamed) if body else None
    except msgspec.DecodeError:
        return None


def answers_view(report: dict[str, Any], *, generating: str | None = None, final: bool = True) -> Any:
    """Each prompt with its answers in columns; while streaming (`final` off), a column is `done`,
    `generating` or `waiting` (its text is None)."""
    blocks = []
    for prompt, by_name in report.items():
        cols = [_column(name, text, "done" if final else _state(name, text, generating))
                for name, text in by_name.items()]
        blocks.append(html.div({"key": prompt}, html.p(html.b("Prompt: "), prompt),
                               html.div({"className": "answers"}, cols)))
    return html.div({"id": "answers", "data-final": str(final).lower()}, blocks)


def _state(name: str, text: str | None, generating: str | None) -> str:
    return "generating" if name == generating else "waiting" if text is None else "done"


def _column(name: str, text: str | None, state: str) -> Any:
    note = "" if state == "done" else html.span({"className": "muted"}, f" · {state}…")
    return html.div({"className": f"answer {state}", "key": name, "data-answer": name, "data-state": state},
                    html.h3(label(name), note), html.pre(text or ""))


def live_answers(ui: Ui, row: RunRow) -> Any:
    """The answers of a finished run's report, else those streamed so far by its running job."""
    node = row.nodes.get("generate")
    if node is None:
        return ""
    report = node.outputs.get("report")
    if isinstance(report, dict):
        return answers_view(report)
    job = ui.services.tables.jobs.get(node.job_id) if node.job_id else None
    now = streamed(job.message) if job is not None and job.state == "running" else None
    prompts = row.graph["nodes"]["generate"].get("params", {}).get("prompts") or []
    if now is None or not 0 <= now.prompt < len(prompts):
        return ""
    return answers_view({prompts[now.prompt]: {n: now.answers.get(n) for n in now.variants}},
                        generating=now.generating, final=False)


SHOWN = 50
"""Adapters offered at first, newest first; `older adapters` offers as many more."""


@component
def PlaygroundPage(ui: Ui, *, query: dict[str, str]) -> Any:
    """Prompt a base model and adapters; follows the run it starts."""
    use_head(ui)
    listed, set_listed = hooks.use_state(SHOWN)
    adapters = ui.services.tables.adapters.select(order="created_position", descending=True, limit=listed + 1)
    older = button("older adapters", lambda _: set_listed(listed + SHOWN), id="play-older") \
        if len(adapters) > listed else ""
    adapters = adapters[:listed]
    chosen, set_chosen = hooks.use_state(cast(dict[str, str], {}))
    model, set_model = hooks.use_state("")
    prompt, set_prompt = hooks.use_state("")
    tokens, set_tokens = hooks.use_state("32")
    controls, set_controls = hooks.use_state(cast(dict[str, str], {}))
    run_id, set_run_id = hooks.use_state(query.get("run"))
    notice, set_notice = use_notice()
    by_sha = {a.sha256: a for a in adapters}
    default_model = next((ui.adapter_base(by_sha[s]) for s in chosen if s in by_sha), "")

    async def submit(_: Any) -> None:
        graph = act(lambda: generate_graph(model or default_model, prompt, list(chosen), max_new_tokens=tokens,
                                           controls=controls), set_notice)
        done = await act_async(lambda: submit_checked(ui.services, graph, label=graph["description"]),
                               set_notice) if graph else None
        if done is not None:
            set_run_id(done[0].run_id)
            set_notice(warnings_notice(done[1], "started, with warnings"))

    row = ui.services.tables.runs.get(run_id) if run_id else None
    outcome = run_outcome(row, lambda j: ui.services.tables.jobs.get(j))
    return html.div(
        html.h1("Playground"),
        html.section(
            {"className": "panel"},
            field("base model", text_input(model, set_model, id="play-model", size=60,
                                           placeholder=default_model or "folder, hub id or registered name")),
            html.div(html.span({"className": "label muted"}, "adapters (each answers next to the base model)"),
                     adapter_picker(adapters, chosen, set_chosen, weights=False, prefix="play"), older),
            field("prompt", html.textarea({"value": prompt, "id": "play-prompt",
                                           "onChange": lambda e: set_prompt(e["target"]["value"])})),
            controls_view(ui, controls, set_controls),
            html.div({"className": "row"},
                     field("max new tokens", text_input(tokens, set_tokens, size=5, id="play-tokens")),
                     button("Generate", submit, id="play-button")),
            notice_view(notice), outcome,
        ),
        live_answers(ui, row) if row is not None else "",
        html.p({"className": "muted"}, f"adapters: {', '.join(short(s) for s in chosen) or 'none (base only)'}"),
    )


def control_problems(ui: Ui, controls: dict[str, str]) -> list[tuple[str, str]]:
    """What the daemon's parameter validation says about the controls (a graph with a placeholder
    model and prompt, so only the controls are judged)."""
    graph = {"nodes": {"generate": {"op": "evaluate.generate", "inputs": {"model": "m"},
                                    "params": {"prompts": ["p"], **control_params(controls)}}}}
    try:
        parse_graph(graph, ui.services.plugins)
    except TunelogError as exc:
        return [(str(p.get("where", "")).removeprefix("nodes.generate.params."), str(p.get("message", "")))
                for p in exc.problems] or [("", exc.message)]
    return []


def controls_view(ui: Ui, controls: dict[str, str], set_controls: Any) -> Any:
    """The generation controls, each checked as it is typed; the same settings and seed go to the
    base model and every adapter."""
    def setter(name: str) -> Any:
        return lambda v: set_controls(lambda c: {**c, name: v})

    def box(name: str, hint: str, size: int = 6) -> Any:
        return field(name.replace("_", " "), text_input(controls.get(name, ""), setter(name), size=size,
                                                        id=f"play-{name}", placeholder=hint))

    problems = control_problems(ui, controls)
    return html.div(
        {"id": "play-controls"},
        html.div({"className": "row"},
                 field("decoding", select(controls.get("sample", ""), [("", "greedy"), ("true", "sample")],
                                          setter("sample"), id="play-sample")),
                 box("temperature", "0.7"), box("top_p", "1.0"), box("top_k", "0"), box("min_p", "0"),
                 box("repetition_penalty", "1.0"), box("seed", "0"),
                 field("chat template", select(controls.get("chat", ""), [("", "on"), ("false", "off")],
                                               setter("chat"), id="play-chat"))),
        html.div({"className": "row"},
                 box("system", "system prompt (chat only)", size=40),
                 field("stop strings", html.textarea({"value": controls.get("stop", ""), "id": "play-stop", "rows": 2,
                                                      "onChange": lambda e: setter("stop")(e["target"]["value"])}),
                       hint="one per line"),
                 field("earlier turns", html.textarea({"value": controls.get("history", ""), "id": "play-history",
                                                       "rows": 2, "placeholder": '[{"role": "user", "content": "..."}]',
                                                       "onChange": lambda e: setter("history")(e["target"]["value"])}),
                       hint="JSON list of turns"),
                 field("Jinja chat template", html.textarea({"value": controls.get("chat_template", ""),
                                                             "id": "play-chat-template", "rows": 2,
                                                             "placeholder": "blank: the tokenizer's own",
                                                             "onChange": lambda e: setter("chat_template")(
                                                                 e["target"]["value"])}),
                       hint="used instead of the tokenizer's template")),
        html.div({"id": "play-problems", "data-count": len(problems)},
                 html.ul([html.li({"key": f"{w}{m}"}, f"{w}: {m}".lstrip(": ")) for w, m in problems])
                 if problems else html.small({"className": "muted"}, "settings valid")),
    )
