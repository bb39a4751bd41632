"""The datasets plugin's page (`component(api)`, api: `tunelog.plugins.api.UiApi`): pick a file
under a data folder or upload one, and see before anything trains what `datasets.prepare` will make
of it: the detected format, the column mapping (editable), the first records with the part that
is trained on highlighted, and the rows it would leave out, counted by reason.

That preview runs the plugin's own reading and normalising code in a thread of the daemon (no
torch, no tokenizer). With a model named, "Render" runs `datasets.prepare -> datasets.render` as
a run (the tokenizer loads in a worker): the first records through the model's chat template with
the trained tokens highlighted, and every record encoded as the trainer encodes it, counting the
records `max_length` truncates or drops.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
from reactpy import component as reactpy_component
from reactpy import hooks, html

from tunelog.events.errors import TunelogError

from .backend import _check_mapped_columns, _normalise_all, _tables_format, _tables_name
from .formats import FIELDS, FORMATS, KIND, expand_columns
from .problems import Problems
from .readers import SUFFIXES, load_source

TITLE = "Data"
NAV_ORDER = 10
SHOWN = 5
"""Records shown in the preview."""
MAX_LISTED = 200
"""Files listed from the data folders."""


def data_files(folders: list[Path]) -> list[Path]:
    """Data files under the folders (hidden ones skipped), by path."""
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found += [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                      and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found)[:MAX_LISTED]


def preview(source: str, *, fmt: str, columns: dict[str, str]) -> dict[str, Any]:
    """What prepare would do with `source`: format, mapping, first records, rows left out by reason."""
    problems = Problems(cap=100_000)
    src = load_source(source, split="train", problems=problems)
    given = {k: v for k, v in columns.items() if v}
    _check_mapped_columns(_tables_name(src.tables), list(dict.fromkeys(c for t in src.tables for c in t.columns())),
                          given)
    chosen, mapping, why = _tables_format(src.tables, fmt, expand_columns(given))
    records, _ = _normalise_all(src.tables, chosen, mapping, {}, problems)
    read = sum(len(t.rows) for t in src.tables)
    reasons = Counter(re.sub(r"\d+", "N", message) for _, message in problems.items)
    return {"format": chosen, "kind": KIND[chosen], "why": why, "mapping": mapping, "rows": read,
            "used": len(records), "left_out": problems.total, "reasons": reasons.most_common(),
            "where": [w for w, _ in problems.items[:5]], "records": records[:SHOWN],
            "columns": list(dict.fromkeys(c for t in src.tables for c in t.columns()))}


def turn(role: str, content: Any, *, trained: bool) -> Any:
    return html.div({"className": "turn trained" if trained else "turn", "data-role": role,
                     "data-trained": "true" if trained else "false"},
                    html.b(f"{role}: "), html.span(content if isinstance(content, str) else json.dumps(content)))


def record_view(i: int, record: dict[str, Any]) -> Any:
    """One normalised record; the answers (what the loss is computed on) are highlighted."""
    if "messages" in record:
        turns = [turn(m["role"], m.get("content", ""), trained=m["role"] == "assistant") for m in record["messages"]]
    elif "text" in record:
        turns = [turn("text", record["text"], trained=True)]
    else:
        prompt = [turn(m["role"], m.get("content", ""), trained=False) for m in record.get("prompt", [])]
        answers = [turn(k, record[k], trained=True) for k in ("chosen", "rejected", "completion") if k in record]
        turns = prompt + answers + ([html.small(f"label: {record['label']}")] if "label" in record else [])
    return html.div({"key": str(i), "className": "record"}, html.small(f"record {i + 1}"), *turns)


def counts_view(k: Any, p: dict[str, Any]) -> Any:
    rows = [(r, [r, str(n)]) for r, n in p["reasons"]]
    return html.div(
        {"id": "data-counts", "data-rows": p["rows"], "data-used": p["used"], "data-left-out": p["left_out"]},
        html.p(f"{p['rows']} rows read, {p['used']} would be used"
               + (f"; {p['left_out']} have problems (first: {', '.join(p['where'])}), and datasets.prepare refuses "
                  "the file until they are fixed or mapped" if p["left_out"] else "; none has a problem")
               + ". What `max_length` truncates needs the model's tokenizer: Render below counts it."),
        k.table(("PROBLEM", "ROWS"), rows, id="data-reasons") if rows else "")


def upload_form() -> Any:
    """A plain multipart form: the browser posts the file, the UI stores it and comes back here."""
    return html.form({"method": "post", "action": "/uploads", "encType": "multipart/form-data", "id": "data-upload"},
                     html.input({"type": "hidden", "name": "next", "value": "/plugin-pages/datasets"}),
                     html.input({"type": "file", "name": "file", "id": "data-file"}),
                     html.button({"type": "submit", "id": "data-upload-button"}, "Upload"))


def render_graph(source: str, fmt: str, columns: dict[str, str], *, model: str, max_length: str) -> dict[str, Any]:
    """prepare (as the Train page will run it) feeding render, with the model's tokenizer."""
    mapped = {k: v for k, v in columns.items() if v}
    length = int(max_length) if max_length.isdigit() else max_length
    return {"description": f"data preview: {Path(source).name} with {model}", "nodes": {
        "data": {"op": "datasets.prepare", "inputs": {"source": source},
                 "params": {"format": fmt, **({"columns": mapped} if mapped else {})}},
        "render": {"op": "datasets.render", "params": {"max_length": length},
                   "inputs": {"dataset": {"node": "data", "output": "dataset"}, "model": model}}}}


