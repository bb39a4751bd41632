"""Runs workflow graphs: submits each node's job when its inputs are ready, answers nodes from
the cache, resumes interrupted nodes from their checkpoints, and records every step.

The executor keeps no state of its own: each pass reads the `runs`, `jobs` and `cache`
projections and appends what follows from them. A crash between two appends loses nothing: a
node's job is submitted with the command id `<run>:<node>:<attempt>`, so doing the pass again
finds the same job instead of starting a second one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from tunelog.daemon.jobs.runner import JobRunner, new_job_id
from tunelog.daemon.plugin_host.manager import PluginManager
from tunelog.daemon.runs.graph import Graph, cache_key, parse_graph, refs_in, substitute, used_plugins
from tunelog.events import runs as R
from tunelog.events.base import Event
from tunelog.events.errors import ConflictError, JobError, NotFoundError, TunelogError, ValidationError
from tunelog.events.run_state import (
    NODE_ACTIVE,
    NODE_AGAIN,
    NODE_DONE,
    NODE_ENDED,
    NodeRow,
    NodeState,
    RunRow,
    RunState,
)
from tunelog.events.state import JOB_ACTIVE, JobState
from tunelog.events.streams import run_stream
from tunelog.plugins.api import OperationSpec
from tunelog.store.artifacts import sha256_file, tree_digest
from tunelog.store.sqlite import SqliteStore
from tunelog.store.tables import Tables

log = logging.getLogger(__name__)

USES = "uses."
"""Prefix of the keys in a node's recorded code that pin the plugins its job calls (`uses.rewards`)."""


def used_code(code: dict[str, str]) -> dict[str, str]:
    """Plugin -> code hash of the other plugins a node's job calls, from its recorded code."""
    return {k.removeprefix(USES): v for k, v in code.items() if k.startswith(USES)}


def path_hashes(op: OperationSpec, inputs: dict[str, Any]) -> dict[str, str]:
    """sha256 of each local file or folder given to a `path` port: an edited data file must not
    be answered from the cache, and a replay must see that it drifted. Anything else there (a FIFO,
    a socket) is refused: reading a FIFO would block the daemon until a writer came."""
    out = {}
    for port, spec in op.inputs.items():
        value = inputs.get(port)
        if spec.type == "path" and isinstance(value, str) and os.path.exists(value):
            p = Path(value)
            if not (p.is_dir() or p.is_file()):
                raise JobError(f"input {port!r} is not a file or folder: {value}")
            try:
                out[port] = tree_digest(p)[0] if p.is_dir() else sha256_file(p)
            except OSError as exc:
                raise JobError(f"cannot read input {port!r} ({value}): {exc.strerror or exc}") from exc
    return out


