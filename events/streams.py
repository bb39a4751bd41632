"""Stream names: one function per stream kind, and `stream_kind` to read one back.

A stream is `<kind>-<id>`: `job-<job_id>`, `run-<run_id>`, `workflow-<name>`, `plugin-<name>`,
`model-<name>`, `merge-<output sha256[:16]>` (built by `events.merges.merge_stream`, which
plugins call); the daemon's own life is the one stream `daemon`.
"""

from __future__ import annotations

DAEMON_STREAM = "daemon"
"""The stream of DaemonStarted and DaemonStopped."""


def job_stream(job_id: str) -> str:
    """The stream of one job's lifecycle, logs and metrics."""
    return f"job-{job_id}"


def run_stream(run_id: str) -> str:
    """The stream of one run: submission, node states, finish."""
    return f"run-{run_id}"


def workflow_stream(name: str) -> str:
    """The stream of one saved workflow's versions."""
    return f"workflow-{name}"


def plugin_stream(name: str) -> str:
    """The stream of one plugin's loads, reloads, failures and removal."""
    return f"plugin-{name}"


def model_stream(name: str) -> str:
    """The stream of one named model reference."""
    return f"model-{name}"


def stream_kind(stream: str) -> str:
    """The kind a stream name starts with: `job` for `job-ab12`, `daemon` for `daemon`."""
    return stream.partition("-")[0]
