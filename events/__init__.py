"""Event types, the envelope that carries them, and the error tree. Data only: no I/O here.

Importing the package imports every module that defines event types (`domain`), so the tagged
union `base.event_types()` builds is complete whichever module a caller imported first.
"""

from tunelog.events import domain  # noqa: F401
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
