"""Events of workflows (saved graphs) and runs (one execution of a graph, node by node)."""

from __future__ import annotations

from typing import Any

from tunelog.events.base import Event


class WorkflowSaved(Event, frozen=True, tag="workflow-saved"):
    """A new version of a named workflow graph was saved."""

    name: str
    """Workflow name (the stream is `workflow-<name>`)."""
    version: int
    """1 for the first save, then +1 per save."""
    graph: dict[str, Any]
    """The graph as submitted: `nodes` (id -> op, params, inputs, position) and optional `description`."""


class RunSubmitted(Event, frozen=True, tag="run-submitted"):
    """A graph was accepted for execution; everything needed to run it again is here."""

    run_id: str
    """Run id (the stream is `run-<run_id>`)."""
    graph: dict[str, Any]
    """The validated graph with every node's parameters fully resolved (defaults and presets applied)."""
    order: list[str]
    """Node ids in topological order."""
    code: dict[str, dict[str, str]]
    """Node id -> plugin name, version and code hash it will run, plus `uses.<plugin>` -> code hash
    of each other plugin whose operations the node's job calls (e.g. GRPO reward functions)."""
    workflow: str | None = None
    """Saved workflow name, if the graph came from one."""
    workflow_version: int | None = None
    """Its version."""
    no_cache: bool = False
    """When true, no node is answered from the cache."""
    force: list[str] = []
    """Nodes that must run even when their cache key has a result."""
    replay_of: str | None = None
    """The run this one replays (same recorded graph), for `tunectl replay`."""
    forked_from: dict[str, Any] | None = None
    """`{run, node, step, job}` when this run forks another from a checkpoint."""
    label: str = ""
    """Short human description, e.g. `train SmolLM2 on demo facts`."""


class NodeQueued(Event, frozen=True, tag="node-queued"):
    """A node's job was submitted."""

    run_id: str
    """Run id."""
    node: str
    """Node id."""
    job_id: str
    """The job running it."""
    cache_key: str
    """sha256 of (operation, plugin code hash, resolved params, input values and artifact hashes)."""
    inputs: dict[str, Any]
    """Resolved input values given to the job."""
    input_hashes: dict[str, str] = {}
    """Content hashes of local files or folders given as `path` inputs (they are part of the cache key)."""
    attempt: int = 1
    """1 for the first job of this node, +1 for each resume."""
    resume_of: str | None = None
    """Job whose checkpoint this attempt resumes from."""


class NodeCached(Event, frozen=True, tag="node-cached"):
    """A node was answered from the cache: an earlier job with the same key produced its outputs."""

    run_id: str
    """Run id."""
    node: str
    """Node id."""
    cache_key: str
    """The key that matched."""
    outputs: dict[str, Any]
    """The outputs reused."""
    source_job: str
    """Job that produced them."""


class NodeCompleted(Event, frozen=True, tag="node-completed"):
    """A node's job succeeded."""

    run_id: str
    """Run id."""
    node: str
    """Node id."""
    job_id: str
    """The job."""
    cache_key: str
    """Its cache key (later runs with this key reuse the outputs)."""
    outputs: dict[str, Any]
    """Output port values."""
    output_types: dict[str, str] = {}
    """Output port -> port type (from the manifest), so adapters and models can be listed."""


class NodeFailed(Event, frozen=True, tag="node-failed"):
    """A node's job failed, was cancelled, or was interrupted past its resume budget."""

    run_id: str
    """Run id."""
    node: str
    """Node id."""
    job_id: str
    """The job."""
    state: str
    """Terminal state of the job: `failed`, `cancelled` or `interrupted`."""
    error: str
    """What went wrong."""


class NodeSkipped(Event, frozen=True, tag="node-skipped"):
    """A node will not run because a node it depends on did not complete."""

    run_id: str
    """Run id."""
    node: str
    """Node id."""
    reason: str
    """Which upstream node failed."""


class RunCancelRequested(Event, frozen=True, tag="run-cancel-requested"):
    """Someone asked to cancel a run: queued nodes are skipped, running jobs cancelled."""

    run_id: str
    """Run id."""
    reason: str = "cancelled by user"
    """Why."""


class RunResumed(Event, frozen=True, tag="run-resumed"):
    """Failed, cancelled or interrupted nodes of a finished run are to be run again (from checkpoints)."""

    run_id: str
    """Run id."""
    nodes: list[str]
    """Nodes that will run again."""


class RunFinished(Event, frozen=True, tag="run-finished"):
    """Every node is completed, cached, failed or skipped."""

    run_id: str
    """Run id."""
    state: str
    """`succeeded` when every node completed or was cached, else `failed` or `cancelled`."""


class TrainingStarted(Event, frozen=True, tag="training-started"):
    """Provenance a training job records before its first step: what exactly it trains on."""

    run_id: str
    """Run id."""
    job_id: str
    """The job."""
    params: dict[str, Any]
    """Fully resolved training parameters."""
    seed: int
    """Seed of every random source."""
    libraries: dict[str, str]
    """python, torch, transformers, peft, accelerate, bitsandbytes, tunelog versions."""
    device: dict[str, Any]
    """Device kind, name, capability, thread count, CPU kernel path."""
    model: dict[str, Any]
    """Base model reference and identity: weight, tokenizer and chat template hashes."""
    dataset: dict[str, Any]
    """Dataset artifact hash, source hash and the tokenized result's hash."""
    determinism: dict[str, Any]
    """Deterministic-mode settings in force."""
    resumed_from_step: int | None = None
    """Step of the checkpoint this job resumed from, if any."""
    code: dict[str, str] = {}
    """Other plugins' code the training ran (e.g. GRPO reward plugins): plugin name -> code sha256."""


class ModelAdded(Event, frozen=True, tag="model-added"):
    """A base model was registered under a short name."""

    name: str
    """Short name used in commands (`--model NAME`)."""
    ref: str
    """Local folder, .gguf file or hub id."""
    note: str = ""
    """Free text."""


class ModelRemoved(Event, frozen=True, tag="model-removed"):
    """A registered model name was removed (its files are untouched)."""

    name: str
    """The name."""