PIECE_CLASS = {True: "tok trained", False: "tok", "cut": "tok cut"}


def rendered_view(report: dict[str, Any]) -> Any:
    """The rendered records (trained pieces highlighted, cut ones struck) and the encoding counts."""
    counts = report.get("counts") or {}
    blocks = [html.div({"key": str(i), "className": "record rendered", "data-truncated": str(r["truncated"]).lower()},
                       html.small(f"record {i + 1}: {r['tokens']} tokens, {r['trained_tokens']} trained"
                                  + (f", cut to max_length {report['max_length']}" if r["truncated"] else "")),
                       html.pre([html.span({"key": str(j), "className": PIECE_CLASS[t],
                                            "data-trained": str(t).lower()}, text)
                                 for j, (text, t) in enumerate(r["pieces"])]))
              for i, r in enumerate(report.get("records", []))]
    facts = [(k, [k.replace("_", " "), str(v)]) for k, v in counts.items() if isinstance(v, int) and k != "max_length"]
    return html.div({"id": "data-rendered", "data-truncated": counts.get("truncated", 0),
                     "data-dropped": counts.get("dropped_no_target", 0) + counts.get("dropped_too_long", 0)},
                    html.p({"className": "muted"}, "Highlighted: the tokens the loss is computed on; struck "
                           "through: what max_length cuts. Below: every record encoded as the trainer encodes it."),
                    *blocks, html.table({"id": "data-encoding"}, html.tbody(
                        [html.tr({"key": key}, [html.td(c) for c in cells]) for key, cells in facts])))


def train_link(source: str, fmt: str, columns: dict[str, str], rows: int, model: str, max_length: str) -> str:
    """The Train page with the file, format, mapping and row count, and the model and max_length
    the records were rendered with."""
    query = {"data": source, "format": fmt, "rows": str(rows),
             **({"model": model, "max_length": max_length} if model else {})}
    mapped = {k: v for k, v in columns.items() if v}
    if mapped:
        query["columns"] = json.dumps(mapped)
    return "/plugin-pages/lora_trainer?" + urlencode(query)


def component(api: Any) -> Any:
    """The plugin's page in the web UI."""
    return DataPage(api)