class RunExecutor:
    """Drives every running run forward; woken after each commit."""

    def __init__(self, store: SqliteStore, plugins: PluginManager, jobs: JobRunner, *, max_resumes: int = 3):
        self.store, self.plugins, self.jobs = store, plugins, jobs
        self.tables = Tables(store)
        self.max_resumes = max_resumes
        self.idle_s = 2.0
        """How long a pass waits for a wake-up (a commit) before it looks again anyway."""
        self._wake = anyio.Event()

    # -- commands ----------------------------------------------------------------------------

    def submit(self, graph: Any, *, command_id: str | None = None, workflow: str | None = None,
               workflow_version: int | None = None, no_cache: bool = False, force: Iterable[str] = (),
               replay_of: str | None = None, forked_from: dict[str, Any] | None = None, label: str = "",
               code: dict[str, dict[str, str]] | None = None) -> RunRow:
        """Validate a graph and start a run of it (RunSubmitted); every problem is reported at once.

        `code` pins each node to a recorded plugin version (replays run the code the original ran);
        by default each node gets the plugin's current version.
        """
        if command_id is not None:  # a retried command: the log answers it (an empty append only looks the id up)
            done = self.store.append(run_stream(""), [], command_id=command_id)
            if done:
                run_id = getattr(done[0].event, "run_id", None)
                if run_id is None:
                    raise ConflictError(f"command id {command_id!r} was already used for another command")
                return self.find(run_id)
        parsed = parse_graph(graph, self.plugins)
        self._check_devices(parsed)
        self._resolve_model_names(parsed)
        force = list(force)
        unknown = [f for f in force if f not in parsed.nodes]
        if unknown:
            raise ValidationError.collect("cannot force unknown nodes", [("force", f"no node {n!r}") for n in unknown])
        run_id = "r" + new_job_id()
        current = {n.id: {"plugin": n.plugin, "version": n.resolved.row.version, "code_hash": n.resolved.row.code_hash,
                          **{USES + p: h for p, h in used_plugins(n, self.plugins).items()}}
                   for n in parsed.nodes.values()}
        code = {**current, **(code or {})}
        self.store.append(run_stream(run_id), [R.RunSubmitted(
            run_id=run_id, graph=parsed.spec(), order=parsed.order, code=code, workflow=workflow,
            workflow_version=workflow_version, no_cache=no_cache, force=force, replay_of=replay_of,
            forked_from=forked_from, label=label or parsed.description)], expected_version=0, command_id=command_id)
        self.wake()
        return self.find(run_id)

    def _check_devices(self, graph: Graph) -> None:
        """Every node asking for several devices must fit this daemon's slots (checked up front)."""
        problems = []
        hints = []
        for node in graph.nodes.values():
            op = node.resolved.op
            if op.devices_param or op.nodes_param or op.gpu_type_param:
                named = {"devices": op.devices_param, "nodes": op.nodes_param, "gpu_type": op.gpu_type_param}
                try:
                    self.jobs.check_devices(resource=op.resource, **op.request(node.params),
                                            where=self.jobs.local_rule(*node.op.split(".", 1)))
                except ValidationError as exc:
                    problems += [(f"nodes.{node.id}.params.{named.get(p['where']) or p['where']}", p["message"])
                                 for p in exc.problems]
                    hints.append(exc.hint)
                except TunelogError as exc:
                    problems.append((f"nodes.{node.id}.params.{op.devices_param}", exc.message))
                    hints.append(exc.hint)
        if problems:
            raise ValidationError.collect("the graph asks for devices this daemon cannot give", problems,
                                          hint=next((h for h in hints if h), None))

    def _resolve_model_names(self, graph: Graph) -> None:
        """A `model` input naming a registered model (`tunectl models add`) becomes its reference,
        so the run records what it really used."""
        for node in graph.nodes.values():
            for port, spec in node.resolved.op.inputs.items():
                value = node.inputs.get(port)
                if spec.type == "model" and isinstance(value, str):
                    row = self.tables.models.get(value)
                    if row is not None:
                        node.inputs[port] = row.ref

    def cancel(self, run_id: str, *, reason: str = "cancelled by user", command_id: str | None = None) -> RunRow:
        row = self.find(run_id)
        if row.state != RunState.RUNNING:
            raise JobError(f"run {row.run_id} is {row.state}; only a running run can be cancelled")
        self.store.append(run_stream(row.run_id), [R.RunCancelRequested(run_id=row.run_id, reason=reason)],
                          command_id=command_id)
        for node in row.nodes.values():
            if node.state in NODE_ACTIVE and node.job_id:
                job = self.tables.jobs.get(node.job_id)
                if job is not None and job.state in JOB_ACTIVE:
                    self.jobs.cancel(node.job_id, reason=f"run cancelled: {reason}")
        self.wake()
        return self.find(row.run_id)

    def resume(self, run_id: str, *, command_id: str | None = None) -> RunRow:
        """Run failed and skipped nodes again; a node whose last job left a checkpoint continues from it."""
        row = self.find(run_id)
        if row.state == RunState.RUNNING:
            raise JobError(f"run {row.run_id} is still running", hint="cancel it first, or wait for it to finish")
        again = [n for n in row.order if row.nodes[n].state in NODE_AGAIN]
        if not again:
            raise JobError(f"run {row.run_id} has nothing to resume: every node completed")
        self.store.append(run_stream(row.run_id), [R.RunResumed(run_id=row.run_id, nodes=again)], command_id=command_id)
        self.wake()
        return self.find(row.run_id)

    def find(self, prefix: str) -> RunRow:
        """A run by id or unique prefix."""
        row = self.tables.runs.get(prefix)
        if row is not None:
            return row
        matches = self.tables.runs.with_prefix(prefix, limit=5) if prefix else []
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(f"no run {prefix!r}", hint="`tunectl runs list` shows them")
        raise ValidationError(f"run id prefix {prefix!r} is ambiguous: {', '.join(r.run_id for r in matches[:5])}")

    # -- the loop ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Advance runs whenever anything commits (the daemon calls `wake` from the store's notifier)."""
        task_status.started()
        while True:
            self._wake = anyio.Event()
            try:
                self.advance()
            except Exception:  # one broken run must not stop the others or the daemon
                log.exception("run executor pass failed")
            with anyio.move_on_after(self.idle_s):
                await self._wake.wait()

    def advance(self) -> None:
        """One pass over every running run; one that cannot advance is logged and the others go on."""
        for row in self.tables.runs.select(order="submitted_position", where={"state": RunState.RUNNING}):
            try:
                self._advance(row)
            except TunelogError as exc:
                log.warning("run %s: %s", row.run_id, exc)
            except Exception:  # damaged data: the runs after it must still advance
                log.exception("run %s: could not advance", row.run_id)

    def _advance(self, row: RunRow) -> None:
        for node_id in row.order:
            events = self._step(row, node_id)
            if events:
                self.store.append(run_stream(row.run_id), events)
                row = self.find(row.run_id)
        if all(n.state in NODE_ENDED for n in row.nodes.values()):
            states = {n.state for n in row.nodes.values()}
            state = (RunState.CANCELLED if row.cancel_requested else
                     RunState.SUCCEEDED if states <= NODE_DONE else RunState.FAILED)
            self.store.append(run_stream(row.run_id), [R.RunFinished(run_id=row.run_id, state=state)])

    def _step(self, row: RunRow, node_id: str) -> list[Event]:
        node = row.nodes[node_id]
        if node.state in NODE_ACTIVE:
            return self._check_job(row, node_id, node)
        if node.state != NodeState.PENDING:
            return []
        if row.cancel_requested:
            return [R.NodeSkipped(run_id=row.run_id, node=node_id, reason="the run was cancelled")]
        spec = row.graph["nodes"][node_id]
        upstream = {r["node"] for v in spec["inputs"].values() for r in refs_in(v)}
        bad = sorted(u for u in upstream if row.nodes[u].state in NODE_AGAIN)
        if bad:
            return [R.NodeSkipped(run_id=row.run_id, node=node_id, reason=f"upstream node {bad[0]!r} did not complete")]
        if any(row.nodes[u].state not in NODE_DONE for u in upstream):
            return []
        return self._start_or_fail(row, node_id, node, spec, job_id="", verb="start")

    def _start_or_fail(self, row: RunRow, node_id: str, node: NodeRow, spec: dict[str, Any], *,
                       job_id: str, verb: str) -> list[Event]:
        """Start (or resume) the node, or fail it saying why it could not (e.g. its plugin is gone),
        so its run ends instead of waiting for ever; while the daemon stops, leave it for the next."""
        try:
            return self._start(row, node_id, node, spec)
        except TunelogError as exc:
            if self.jobs.stopping:  # not the node's fault: the next daemon starts it
                raise
            return [R.NodeFailed(run_id=row.run_id, node=node_id, job_id=job_id, state="failed",
                                 error=f"could not {verb}: {exc.message}")]

    def _start(self, row: RunRow, node_id: str, node: NodeRow, spec: dict[str, Any]) -> list[Event]:
        inputs = {port: substitute(v, lambda node, out: row.nodes[node].outputs.get(out))
                  for port, v in spec["inputs"].items()}
        code = row.code[node_id]
        plugin, operation = spec["op"].split(".")
        op = self.plugins.resolve(plugin, operation).op
        hashes = path_hashes(op, inputs)
        uses = used_code(code)
        key = cache_key(op=spec["op"], code_hash=code["code_hash"], params=spec["params"],
                        inputs={**inputs, **{f"{p}#sha256": h for p, h in hashes.items()}}, uses=uses)
        hit = self.tables.cache.get(key)
        if hit is not None and not node.jobs and not self._must_run(row, node_id):
            return [R.NodeCached(run_id=row.run_id, node=node_id, cache_key=key, outputs=hit.outputs,
                                 source_job=hit.job_id)]
        attempt = node.attempt + 1
        resume_of, checkpoint = self._resume_point(row, node_id, node)
        resource = op.resource
        job = self.jobs.submit(plugin=plugin, operation=operation, params=spec["params"], inputs=inputs,
                               code_hash=code["code_hash"], plugin_version=code["version"], resource=resource,
                               command_id=f"{row.run_id}:{node_id}:{attempt}", run_id=row.run_id,
                               resume_of=resume_of, resume_checkpoint=checkpoint,
                               **op.request(spec["params"]), uses=uses)
        return [R.NodeQueued(run_id=row.run_id, node=node_id, job_id=job.job_id, cache_key=key, inputs=inputs,
                             input_hashes=hashes, attempt=attempt, resume_of=resume_of)]

    def _must_run(self, row: RunRow, node_id: str) -> bool:
        """Whether a node must run even when its key is cached: --no-cache, forced nodes, and
        what a fork changed (the forked node and everything downstream of it)."""
        if row.no_cache or node_id in row.force:
            return True
        fork = (row.forked_from or {}).get("node")
        return fork is not None and (node_id == fork or fork in self._ancestors(row, node_id))

    def _ancestors(self, row: RunRow, node_id: str) -> set[str]:
        out: set[str] = set()
        todo = [node_id]
        while todo:
            spec = row.graph["nodes"][todo.pop()]
            for r in (r for v in spec["inputs"].values() for r in refs_in(v)):
                if r["node"] not in out:
                    out.add(r["node"])
                    todo.append(r["node"])
        return out

    def _resume_point(self, row: RunRow, node_id: str, node: NodeRow) -> tuple[str | None, str | None]:
        """(job, checkpoint) to continue from: the node's own latest job that left a checkpoint,
        else, for the forked node of a fork, the checkpoint it was forked from."""
        for job_id in reversed(node.jobs):
            job = self.tables.jobs.get(job_id)
            if job is not None and job.checkpoint_sha256:
                return job_id, None
        fork = row.forked_from or {}
        if fork.get("node") == node_id and fork.get("checkpoint"):
            return fork["job"], fork["checkpoint"]
        return None, None

    def _resumes(self, node: NodeRow) -> int:
        """How often the node was resumed: interrupted attempts after the first, counting only jobs
        whose worker started (a job a daemon stop caught still queued never ran)."""
        started = [j for j in node.jobs if (job := self.tables.jobs.get(j)) is not None and job.started_at]
        return max(len(started) - 1, 0)

    def _check_job(self, row: RunRow, node_id: str, node: NodeRow) -> list[Event]:
        job = self.tables.jobs.get(node.job_id) if node.job_id else None
        if job is None or job.state in JOB_ACTIVE:
            return []
        if job.state == JobState.SUCCEEDED:
            plugin, operation = row.graph["nodes"][node_id]["op"].split(".")
            try:
                types = {p: s.type for p, s in self.plugins.resolve(plugin, operation).op.outputs.items()}
            except TunelogError:
                types = {}
            return [R.NodeCompleted(run_id=row.run_id, node=node_id, job_id=job.job_id, cache_key=node.cache_key,
                                    outputs=job.outputs, output_types=types)]
        if job.state == JobState.INTERRUPTED and not row.cancel_requested and self._resumes(node) < self.max_resumes:
            # Continues from the job's checkpoint, if any.
            return self._start_or_fail(row, node_id, node, row.graph["nodes"][node_id], job_id=job.job_id, verb="resume")
        return [R.NodeFailed(run_id=row.run_id, node=node_id, job_id=job.job_id, state=job.state,
                             error=job.error or job.state)]
