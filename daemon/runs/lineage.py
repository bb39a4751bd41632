"""The lineage tree of a run. Pure: plain dicts (projection rows as dicts) in, nested JSON out.

The tree is rooted at the run's oldest ancestor (following `replay_of` and `forked_from`), so a
replay of a fork of a run shows up in the same place whichever of them is asked about. Each
entry is `{kind, id, run_id, relation, label, state, children}`; the asked-for run carries
`focus: true`. Under a run: its resumes (RunResumed), the job chains of nodes that ran more than
once (each job under the one it resumed), the adapters it produced with the merges and exports
that used them, the merges it ran (the adapters that went in, the adapter or model that came out), then
the runs that replay or fork it. An export is a node of an `export.*` operation that reads the
adapter, directly or through the nodes before it (e.g. a merge).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Row = Mapping[str, Any]


def parent_of(run: Row) -> str | None:
    """The run this one replays or forks, if any."""
    forked = run.get("forked_from") or {}
    return run.get("replay_of") or forked.get("run")


def lineage(focus: str, runs: list[Row], *, resumes: Mapping[str, list[list[str]]] | None = None,
            jobs: Mapping[str, Row] | None = None, adapters: list[Row] | None = None) -> dict[str, Any]:
    """The tree around run `focus`: ancestors above, descendants, resumes and adapters below."""
    by_id = {r["run_id"]: r for r in runs}
    root, seen = focus, {focus}
    while (up := parent_of(by_id[root])) is not None and up in by_id and up not in seen:
        seen.add(up)
        root = up
    tree = _Tree(by_id, resumes or {}, jobs or {}, adapters or [], focus)
    top = by_id[root]  # a parent that is not in the log any more leaves its relation visible
    return tree.run(top, relation=_relation(top) if parent_of(top) else "origin")


def adapter_listing(adapter: Row, *, run: Row | None, path: str | None) -> dict[str, Any]:
    """An adapter row with where its folder lives and the base model it belongs to: a merge records
    it; a trained adapter's is the `model` input of the node that trained it."""
    base = adapter.get("base_model")
    if not base and run is not None:
        model = ((run.get("nodes") or {}).get(adapter.get("node")) or {}).get("inputs", {}).get("model")
        base = {"ref": model} if model is not None else None
    return {**adapter, "path": path, "base_model": base}


def entry(kind: str, id: str, *, run_id: str | None, relation: str, label: str, state: str,
          children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": kind, "id": id, "run_id": run_id, "relation": relation, "label": label, "state": state,
            "children": children or []}


