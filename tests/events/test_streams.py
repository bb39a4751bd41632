"""Stream names are built by one function per kind and read back by `stream_kind`."""

from __future__ import annotations

from tunelog.events.merges import merge_stream
from tunelog.events.streams import (
    DAEMON_STREAM,
    job_stream,
    model_stream,
    plugin_stream,
    run_stream,
    stream_kind,
    workflow_stream,
)


def test_each_kind_names_its_streams_and_reads_back() -> None:
    assert [job_stream("j1"), run_stream("r-1"), workflow_stream("wf"), plugin_stream("p"), model_stream("m")] == \
        ["job-j1", "run-r-1", "workflow-wf", "plugin-p", "model-m"]
    assert [stream_kind(s) for s in (job_stream("j1"), run_stream("r-1"), merge_stream("ab" * 32), DAEMON_STREAM)] == \
        ["job", "run", "merge", "daemon"]
