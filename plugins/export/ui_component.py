"""The export plugin's page (`component(api)`, api: `tunelog.plugins.api.UiApi`): export an adapter
(merged into its base, or alone as a GGUF LoRA) or a model as a Hugging Face folder, GGUF, GGUF
LoRA or an Ollama folder. It submits through the daemon's checked submit the graph `tunectl export`
submits, follows the run (each node's state and progress), and shows where the files are with
their sha256, or the whole reason the export failed. The adapters page links here per adapter
(`?adapter=SHA`).
"""

from __future__ import annotations

from typing import Any

from reactpy import component as reactpy_component
from reactpy import html

TITLE = "Export"
NAV_ORDER = 40
FORMATS = {"hf": "hf", "gguf": "gguf", "gguf-lora": "gguf_lora", "ollama": "ollama"}
"""`tunectl export --format` names and the operations that write them."""
OUTPUT = {"hf": "model", "gguf": "gguf", "gguf-lora": "gguf", "ollama": "ollama"}
"""The output of each operation that holds the exported files."""
QUANT_PARAM = {"gguf": "quant", "gguf-lora": "outtype", "ollama": "quant"}


def export_graph(*, adapter: str, model: str, fmt: str, params: dict[str, Any]) -> dict[str, Any]:
    """As `tunectl export`: an adapter is merged into `model` first (adapter_merge.merge_and_unload),
    except for gguf-lora, which converts it alone; without an adapter `model` is exported as it is."""
    merged = bool(adapter) and fmt != "gguf-lora"
    source: Any = {"node": "merge", "output": "model"} if merged else model
    inputs = {"model": source, **({"adapter": adapter} if fmt == "gguf-lora" else {})}
    nodes = {"merge": {"op": "adapter_merge.merge_and_unload", "inputs": {"model": model, "adapter": adapter}}} \
        if merged else {}
    nodes["export"] = {"op": f"export.{FORMATS[fmt]}", "params": params, "inputs": inputs}
    what = f"export {adapter[:12] or model} as {fmt}"
    return {"description": what + (f" ({params['quant']})" if "quant" in params else ""), "nodes": nodes}


def export_params(fmt: str, *, quant: str, name: str, system: str) -> dict[str, Any]:
    """The export operation's parameters the form sets (empty fields keep the defaults)."""
    params: dict[str, Any] = {QUANT_PARAM[fmt]: quant} if quant and fmt in QUANT_PARAM else {}
    if fmt == "ollama":
        params.update({k: v for k, v in (("name", name), ("system", system)) if v})
    return params


def progress_view(k: Any, row: Any, job: Any) -> Any:
    """Each node of the export run: its state and, while its job runs, the job's progress."""
    items = []
    for name in row.order:
        node = row.nodes[name]
        j = job(node.job_id) if node.job_id else None
        running = j is not None and node.state == "running"
        step = f" {j.step}/{j.total}" if running and j.total else ""
        said = f" · {j.message}" if running and j.message else ""
        items.append(html.li({"key": name, "data-node": name, "data-state": node.state},
                             f"{name}: ", k.badge(node.state), step, said))
    return html.ul({"id": "export-progress"}, items)


def result_view(k: Any, fmt: str, outputs: dict[str, Any]) -> Any:
    """The exported artifact's sha256 and the files' paths (plus the `ollama create` command)."""
    sha, report = outputs.get(OUTPUT[fmt], ""), outputs.get("report") or {}
    files = [html.li({"key": f, "className": "mono"}, f"{report.get('path', '')}/{f}") for f in report.get("files", [])]
    return html.div({"id": "export-result", "data-sha": sha, "data-path": report.get("path", "")},
                    html.p("exported ", html.b(fmt), " · sha256 ", html.span({"className": "mono"}, sha)),
                    html.ul(files),
                    html.p("to use it in Ollama: ", html.code(report["command"])) if report.get("command") else "")


