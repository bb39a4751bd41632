"""What every page gets: the daemon's services, and the read helpers the pages share.

The UI reads projections and events in-process, on the daemon's event loop, and acts through
the same objects the API uses (`services.runs`, `services.jobs`, `services.plugins`). Per-step
metric points live only in the log (JobMetrics events), so `MetricsCache` keeps each job's points
and the log position it has read up to: a re-render reads only what was appended since.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunelog.events import jobs as J
from tunelog.events.state import JOB_ENDED
from tunelog.events.streams import job_stream

if TYPE_CHECKING:
    from tunelog.daemon.services import Services
    from tunelog.events.run_state import AdapterRow, RunRow

CHART_METRICS = ("loss", "eval_loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                 "log_odds_ratio", "reward", "kl", "completions/mean_length", "lr", "tokens_per_s")
"""Metrics the run page charts, in this order, when a job reports them: every stage's loss, the
preference stages' implicit rewards, margin and accuracy (ORPO's log odds ratio), GRPO's mean
reward (then each reward function's, `rewards/<function>/mean`), KL and completion length."""


def is_reward_function_metric(name: str) -> bool:
    """GRPO's mean reward of one reward function: `rewards/<function>/mean`."""
    parts = name.split("/")
    return len(parts) == 3 and parts[0] == "rewards" and parts[2] == "mean" and bool(parts[1])


def chart_order(seen: set[str]) -> list[str]:
    """The reported metrics to chart, in CHART_METRICS order, each reward function after `reward`."""
    out = []
    for name in CHART_METRICS:
        if name in seen:
            out.append(name)
        if name == "reward":
            out += sorted(m for m in seen if is_reward_function_metric(m))
    return out


@dataclass
class Series:
    """One job's metric points so far, and the log position and time of the last one read."""

    points: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0
    last_time: float = 0.0
    complete: bool = False
    """True once read after the job ended: nothing more can come."""


class MetricsCache:
    """Per-job metric points read incrementally from the log; the least recently used are dropped."""

    def __init__(self, *, max_jobs: int = 256):
        self._jobs: OrderedDict[str, Series] = OrderedDict()
        self.max_jobs = max_jobs

    def series(self, services: Services, job_id: str) -> Series:
        """The job's points up to the current head."""
        s = self._jobs.pop(job_id, None) or Series()
        self._jobs[job_id] = s
        while len(self._jobs) > self.max_jobs:
            self._jobs.popitem(last=False)
        if s.complete:
            return s
        row = services.tables.jobs.get(job_id)
        ended = row is not None and row.state in JOB_ENDED  # checked first: its metrics precede its end
        for env in services.store.read(after=s.position, stream=job_stream(job_id), types=["job-metrics"]):
            if isinstance(env.event, J.JobMetrics):
                s.points.extend(env.event.points)
            s.position, s.last_time = env.position, env.time
        s.complete = ended
        return s

    def curve(self, services: Services, job_ids: list[str], metric: str) -> tuple[list[tuple[float, float]], float]:
        """(step, value) points of one metric over several jobs (a resumed job continues its
        predecessor; a later job's value for a step wins), and the time of the newest point."""
        by_step: dict[float, float] = {}
        newest = 0.0
        for job_id in job_ids:
            s = self.series(services, job_id)
            newest = max(newest, s.last_time)
            for p in s.points:
                value, step = p.get(metric), p.get("step")
                if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(step, int | float):
                    by_step[float(step)] = float(value)
        return sorted(by_step.items()), newest

    def metric_names(self, services: Services, job_ids: list[str]) -> list[str]:
        """Which chart metrics the jobs reported (`chart_order`)."""
        seen: set[str] = set()
        for job_id in job_ids:
            for p in self.series(services, job_id).points:
                seen.update(k for k in p if k in CHART_METRICS or is_reward_function_metric(k))
        return chart_order(seen)


@dataclass
class Ui:
    """The UI's handle on the daemon, shared by every page and connection."""

    services: Services
    metrics: MetricsCache = field(default_factory=MetricsCache)

    def run_jobs(self, run: RunRow) -> list[str]:
        """Every job of every node of a run, in node order."""
        return [j for n in run.order for j in run.nodes[n].jobs]

    def node_jobs(self, run: RunRow, node: str) -> list[str]:
        """The jobs whose work a node's outputs come from (its own, or a cached result's source)."""
        n = run.nodes[node]
        return list(n.jobs) or ([n.job_id] if n.job_id else [])

    def adapter_base(self, adapter: AdapterRow) -> str:
        """The base model an adapter was trained or merged on, as its run recorded it ('' if unknown)."""
        if adapter.source == "merge":
            return str((adapter.base_model or {}).get("ref") or "")
        run = self.services.tables.runs.get(adapter.run_id) if adapter.run_id else None
        node = run.nodes.get(adapter.node) if run is not None and adapter.node else None
        model = node.inputs.get("model") if node is not None else None
        return model if isinstance(model, str) else ""