class _Tree:
    """Walks down from a run; a visited set guards against cycles in damaged data."""

    def __init__(self, by_id: dict[str, Row], resumes: Mapping[str, list[list[str]]], jobs: Mapping[str, Row],
                 adapters: list[Row], focus: str):
        self.by_id, self.resumes, self.jobs, self.focus = by_id, resumes, jobs, focus
        self.adapters = sorted(adapters, key=lambda a: a.get("created_at", 0.0))
        self.seen: set[str] = set()

    def run(self, run: Row, *, relation: str) -> dict[str, Any]:
        rid = run["run_id"]
        self.seen.add(rid)
        kids = [*self._resumes(rid), *self._chains(run), *self._adapters(rid), *self._merges(run),
                *self._descendants(rid)]
        out = entry("run", rid, run_id=rid, relation=relation, label=run.get("label", ""), state=run["state"],
                    children=kids)
        if rid == self.focus:
            out["focus"] = True
        return out

    def _resumes(self, rid: str) -> list[dict[str, Any]]:
        return [entry("resume", f"{rid}:resume:{i}", run_id=rid, relation="resumed",
                      label="nodes run again: " + ", ".join(nodes), state="")
                for i, nodes in enumerate(self.resumes.get(rid, []), start=1)]

    def _chains(self, run: Row) -> list[dict[str, Any]]:
        out = []
        for node_id in run.get("order", []):
            ids = (run.get("nodes", {}).get(node_id) or {}).get("jobs") or []
            if len(ids) < 2:
                continue
            below: dict[str | None, list[str]] = {}
            for j in ids:
                parent = (self.jobs.get(j) or {}).get("resume_of")
                below.setdefault(parent if parent in ids else None, []).append(j)
            out.append(entry("node", f"{run['run_id']}:{node_id}", run_id=run["run_id"], relation="attempts",
                             label=f"node {node_id}: {len(ids)} jobs", state=run["nodes"][node_id].get("state", ""),
                             children=[self._job(j, below, run["run_id"], "first") for j in below.get(None, [])]))
        return out

    def _job(self, job_id: str, below: dict[str | None, list[str]], rid: str, relation: str) -> dict[str, Any]:
        row = self.jobs.get(job_id) or {}
        step = row.get("checkpoint_step")
        label = f"checkpoint at step {step}" if step is not None else "no checkpoint"
        return entry("job", job_id, run_id=rid, relation=relation, label=label, state=row.get("state", ""),
                     children=[self._job(j, below, rid, "resume") for j in below.get(job_id, [])])

    def _adapters(self, rid: str) -> list[dict[str, Any]]:
        return [self._adapter(a, relation="produced", label=f"node {a.get('node')}", depth=0)
                for a in self.adapters if a.get("source") == "run" and a.get("run_id") == rid]

    def _adapter(self, a: Row, *, relation: str, label: str, depth: int) -> dict[str, Any]:
        merges = [] if depth > 8 else [
            self._adapter(m, relation="merged into", label=f"{m.get('merge_type')} merge", depth=depth + 1)
            for m in self.adapters if m.get("source") == "merge"
            and any(p.get("sha256") == a["sha256"] for p in m.get("parents", []))]
        merges += self._exports(a["sha256"])
        return entry("adapter", a["sha256"], run_id=a.get("run_id"), relation=relation, label=label, state="",
                     children=merges)

    def _exports(self, sha: str) -> list[dict[str, Any]]:
        out = []
        for run in sorted(self.by_id.values(), key=lambda r: r.get("submitted_position", 0)):
            specs = (run.get("graph") or {}).get("nodes") or {}
            for node_id, spec in specs.items():
                op = str(spec.get("op", ""))
                if op.startswith("export.") and _reads(run, node_id, sha, set()):
                    node = (run.get("nodes") or {}).get(node_id) or {}
                    params = spec.get("params") or {}
                    made = [v for k, v in (node.get("outputs") or {}).items() if k != "report" and isinstance(v, str)]
                    label = " ".join([op, *(str(params[k]) for k in ("quant", "outtype") if k in params),
                                      *(f"-> {m[:12]}" for m in made)])
                    out.append(entry("export", f"{run['run_id']}:{node_id}", run_id=run["run_id"],
                                     relation="exported", label=label, state=node.get("state", "")))
        return out

    def _merges(self, run: Row) -> list[dict[str, Any]]:
        """The merge nodes of a run: what went in and what came out."""
        out = []
        for node_id in run.get("order", []):
            op = str(((run.get("graph") or {}).get("nodes", {}).get(node_id) or {}).get("op", ""))
            if not op.startswith("adapter_merge."):
                continue
            node = run.get("nodes", {}).get(node_id) or {}
            inputs = node.get("inputs") or {}
            used = [entry("adapter", sha, run_id=None, relation="input", label=f"weight {w:g}", state="")
                    for sha, w in _weighted(inputs.get("adapters", inputs.get("adapter")))]
            made = [entry(port, v, run_id=run["run_id"], relation="produced", label=f"node {node_id}", state="")
                    for port, v in (node.get("outputs") or {}).items() if port in ("adapter", "model")]
            base = inputs.get("model")
            base = base[:12] if isinstance(base, str) and len(base) == 64 else base  # an artifact hash, cut
            out.append(entry("merge", f"{run['run_id']}:{node_id}", run_id=run["run_id"], relation="merged",
                             label=f"{op.split('.', 1)[1]} of {len(used)} adapter(s)" + (f" on {base}" if base else ""),
                             state=node.get("state", ""), children=[*used, *made]))
        return out

    def _descendants(self, rid: str) -> list[dict[str, Any]]:
        kids = sorted((r for r in self.by_id.values() if parent_of(r) == rid and r["run_id"] not in self.seen),
                      key=lambda r: r.get("submitted_position", 0))
        return [self.run(r, relation=_relation(r)) for r in kids]


def _reads(run: Row, node_id: str, sha: str, seen: set[str]) -> bool:
    """Whether a node of `run` reads artifact `sha`, directly or through the nodes it is wired from."""
    if node_id in seen:
        return False
    seen.add(node_id)
    spec = ((run.get("graph") or {}).get("nodes") or {}).get(node_id) or {}
    resolved = ((run.get("nodes") or {}).get(node_id) or {}).get("inputs") or {}
    for value in [*(spec.get("inputs") or {}).values(), *resolved.values()]:
        if value == sha or (isinstance(value, list) and sha in value):
            return True
        if isinstance(value, dict) and isinstance(value.get("node"), str) and _reads(run, value["node"], sha, seen):
            return True
    return False


def _weighted(value: Any) -> list[tuple[str, float]]:
    """(sha256, weight) from a merge node's adapter input: `sha`, `sha:w`, `{"sha256", "weight"}` or a list."""
    items = value if isinstance(value, list) else [value] if value else []
    out = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("sha256"), str):
            out.append((item["sha256"], float(item.get("weight", 1.0))))
        elif isinstance(item, str):
            sha, _, w = item.partition(":")
            try:
                out.append((sha, float(w) if w else 1.0))
            except ValueError:
                out.append((sha, 1.0))
    return out


def _relation(run: Row) -> str:
    if run.get("replay_of"):
        return "replay"
    forked = run.get("forked_from") or {}
    step = forked.get("step")
    return f"fork at {forked.get('node')}" + (f" step {step}" if step is not None else "")