@reactpy_component
def ExportPage(api: Any) -> Any:
    """Choose what to export and how; follow the export run and show its files or its whole error."""
    api.use_log_head()
    k = api.kit
    ops = api.manifest.operations
    adapter, set_adapter = api.use_form("adapter", api.query.get("adapter", ""))
    model, set_model = api.use_form("model", "")
    fmt, set_fmt = api.use_form("format", "hf")
    quant, set_quant = api.use_form("quant", "")
    name, set_name = api.use_form("name", "")
    system, set_system = api.use_form("system", "")
    run_id, set_run_id = api.use_form("run_id", None)
    notice, set_notice = k.use_notice()
    base = api.adapter_base(adapter) if adapter else ""
    graph = export_graph(adapter=adapter, model=model or base, fmt=fmt,
                         params=export_params(fmt, quant=quant, name=name, system=system))
    problems = api.check(graph) if (model or base) else [("model", "the base model (or the model to export)")]
    if fmt == "gguf-lora" and not adapter:
        problems.append(("adapter", "gguf-lora converts an adapter alone: choose one"))

    async def start(_: Any) -> None:
        done = await k.act_async(lambda: api.submit(graph, label=graph["description"]), set_notice)
        if done is not None:
            set_run_id(done[0])
            set_notice(k.warnings_notice(done[1], "export started, with warnings"))

    op = ops[FORMATS[fmt]]
    quant_spec = op.params.get(QUANT_PARAM.get(fmt, ""))
    quant_control = k.field(QUANT_PARAM[fmt], k.select(quant, [("", f"(default: {quant_spec.default})")] + [
        (str(c), str(c)) for c in quant_spec.choices or ()], set_quant, id="export-quant"),
        hint=quant_spec.description[:90]) if quant_spec is not None else ""
    adapters = [("", "none: export the model itself")] + [
        (a.sha256, f"{k.short(a.sha256)} ({a.merge_type + ' merge' if a.source == 'merge' else f'run {a.run_id}'})")
        for a in api.adapters()]
    if adapter and adapter not in {sha for sha, _ in adapters}:  # an older one, linked from a later adapters page
        adapters.append((adapter, k.short(adapter)))
    row = api.run(run_id) if run_id else None
    done = row is not None and row.state == "succeeded" and "export" in row.nodes
    made = {f"export.{op}": f for f, op in FORMATS.items()}.get(row.graph["nodes"]["export"]["op"], fmt) if done else fmt
    return html.section(
        {"className": "panel", "id": "export"},
        html.h2("Export"),
        html.div({"className": "row"},
                 k.field("adapter", k.select(adapter, adapters, set_adapter, id="export-adapter")),
                 k.field("base model" if adapter else "model", k.text_input(
                     model, set_model, id="export-model", size=48,
                     placeholder=base or "folder, hub id or registered name"))),
        html.div({"className": "row"},
                 k.field("format", k.select(fmt, [(f, f) for f in FORMATS], set_fmt, id="export-format"),
                         hint=op.description[:120]),
                 quant_control,
                 k.field("name", k.text_input(name, set_name, id="export-name", size=20,
                                              placeholder="tunelog-model")) if fmt == "ollama" else "",
                 k.field("system", k.text_input(system, set_system, id="export-system", size=30,
                                                placeholder="the chat template's own")) if fmt == "ollama" else ""),
        html.div({"id": "export-problems", "data-count": len(problems)},
                 html.ul([html.li({"key": f"{w}{m}"}, f"{w}: {m}".lstrip(": ")) for w, m in problems])
                 if problems else html.small({"className": "muted"}, "ready to export")),
        html.div({"className": "row"}, k.button("Export", start, id="export-button", disabled=bool(problems))),
        html.small({"className": "muted"}, "The same run `tunectl export` starts: cached, with the output's sha256 "
                                           "recorded and shown under the adapter by `tunectl runs lineage`."),
        k.notice_view(notice),
        progress_view(k, row, api.job) if row is not None else "",
        k.run_outcome(row, api.job),
        result_view(k, made, row.nodes["export"].outputs) if done else "",
    )


component = ExportPage
"""The plugin's page in the web UI (`component(api)`)."""
