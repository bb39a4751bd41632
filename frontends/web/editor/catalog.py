"""The operations the editor offers: every operation of every loaded plugin, from the
`plugins` projection (the same source as `GET /v1/operations`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from tunelog.events.state import PluginRow
from tunelog.plugins.api import OperationSpec
from tunelog.store.tables import Table


@dataclass(frozen=True)
class Operation:
    """One operation: its typed spec (for checks) and its manifest form (for the browser)."""

    name: str
    """`plugin.operation`."""
    plugin: str
    spec: OperationSpec
    schema: dict[str, Any]
    """The manifest's dict: description, inputs, outputs, params (each param with type,
    description, default, choices, minimum, maximum)."""

    def input_type(self, port: str) -> str | None:
        spec = self.spec.inputs.get(port)
        return spec.type if spec else None

    def output_type(self, port: str) -> str | None:
        spec = self.spec.outputs.get(port)
        return spec.type if spec else None


Catalog = dict[str, Operation]


def load_catalog(plugins: Table[PluginRow]) -> Catalog:
    """Every operation of every plugin that has loaded code, by `plugin.operation`."""
    out: Catalog = {}
    for row in sorted(plugins.all(), key=lambda r: r.name):
        if row.code_hash and row.status != "removed":
            out.update(manifest_operations(row.name, row.manifest))
    return out


def manifest_operations(plugin: str, manifest: dict[str, Any]) -> Catalog:
    """The operations of one plugin's manifest (as stored in its row, or read from manifest.yaml)."""
    out: Catalog = {}
    for name, op in (manifest.get("operations") or {}).items():
        try:
            spec = msgspec.convert(op, OperationSpec)
        except msgspec.ValidationError:
            continue  # the plugin manager refuses such manifests; never break the editor on one
        out[f"{plugin}.{name}"] = Operation(name=f"{plugin}.{name}", plugin=plugin, spec=spec, schema=dict(op))
    return out


def browser_schemas(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """What the parameter form needs per operation (description and parameter schema)."""
    return {name: {"description": op.schema.get("description", ""), "params": op.schema.get("params") or {}}
            for name, op in catalog.items()}


def palette(catalog: Catalog) -> list[tuple[str, list[Operation]]]:
    """Operations grouped by plugin, both sorted by name."""
    groups: dict[str, list[Operation]] = {}
    for op in catalog.values():
        groups.setdefault(op.plugin, []).append(op)
    return [(plugin, sorted(ops, key=lambda o: o.name)) for plugin, ops in sorted(groups.items())]
