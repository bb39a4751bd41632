"""The event log (SQLite, or in memory for fast tests), its projections, and the artifact store."""

from tunelog.store.artifacts import ArtifactStore
from tunelog.store.base import EventStore
from tunelog.store.memory import MemoryStore
from tunelog.store.sqlite import SqliteStore

__all__ = ["ArtifactStore", "EventStore", "MemoryStore", "SqliteStore"]
