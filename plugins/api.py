"""The plugin API: every extension point tunelog offers, declared in one place.

A plugin is a folder:

    my_plugin/
      manifest.yaml      name, version, description, operations (typed ports, parameter schema)
      backend.py         one function per operation: `def op(ctx, params, inputs) -> outputs`
      ui_component.py    optional: a ReactPy component for the web UI

The folder is loaded as a package, so `backend.py` may import sibling modules relatively
(`from .recipe import train`). Code runs in a worker process with the user's rights.

Built-in plugins (`tunelog/plugins/*/`) use exactly this mechanism.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

PORT_TYPES = ("dataset", "model", "adapter", "checkpoint", "report", "text", "path", "json", "any")
"""Types a port may declare. `any` connects to everything; otherwise types must match exactly."""

ParamType = Literal["string", "integer", "number", "boolean", "list", "object"]


class ParamSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One parameter of an operation (feeds the API schema, `--help` and the UI form)."""

    type: ParamType
    description: str
    default: Any = msgspec.UNSET
    """Value used when the caller gives none; a parameter without a default is required."""
    choices: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    items: ParamType | None = None
    """Element type of a `list` parameter."""


class PortSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An input or output of an operation."""

    type: str
    description: str
    required: bool = True
    """Inputs only: whether the operation can run without it."""


class OperationSpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One operation a plugin offers; `backend.<name>` implements it."""

    description: str
    resource: Literal["cpu", "gpu", "any"] = "any"
    """`gpu` needs a GPU slot, `cpu` runs on the CPU slot, `any` takes a GPU slot when there is one."""
    inputs: dict[str, PortSpec] = {}
    outputs: dict[str, PortSpec] = {}
    params: dict[str, ParamSpec] = {}
    devices_param: str | None = None
    """Name of the integer parameter that says how many device slots the job takes at once; with
    more than one, the daemon starts the worker under a distributed launcher (accelerate/torchrun)."""

    def devices(self, params: dict[str, Any]) -> int:
        """Slots a job of this operation with these (validated) parameters takes."""
        return int(params.get(self.devices_param, 1)) if self.devices_param else 1


class Manifest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`manifest.yaml` of a plugin."""

    name: str
    version: str
    description: str
    operations: dict[str, OperationSpec]
    ui_component: str | None = None
    """File name of the optional UI component, e.g. `ui_component.py`."""
    presets: str | None = None
    """File name of named parameter presets (YAML: `presets: {name: {description, params}}`) for
    the operations that have a `preset` parameter, e.g. `presets.yaml`."""
    checks: str | None = None
    """File name of the optional checks module, e.g. `checks.py`: for an operation `op`, the daemon
    calls `op(params, inputs, facts) -> (problems, warnings)` at submit, in a throwaway process, and
    refuses the request on any problem. It must import no heavy libraries (it runs on every submit)."""


class JobContext(Protocol):
    """What an operation gets to talk to tunelog. Implemented by the worker process."""

    job_id: str
    """Id of the job running the operation."""
    run_id: str | None
    """Id of the run the job belongs to (None for a job submitted on its own)."""
    workdir: Path
    """Scratch folder of this job; a resumed job gets a fresh one."""
    resume_from: Path | None
    """A checkpoint folder to resume from (read-only), or None for a fresh start."""
    cache_dir: Path
    """Folder for caches shared by every job of this data dir (e.g. a GGUF model converted once)."""

    def progress(self, step: int, total: int | None = None, message: str = "") -> None:
        """Report how far the operation is (batched before it reaches the log)."""

    def metrics(self, step: int, **values: float) -> None:
        """Report metric values at a step (batched; one commit per ~200 ms)."""

    def log(self, message: str) -> None:
        """A line for the job's log, visible with `tunectl logs`."""

    def artifact_path(self, sha256: str) -> Path:
        """Local path of an input artifact (verified, read-only)."""

    def store_artifact(self, name: str, path: Path) -> str:
        """Store a file or folder as the output artifact `name`; returns its sha256."""

    def checkpoint(self, step: int, path: Path) -> str:
        """Store a checkpoint folder the job can be resumed from; returns its sha256."""

    def emit(self, event: Any) -> None:
        """Append a domain event (e.g. run events) to the log through the daemon."""

    def should_stop(self) -> bool:
        """True once cancellation was requested: save a checkpoint and return soon."""
