"""The plugin API: every extension point tunelog offers, declared in one place.

A plugin is a folder:

    my_plugin/
      manifest.yaml      name, version, description, operations (typed ports, parameter schema)
      backend.py         one function per operation: `def op(ctx, params, inputs) -> outputs`
      ui_component.py    optional: `component(api)` returning a ReactPy page for the web UI (api: UiApi);
                         its `TITLE` heads the page and names it in the nav, `NAV_ORDER` places it there

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

    nodes_param: str | None = None
    """Name of the integer parameter that says over how many machines a Ray cluster spreads the
    job's devices (0: wherever they fit)."""
    gpu_type_param: str | None = None
    """Name of the string parameter naming the GPU model a Ray cluster must run the job on."""
    uses_param: str | None = None
    """Name of a list parameter whose values name other plugins' operations (`plugin.operation`)
    that this operation calls inside its job, e.g. GRPO's reward functions. The daemon refuses a
    name that is not a loaded operation at submit, pins each named plugin's code with the run (a
    replay calls the same code), puts its code hash into the node's cache key, and gives the job
    that code through `ctx.operation(name)`."""

    def devices(self, params: dict[str, Any]) -> int:
        """Slots a job of this operation with these (validated) parameters takes."""
        return int(params.get(self.devices_param, 1)) if self.devices_param else 1

    def request(self, params: dict[str, Any]) -> dict[str, Any]:
        """What a job of this operation asks of where it runs: `devices`, `nodes` and `gpu_type`."""
        return {"devices": self.devices(params),
                "nodes": int(params.get(self.nodes_param, 0)) if self.nodes_param else 0,
                "gpu_type": str(params.get(self.gpu_type_param, "")) if self.gpu_type_param else ""}


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
    refuses the request on any problem. It must import no heavy libraries (it runs on every submit).
    `facts` holds `cuda`, `gpu_slots` and `consumers`: the nodes that take this node's outputs
    (`{"node", "op", "port", "output", "params"}` each), e.g. to judge data by the stage that trains on it."""


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

    def operation(self, name: str) -> Any:
        """Another plugin's operation (`plugin.operation`, named in this operation's `uses_param`)
        as the callable `op(ctx, params, inputs) -> outputs`, loaded from the code the run pinned.
        Raises a ValidationError naming it when there is no such operation."""

    def plugin_code(self, plugin: str) -> str:
        """The code hash of a plugin this job calls through `operation` (the one its run pinned)."""


class UiApi(Protocol):
    """What a plugin's `ui_component.component(api)` gets: read the daemon's state, and act only
    through the checked commands every front end uses. Implemented by the web UI, one per plugin.

    Reads return the projections' rows (`tunelog.events.state` / `tunelog.events.run_state`
    structs, read-only); commands raise a `TunelogError` naming every problem (the UI shows it).
    A component builds its page with `reactpy` and the helpers in `kit`; it never imports the
    front end or the daemon."""

    manifest: Manifest
    """The manifest of the plugin this page belongs to (its loaded version)."""
    query: dict[str, str]
    """The page address's query parameters (e.g. `?data=...` from a link of another page)."""
    kit: Any
    """The web UI's view helpers: link, run_link, short, when, badge, table, json_block, field,
    text_input, select, button, use_notice, notice_view, error_notice, ok_notice, warnings_notice,
    act (run a command, show its error), act_async, adapter_picker, run_outcome (a run's state and
    each failed job's whole error)."""

    def use_log_head(self) -> int:
        """A hook (call it at the top of a component): the log position; the component re-renders
        when the log moves, at most a few times a second."""

    def use_form(self, key: str, default: Any) -> tuple[Any, Any]:
        """A hook like reactpy's `use_state` (value, setter taking a value or a function of the old
        one) whose value outlives this component: a reload of the plugin re-renders the page with
        the new code and the form keeps what the user typed."""

    def models(self) -> list[Any]:
        """Registered models (ModelRow: name, ref), by name."""

    def adapters(self, *, limit: int = 50) -> list[Any]:
        """The newest `limit` adapters (AdapterRow), newest first (read through an index, like `runs`)."""

    def runs(self, *, limit: int = 50) -> list[Any]:
        """The newest `limit` runs (RunRow), newest first (read through an index: a long history
        costs nothing here)."""

    def run(self, run_id: str) -> Any | None:
        """One run (RunRow), or None."""

    def job(self, job_id: str) -> Any | None:
        """One job (JobRow), or None."""

    def operations(self) -> dict[str, OperationSpec]:
        """Every loaded operation by `plugin.operation`."""

    def presets(self) -> dict[str, dict[str, Any]]:
        """This plugin's presets by name ({"description", "params"}; empty without a presets file)."""

    def adapter_base(self, sha256: str) -> str:
        """The base model an adapter was trained or merged on ('' if unknown)."""

    def check(self, graph: dict[str, Any]) -> list[tuple[str, str]]:
        """Every problem with a graph's operations, parameters (presets applied) and inputs, as
        (where, message); nothing is submitted. Cheap enough to call on every keystroke."""

    async def submit(self, graph: dict[str, Any], *, label: str = "") -> tuple[str, list[tuple[str, str]]]:
        """Check a graph whole (the same checks as `tunectl workflow submit`, nothing appended when
        refused) and start it as a run: (run id, the checks' warnings)."""

    def upload(self, name: str, data: bytes) -> str:
        """Store a file as a content-addressed artifact (a folder holding `name`), record the upload
        in the log, and return its sha256."""

    def uploads(self) -> list[dict[str, Any]]:
        """Files uploaded so far, newest first: {"sha256", "name", "size", "path", "time"}."""

    def data_dirs(self) -> list[Path]:
        """Folders the user keeps data in (`TUNELOG_DATA_DIRS`, default `TUNELOG_HOME/data`)."""
