"""What users type for models, data, adapters and workflow files, turned into what a graph holds.

Local paths become absolute (jobs run in their own working directory); adapter hash prefixes
are resolved against the daemon's adapter list; `ADAPTER:WEIGHT` is split; workflow files are
read as JSON or YAML.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import click

from tunelog.daemon.runs.refs import looks_like_path
from tunelog.frontends.cli.client import Client

_HEX = re.compile(r"^[0-9a-f]+$")
_RELATIVE = ("./", "../", "~/")


def local_or_given(value: str) -> str:
    """The absolute path of `value` when it names a local file or folder or looks like a path (the
    daemon then refuses one that does not exist, naming it), else `value` as given (a hub id or a
    registered name)."""
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() or looks_like_path(value) else value


def model_ref(c: Client, value: str) -> str:
    """A registered model name or an artifact hash as given; a unique prefix of a merged model's
    hash made whole; a local path made absolute; else a hub id."""
    if _HEX.match(value) and len(value) == 64:
        return value
    if any(m["name"] == value for m in c.get("/v1/models")["models"]):
        return value  # the daemon records the registered reference
    if _HEX.match(value.lower()) and not Path(value).expanduser().exists():
        merged = merged_model(c, value.lower())
        if merged is not None:
            return merged
    return local_or_given(value)


def merged_model(c: Client, prefix: str) -> str | None:
    """The full sha256 of the merged model (`tunectl merge --into-model`) whose hash starts with
    `prefix`; None when none does; an ambiguous prefix is a usage error."""
    found: set[str] = set()
    after = 0
    while True:
        page = c.get("/v1/events", type="adapter-merged", after=after, limit=10_000)
        found |= {e["event"]["output_sha256"] for e in page["events"] if e["event"].get("output_kind") == "model"}
        if len(page["events"]) < 10_000:
            break
        after = page["next_after"]
    matches = sorted(m for m in found if m.startswith(prefix))
    if len(matches) > 1:
        raise click.BadParameter(f"merged model prefix {prefix!r} is ambiguous: "
                                 f"{', '.join(m[:12] for m in matches[:5])}", param_hint="--model")
    return matches[0] if matches else None


def split_weight(item: str, *, option: str) -> tuple[str, float | None]:
    """`abc123:0.5` -> ("abc123", 0.5); `abc123` -> ("abc123", None)."""
    name, colon, raw = item.rpartition(":")
    if not colon:
        return item, None
    try:
        return name, float(raw)
    except ValueError:
        raise click.BadParameter(f"expected ADAPTER[:WEIGHT] with a number as WEIGHT, got {item!r}",
                                 param_hint=option) from None


def resolve_adapter(c: Client, prefix: str) -> str:
    """The full sha256 of an adapter given by a unique prefix of its hash (from `tunectl adapters list`);
    the daemon looks the prefix up through its index."""
    prefix = prefix.lower()
    if not prefix or not _HEX.match(prefix):
        raise click.BadParameter(f"an adapter is named by (a prefix of) its sha256, got {prefix!r}",
                                 param_hint="ADAPTER")
    return pick_adapter(prefix, [a["sha256"] for a in c.get("/v1/adapters", prefix=prefix, limit=5)["adapters"]])


def pick_adapter(prefix: str, matches: list[str]) -> str:
    """The one adapter among those whose sha256 starts with `prefix`; an error for none or several."""
    if len(matches) == 1:
        return matches[0]
    if not matches and len(prefix) == 64:
        return prefix  # an artifact the adapter list does not know (e.g. produced by a plain job)
    if not matches:
        raise NotFound(f"no adapter {prefix!r}", hint="`tunectl adapters list` shows them")
    raise click.BadParameter(f"adapter prefix {prefix!r} is ambiguous: {', '.join(m[:12] for m in matches[:5])}",
                             param_hint="ADAPTER")


class NotFound(click.ClickException):
    """An unknown adapter, run or workflow named on the command line (exit 4)."""

    exit_code = 4

    def __init__(self, message: str, *, hint: str = ""):
        super().__init__(message + (f"\nHint: {hint}" if hint else ""))


def read_graph_file(path: str) -> dict[str, Any]:
    """A workflow graph from a JSON or YAML file; relative paths among its inputs are made absolute
    against the file's folder (jobs run elsewhere)."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint="FILE") from None
    try:
        graph = json.loads(text) if file.suffix == ".json" else _yaml(text)
    except ValueError as exc:
        raise click.BadParameter(f"{path} is not valid JSON or YAML: {exc}", param_hint="FILE") from None
    if not isinstance(graph, dict):
        raise click.BadParameter(f"{path} must hold a mapping with `nodes`", param_hint="FILE")
    for spec in (graph.get("nodes") or {}).values():
        if isinstance(spec, dict) and isinstance(spec.get("inputs"), dict):
            spec["inputs"] = {k: _anchored(v, file.parent) for k, v in spec["inputs"].items()}
    return graph


def _anchored(value: Any, folder: Path) -> Any:
    if isinstance(value, str) and value.startswith(_RELATIVE):
        return str((folder / os.path.expanduser(value)).resolve())
    return value


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None
