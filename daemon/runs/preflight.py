"""Checks of a submitted graph before anything is appended: what its literal inputs name, and each
plugin's own up-front checks, every problem at once.

- A `model` input is a registered model name, a model artifact's sha256, a local model folder
  (config.json and weights, or one .gguf file), a .gguf file, or a hub id (`owner/name`).
- A `path` input is an existing file or folder, or a hub id.
- A plugin whose manifest names a checks module (`checks: checks.py`) has each of its nodes
  checked by that module in a throwaway process (daemon/plugin_host/check.py); the daemon never
  imports plugin code. Its problems refuse the run; its warnings go back to the submitter. The
  facts a node's check gets name the nodes that consume its outputs (`consumers`).

A hub id is only assumed when a value looks like one: `owner/name[@revision]`, not starting with
`.`, `/` or `~`, without a data or model file suffix. Anything else that does not exist is refused
naming it, instead of failing minutes later inside a job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelog.daemon.plugin_host.check import run_checks
from tunelog.daemon.runs.compare import is_sha256
from tunelog.daemon.runs.graph import Graph, Node, is_ref, parse_graph, refs_in
from tunelog.daemon.runs.refs import looks_like_hub_id, looks_like_path
from tunelog.daemon.services import Services
from tunelog.events.errors import ValidationError
from tunelog.events.run_state import RunRow

Problems = list[tuple[str, str]]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
CHECK_TIMEOUT_S = 60.0


async def submit_checked(s: Services, raw: Any, **submit: Any) -> tuple[RunRow, Problems]:
    """Check `raw` (refused whole, nothing appended), then submit it as a run: the one way every
    front end (API, web forms, editor) starts a run. Returns the run and the checks' warnings."""
    warnings = await check_graph(s, raw)
    return s.runs.submit(raw, **submit), warnings


async def check_graph(s: Services, raw: Any) -> Problems:
    """Refuse `raw` (one ValidationError with every problem) or return its warnings as (where, message)."""
    graph = parse_graph(raw, s.plugins)
    problems: Problems = []
    literal: dict[str, dict[str, Any]] = {}
    for node in graph.nodes.values():
        literal[node.id] = _literal_inputs(s, node, problems)
    warnings = await _plugin_checks(s, graph, literal, problems)
    if problems:
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise ValidationError.collect(f"the run cannot start: {count}", problems)
    return warnings


def _literal_inputs(s: Services, node: Node, problems: Problems) -> dict[str, Any]:
    """The node's literal `model` and `path` inputs as the plugin will see them; problems appended."""
    out: dict[str, Any] = {}
    for port, spec in node.resolved.op.inputs.items():
        value = node.inputs.get(port)
        if not isinstance(value, str) or is_ref(value):
            continue
        at = f"nodes.{node.id}.inputs.{port}"
        if spec.type == "model":
            value, problem = model_problem(s, value)
        elif spec.type == "path":
            problem = path_problem(value)
        else:
            continue
        if problem:
            problems.append((at, problem))
        out[port] = value
    return out


def model_problem(s: Services, value: str) -> tuple[str, str | None]:
    """(the local path or hub id a model input stands for, why it cannot be used or None)."""
    row = s.tables.models.get(value)
    if row is not None:
        ref, problem = model_problem(s, row.ref) if row.ref != value else (row.ref, None)
        return ref, (f"registered model {value!r} ({row.ref}): {problem}" if problem else None)
    if is_sha256(value):
        if not s.artifacts.exists(value):
            return value, f"no model artifact {value[:12]} in the store"
        return str(s.artifacts.path(value, verify=False)), None
    path = Path(value).expanduser()
    if path.is_file():
        return value, None if _is_gguf(path) else f"{value} is neither a model folder nor a .gguf file"
    if path.is_dir():
        return value, _model_folder_problem(path)
    if looks_like_hub_id(value):
        return value, None
    if not looks_like_path(value):
        return value, (f"no registered model named {value!r} (`tunectl models list` shows them; a hub id "
                       "is owner/name)")
    return value, f"no such file or folder: {value}"


def path_problem(value: str) -> str | None:
    """Why a `path` input names nothing usable, or None."""
    if Path(value).expanduser().exists() or looks_like_hub_id(value):
        return None
    return f"no such file or folder: {value}"


def _model_folder_problem(path: Path) -> str | None:
    if len(list(path.glob("*.gguf"))) == 1:
        return None
    if not (path / "config.json").is_file():
        return f"folder {path} is not a model: it has no config.json (nor exactly one .gguf file)"
    if not any(p.suffix in WEIGHT_SUFFIXES for p in path.iterdir()):
        return f"folder {path} is not a model: it has no weights ({', '.join(WEIGHT_SUFFIXES)} files)"
    return None


def _is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


async def _plugin_checks(s: Services, graph: Graph, literal: dict[str, dict[str, Any]],
                         problems: Problems) -> Problems:
    """Run each plugin's checks module once over all of its nodes; collect problems and warnings."""
    by_plugin: dict[str, list[Node]] = {}
    for node in graph.nodes.values():
        if node.resolved.manifest.checks:
            by_plugin.setdefault(node.plugin, []).append(node)
    warnings: Problems = []
    gpu_slots = sum(slot.startswith("gpu") for slot in s.jobs.slots)
    for plugin, nodes in by_plugin.items():
        first = nodes[0].resolved
        facts = {"cuda": gpu_slots > 0 and first.op.resource != "cpu", "gpu_slots": gpu_slots}
        request = {"facts": facts, "nodes": [{"node": n.id, "operation": n.operation, "params": n.params,
                              "inputs": literal.get(n.id, {}), "facts": {"consumers": consumers(graph, n.id)}}
                             for n in nodes]}
        got = await run_checks(s.plugins.python, first.code_dir, package=f"tunelog_checks_{plugin}",
                               module=str(first.manifest.checks), request=request, timeout=CHECK_TIMEOUT_S)
        if not got.get("ok"):
            problems += [(f"nodes.{n.id}", f"plugin {plugin}'s checks failed: {got.get('error')}") for n in nodes]
            continue
        for n in nodes:
            result = got["nodes"].get(n.id, {})
            problems += [(_where(n, str(w)), str(m)) for w, m in result.get("problems", [])]
            warnings += [(_where(n, str(w)), str(m)) for w, m in result.get("warnings", [])]
    return warnings


def consumers(graph: Graph, node_id: str) -> list[dict[str, Any]]:
    """The nodes that take `node_id`'s outputs: {"node", "op", "port", "output", "params"} each, so a
    check can judge its node by what will be done with the result (e.g. data for a training stage)."""
    return [{"node": n.id, "op": n.op, "port": port, "output": ref["output"], "params": n.params}
            for n in graph.nodes.values() for port, value in n.inputs.items()
            for ref in refs_in(value) if ref["node"] == node_id]


def _where(node: Node, field: str) -> str:
    """`nodes.<id>.params.<field>` for a parameter, else `nodes.<id>.<field>` (e.g. `inputs.model`)."""
    return f"nodes.{node.id}.params.{field}" if field in node.resolved.op.params else f"nodes.{node.id}.{field}"
