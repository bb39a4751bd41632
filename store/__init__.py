"""The event log (SQLite, or in memory for fast tests), its projections, and the artifact store.

Names are imported lazily: a worker that only needs the artifact store must not pay for the
event log's imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunelog.store.artifacts import ArtifactStore
    from tunelog.store.base import EventStore
    from tunelog.store.memory import MemoryStore
    from tunelog.store.sqlite import SqliteStore

_WHERE = {"ArtifactStore": "artifacts", "EventStore": "base", "MemoryStore": "memory", "SqliteStore": "sqlite"}
__all__ = ["ArtifactStore", "EventStore", "MemoryStore", "SqliteStore"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"tunelog.store.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'tunelog.store' has no attribute {name!r}")
