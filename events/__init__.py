"""Event types, the envelope that carries them, and the error tree. Data only: no I/O here."""

from tunelog.events.base import Envelope, Event, decode_payload, encode_payload, event_types, upcaster
from tunelog.events.errors import (
    ConflictError,
    JobError,
    NotFoundError,
    PluginError,
    TunelogError,
    ValidationError,
)

__all__ = [
    "ConflictError",
    "Envelope",
    "Event",
    "JobError",
    "NotFoundError",
    "PluginError",
    "TunelogError",
    "ValidationError",
    "decode_payload",
    "encode_payload",
    "event_types",
    "upcaster",
]
