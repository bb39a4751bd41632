"""Events about the daemon itself."""

from __future__ import annotations

from tunelog.events.base import Event


class DaemonStarted(Event, frozen=True, tag="daemon-started"):
    """The daemon took the single-instance lock and began serving."""

    pid: int
    """Process id of the daemon."""
    version: str
    """tunelog version."""
    data_dir: str
    """Where the log and artifacts live."""
    socket: str
    """Path of the Unix socket it serves on."""


class DaemonStopped(Event, frozen=True, tag="daemon-stopped"):
    """The daemon stopped cleanly (a crash leaves no such event)."""

    pid: int
    """Process id of the daemon."""
    reason: str
    """Why it stopped, e.g. `SIGTERM`."""