@reactpy_component
def DataPage(api: Any) -> Any:
    api.use_log_head()
    k = api.kit
    source, set_source = api.use_form("source", api.query.get("source", ""))
    fmt, set_fmt = api.use_form("format", "auto")
    columns, set_columns = api.use_form("columns", {})
    model, set_model = api.use_form("model", api.query.get("model", ""))
    max_length, set_max_length = api.use_form("max_length", "512")
    render_run, set_render_run = api.use_form("render_run", {})
    notice, set_notice = k.use_notice()
    result, set_result = hooks.use_state(None)

    @hooks.use_effect(dependencies=[source, fmt, json.dumps(columns, sort_keys=True)])
    async def look() -> None:
        if not source:
            set_result(None)
            return
        try:
            set_result({"ok": await anyio.to_thread.run_sync(lambda: preview(source, fmt=fmt, columns=columns))})
        except TunelogError as exc:
            set_result({"error": k.error_notice(exc)})

    choices = [("", "choose a file")] + [(u["path"], f"{u['name']} (uploaded, {k.short(u['sha256'])})")
                                         for u in api.uploads()]
    choices += [(str(p), str(p)) for p in data_files(api.data_dirs())]
    p = (result or {}).get("ok")
    shown_fmt = p["format"] if p else fmt
    fields = [f for group in FIELDS.get(shown_fmt, ((), ())) for f in group]

    def set_column(name: str, value: str) -> None:
        set_columns(lambda c: {**c, name: value})

    graph = render_graph(source, fmt, columns, model=model, max_length=max_length)
    asked = json.dumps(graph, sort_keys=True)

    async def render(_: Any) -> None:
        done = await k.act_async(lambda: api.submit(graph, label=graph["description"]), set_notice)
        if done is not None:
            set_render_run({"run": done[0], "graph": asked})

    run = api.run(render_run["run"]) if render_run.get("graph") == asked else None  # a shown render fits the form
    rendered = run.nodes["render"].outputs.get("report") if run is not None and run.state == "succeeded" else None
    mapping = html.div({"className": "row", "id": "data-mapping"}, [
        html.span({"key": f}, k.field(f, k.text_input(columns.get(f, ""), lambda v, f=f: set_column(f, v), size=12,
                                                  id=f"data-col-{f}",
                                                  placeholder=(p or {}).get("mapping", {}).get(f, f))))
        for f in fields])
    return html.section(
        {"className": "panel", "id": "data"},
        html.h2("Data"),
        html.p({"className": "muted"}, "Data folders: " + ", ".join(str(d) for d in api.data_dirs())
               + " (TUNELOG_DATA_DIRS). Or upload a file: it is stored content-addressed, like artifacts."),
        html.div({"className": "row"},
                 k.field("file", k.select(source if source in dict(choices) else "", choices, set_source,
                                      id="data-pick")),
                 k.field("or a path", k.text_input(source, set_source, size=60, id="data-source")),
                 k.field("format", k.select(fmt, [("auto", "auto (detect)")] + [(f, f) for f in FORMATS], set_fmt,
                                        id="data-format"))),
        upload_form(),
        html.div({"className": "notice notice-error", "id": "data-upload-error"}, "Upload refused: ",
                 api.query["upload_error"]) if api.query.get("upload_error") else "",
        k.notice_view((result or {}).get("error")),
        html.div(
            {"id": "data-preview", "data-format": p["format"]},
            html.p(html.b("format "), html.span({"id": "data-detected"}, p["format"]),
                   f" ({p['kind']} records)" + (f", detected from {p['why']}" if p["why"] else ", as asked"),
                   f" · columns: {', '.join(p['columns'])}"),
            html.h3("Column mapping"), mapping,
            html.h3("First records (highlighted: what the loss is computed on)"),
            html.div({"id": "data-records"}, [record_view(i, r) for i, r in enumerate(p["records"])]),
            html.h3("Rows"), counts_view(k, p),
            html.h3("Through the model's chat template"),
            html.div({"className": "row"},
                     k.field("model", k.text_input(model, set_model, id="data-model", size=48,
                                                   placeholder="registered name, model folder or .gguf file")),
                     k.field("max_length", k.text_input(max_length, set_max_length, id="data-max-length", size=6)),
                     k.button("Render", render, id="data-render", disabled=not model)),
            k.notice_view(notice), k.run_outcome(run, api.job),
            rendered_view(rendered) if isinstance(rendered, dict) else "",
            html.p(html.a({"href": train_link(source, fmt, columns, p["used"], model, max_length), "id": "data-train"}, "Train on this data →")),
        ) if p else "",
    )
