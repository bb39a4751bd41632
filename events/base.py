"""Event base class, registry, envelope and schema upcasting.

Every event type is a frozen msgspec Struct with an explicit, stable tag (`"job-queued"`,
never a module path). The tag is stored in the log's `type` column and inside the payload, so
a payload decodes on its own through one tagged union.

A changed shape gets a new `schema_version` and an upcaster from the previous version; rows
already stored are never rewritten, they are upgraded on read.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

import msgspec

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_registry: dict[str, type[Event]] = {}
_upcasters: dict[tuple[str, int], Upcaster] = {}
_decoder: msgspec.json.Decoder[Any] | None = None
_encoder = msgspec.json.Encoder()


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of all events. Subclasses pass `tag="..."` and document every field."""

    schema_version: ClassVar[int] = 1

    @property
    def tag(self) -> str:
        """The stable type name stored in the log."""
        return str(self.__struct_config__.tag)


class Envelope(msgspec.Struct, frozen=True):
    """One stored event and where it sits in the log."""

    position: int
    """Global sequence number, 1-based, gap-free in commit order."""
    stream: str
    """The stream (aggregate) the event belongs to, e.g. `job-01J...`."""
    version: int
    """Position of the event within its stream, 1-based."""
    type: str
    """The event's tag."""
    schema_version: int
    """Schema version the payload was written with (before upcasting)."""
    time: float
    """Unix time of the append, seconds."""
    event: Event
    """The decoded (and upcast) event."""
    command_id: str | None = None
    """The client-chosen id of the command that appended it (idempotency key)."""
    causation_id: str | None = None
    """Id of the command or event that caused this one."""
    correlation_id: str | None = None
    """Id shared by everything that belongs to one user action (a workflow run, say)."""


class Stamped(Protocol):
    """What a fold may read of a stored event: where it sits in the log, when it was appended, and
    the event. `Envelope` has these; a rebuild hands folds the lighter `StampedEvent`."""

    @property
    def position(self) -> int: ...

    @property
    def time(self) -> float: ...

    @property
    def event(self) -> Event: ...


class StampedEvent(msgspec.Struct, frozen=True, gc=False):
    """A stored event with only what folds read (`Stamped`). A rebuild makes millions of these: each
    column it fetches costs per row, and no fold reads an Envelope's stream bookkeeping. gc=False:
    it holds no cycles, so the collector need not track it."""

    position: int
    """Global sequence number (see `Envelope.position`)."""
    time: float
    """Unix time of the append, seconds."""
    event: Event
    """The decoded (and upcast) event."""


def event_types() -> dict[str, type[Event]]:
    """Every event type by tag (all subclasses of Event in the imported modules; importing
    `tunelog.events` imports every module that defines one)."""
    found: dict[str, type[Event]] = {}
    todo = list(Event.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str) or tag == cls.__name__:
            raise TypeError(f"event {cls.__name__} needs an explicit string tag, e.g. tag='job-queued'")
        if tag in found and found[tag] is not cls:
            raise TypeError(f"event tag {tag!r} is used by both {found[tag].__name__} and {cls.__name__}")
        found[tag] = cls
    if len(found) != len(_registry):
        global _decoder
        _registry.clear()
        _registry.update(found)
        _decoder = None
        global _line_decoder
        _line_decoder = None
    return dict(_registry)


def upcaster(tag: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function that turns a payload of `from_version` into `from_version + 1`."""

    def register(fn: Upcaster) -> Upcaster:
        _upcasters[(tag, from_version)] = fn
        return fn

    return register


def encode_payload(event: Event) -> bytes:
    """The payload bytes stored in the log (JSON, tag included)."""
    return _encoder.encode(event)


def decode_payload(tag: str, schema_version: int, payload: bytes | str) -> Event:
    """Decode a stored payload, upcasting it first when it was written with an older schema."""
    global _decoder
    cls = _registry.get(tag) or event_types().get(tag)
    if cls is None:
        raise KeyError(f"unknown event type {tag!r}")
    if schema_version == cls.schema_version:
        if _decoder is None:
            _decoder = msgspec.json.Decoder(type=_union(tuple(event_types().values())))
        return _decoder.decode(payload)  # type: ignore[no-any-return]
    data = msgspec.json.decode(payload)
    for v in range(schema_version, cls.schema_version):
        step = _upcasters.get((tag, v))
        if step is None:
            raise KeyError(f"no upcaster for {tag!r} from schema version {v}")
        data = step(data)
    return msgspec.convert(data, cls)


def decode_stored(versions: Sequence[int], payloads: Sequence[str]) -> list[Event]:
    """Decode stored payloads, given each row's schema version, with one msgspec call (a rebuild
    decodes millions; newline-joined, so no second copy to bracket them).

    A payload written with an older schema either fails that call or decodes to a class whose
    `schema_version` is not its row's; then the batch goes through `decode_payload`, which upcasts."""
    global _line_decoder
    if _line_decoder is None:
        _line_decoder = msgspec.json.Decoder(type=_union(tuple(event_types().values())))
    try:
        events: list[Event] = _line_decoder.decode_lines("\n".join(payloads))
    except msgspec.MsgspecError:
        events = []
    if len(events) == len(payloads) and all(map(operator.eq, versions, map(_schema_version, events))):
        return events
    return [decode_payload(_tag_only.decode(p).type, v, p) for v, p in zip(versions, payloads, strict=True)]


def decode_current(payloads: Sequence[str]) -> list[Event]:
    """Decode stored payloads known to be at their type's current schema version (nothing to
    upcast, so no row's version is needed), with one msgspec call."""
    global _line_decoder
    if _line_decoder is None:
        _line_decoder = msgspec.json.Decoder(type=_union(tuple(event_types().values())))
    events: list[Event] = _line_decoder.decode_lines("\n".join(payloads))
    return events


def current_version(tag: str) -> int | None:
    """The schema version events of this type are written with today (None: no such type)."""
    cls = _registry.get(tag) or event_types().get(tag)
    return None if cls is None else cls.schema_version


class _Tag(msgspec.Struct):
    """A payload's tag alone (decoding skips the other fields)."""

    type: str


_tag_only = msgspec.json.Decoder(_Tag)
_schema_version = operator.attrgetter("schema_version")
_line_decoder: msgspec.json.Decoder[Any] | None = None


def _union(types: tuple[type[Event], ...]) -> Any:
    from typing import Union

    return Union[types]  # noqa: UP007 - a runtime-built union needs the subscript form

