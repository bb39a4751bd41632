"""The editor's document: the graph being edited, what was saved, the problems to show, and
the last notice. Reducers are pure `(doc, event) -> doc`; the component applies them as
ReactPy functional state updates, so each sees the latest document even when events arrive
faster than renders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tunelog.frontends.web.editor import model
from tunelog.frontends.web.editor.catalog import Catalog

NAME_CHARS = frozenset("-_.")


@dataclass(frozen=True)
class Doc:
    """One editor's state (immutable; each change makes a new one)."""

    name: str
    """Workflow name; empty until a new workflow is named."""
    version: int
    """Saved version being edited; 0 for a workflow never saved."""
    graph: model.Graph
    saved: model.Graph
    """The graph as last loaded or saved: the document is dirty when `graph`'s content differs,
    and `moved` when only its layout does."""
    problems: tuple[dict[str, str], ...] = ()
    """`{where, message}` in parse_graph's form, from the last check or refused edit."""
    notice: str = ""
    tone: str = "info"
    """`info`, `ok` or `error`."""
    arrange: int = 0
    """Incremented to ask the canvas for a new layout."""
    run_id: str | None = None
    """The run whose node states are shown."""

    @property
    def dirty(self) -> bool:
        """The content (ops, parameters, inputs) differs from the saved version; a layout change
        (a drag, Arrange) is not one: running still runs the saved version."""
        return model.content(self.graph) != model.content(self.saved)

    @property
    def moved(self) -> bool:
        """Only the layout differs from the saved version (saving keeps it as a new version)."""
        return not self.dirty and self.graph != self.saved


def new_doc(name: str, version: int, graph: Any, *, run_id: str | None = None) -> Doc:
    g = model.normalize(graph if graph else {"nodes": {}})
    return Doc(name=name, version=version, graph=g, saved=g, run_id=run_id)


def valid_name(name: str) -> bool:
    """Workflow names the API accepts: letters, digits, '-', '_' and '.'."""
    return bool(name) and all(c.isalnum() or c in NAME_CHARS for c in name)


def notify(doc: Doc, text: str, tone: str = "info") -> Doc:
    return replace(doc, notice=text, tone=tone)


def _forget(doc: Doc, nodes: set[str]) -> tuple[dict[str, str], ...]:
    """Problems that do not name one of `nodes` (an edit there makes them stale)."""
    return tuple(p for p in doc.problems
                 if not any(p["where"] == f"nodes.{n}" or p["where"].startswith(f"nodes.{n}.") for n in nodes))


def _refused(doc: Doc, found: model.Problem) -> Doc:
    kept = tuple(p for p in doc.problems if p["where"] != found["where"])
    return replace(doc, problems=(*kept, found), notice=f"refused: {found['message']}", tone="error")


def _edited(doc: Doc, graph: model.Graph, nodes: set[str], notice: str) -> Doc:
    return replace(doc, graph=graph, problems=_forget(doc, nodes), notice=notice, tone="info")


def on_connect(doc: Doc, catalog: Catalog, event: dict[str, Any]) -> Doc:
    graph, found = model.connect(doc.graph, catalog, event)
    if found:
        return _refused(doc, found)
    src, out, dst, port = (event[k] for k in ("source", "sourceHandle", "target", "targetHandle"))
    return _edited(doc, graph, {dst}, f"connected {src}.{out} -> {dst}.{port}")


def on_move(doc: Doc, event: dict[str, Any]) -> Doc:
    moved = [m for m in event.get("moved") or [] if isinstance(m, dict)]
    graph = model.move(doc.graph, moved)
    if graph == doc.graph:
        return doc
    text = "arranged the graph" if event.get("arranged") else f"moved {', '.join(str(m.get('id')) for m in moved)}"
    return replace(doc, graph=graph, notice=text, tone="info")


def on_delete(doc: Doc, event: dict[str, Any]) -> Doc:
    nodes = [str(n) for n in event.get("nodes") or []]
    edge_ids = [str(e) for e in event.get("edges") or []]
    graph = model.delete(doc.graph, nodes, edge_ids)
    if graph == doc.graph:
        return doc
    touched = set(nodes) | {e["target"] for e in model.edges(doc.graph) if e["id"] in edge_ids}
    what = ", ".join([*nodes, *edge_ids])
    return _edited(doc, graph, touched, f"deleted {what}")


def on_edit(doc: Doc, catalog: Catalog, event: dict[str, Any]) -> Doc:
    """A parameter (`kind: param`) or literal input (`kind: input`) edit from the form."""
    edit = model.set_input if event.get("kind") == "input" else model.set_param
    graph, found = edit(doc.graph, catalog, event)
    if found:
        return _refused(doc, found)
    node, key = str(event.get("node")), str(event.get("key"))
    value = "default" if event.get("reset") else graph["nodes"][node][
        "inputs" if event.get("kind") == "input" else "params"].get(key, "(none)")
    return _edited(doc, graph, {node}, f"{node}.{key} = {value!r}" if value != "default" else f"{node}.{key} reset")


def on_add(doc: Doc, op: str) -> Doc:
    graph, node_id = model.add_node(doc.graph, op)
    return replace(doc, graph=graph, notice=f"added {node_id} ({op})", tone="info")


def on_rename(doc: Doc, name: str) -> Doc:
    """Name a workflow that was never saved (a saved one keeps its name)."""
    if doc.version:
        return doc
    return replace(doc, name=name.strip())


def on_arrange(doc: Doc) -> Doc:
    return replace(doc, arrange=doc.arrange + 1)
