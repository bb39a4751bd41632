"""Framed messages from a worker process to the daemon, and the spec a worker starts from.

A frame is a 4-byte big-endian length followed by one msgpack-encoded `Message`. The worker
writes frames to the pipe that was its stdout when it started; it points fd 1 at its log first,
so a plugin's `print()` cannot corrupt the channel.

Message kinds (bodies are plain dicts):
- `progress`, `metrics`, `log`, `artifact`, `checkpoint`: what `plugins.context.Context` sends;
- `event`: a domain event from `ctx.emit`, as `{stream, type, schema_version, payload}` where
  `payload` is the event's stored JSON encoding;
- `result`: `{outputs}` when the operation returned;
- `error`: `{error, traceback}` when it raised.
"""

from __future__ import annotations

import os
import struct
import threading
from typing import TYPE_CHECKING, Any

import msgspec

from tunelog.events.errors import JobError

if TYPE_CHECKING:
    from anyio.abc import ByteReceiveStream

MAX_FRAME = 64 << 20
"""Largest body accepted (bytes); a bigger one means the channel is corrupt."""

_HEADER = struct.Struct(">I")


class Message(msgspec.Struct, frozen=True, array_like=True):
    """One message from a worker."""

    kind: str
    body: dict[str, Any]


class WorkerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker needs to run its operation; the daemon writes it to `<job folder>/job.json`."""

    job_id: str
    plugin: str
    operation: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    code_dir: str
    """Snapshot folder of the plugin code (`paths.plugin_code/<code_hash>`)."""
    artifacts: str
    """Root of the artifact store."""
    workdir: str
    """Scratch folder of the job."""
    resume_sha256: str | None = None
    """Checkpoint artifact to resume from; the worker verifies it before use."""
    run_id: str | None = None
    """The run the job belongs to (its events may go to `run-<run_id>`)."""
    cache_dir: str = ""
    """Folder for caches shared by every job of this data dir (e.g. GGUF models converted once)."""
    uses: dict[str, str] = {}
    """Plugin name -> snapshot folder of each other plugin whose operations the job may call."""


def _to_builtin(obj: Any) -> Any:
    """Make numpy/torch scalars and arrays and paths sendable; anything else is a plugin bug.

    `tolist` first: it turns a scalar into a number and an array into a list, where `item` refuses
    an array of more than one value."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    for method in ("tolist", "item"):
        convert = getattr(obj, method, None)
        if callable(convert):
            return convert()
    raise TypeError(f"cannot send a {type(obj).__name__} to the daemon; use plain numbers, strings, lists, dicts")


_encoder = msgspec.msgpack.Encoder(enc_hook=_to_builtin)
_decoder = msgspec.msgpack.Decoder(Message)


def encode_frame(kind: str, body: dict[str, Any]) -> bytes:
    """The bytes of one frame."""
    data = _encoder.encode(Message(kind, body))
    return _HEADER.pack(len(data)) + data


class FrameWriter:
    """Writes frames to a file descriptor (worker side); safe to share between threads."""

    def __init__(self, fd: int):
        self.fd = fd
        self._lock = threading.Lock()

    def send(self, kind: str, body: dict[str, Any]) -> None:
        """Write one whole frame (blocks while the daemon is behind: that is the back-pressure)."""
        view = memoryview(encode_frame(kind, body))
        with self._lock:
            while view:
                view = view[os.write(self.fd, view):]


class FrameReader:
    """Reads frames from a byte stream (daemon side)."""

    def __init__(self, stream: ByteReceiveStream):
        from anyio.streams.buffered import BufferedByteReceiveStream

        self._stream = BufferedByteReceiveStream(stream)

    async def receive(self) -> Message | None:
        """The next message, or None at a clean end of stream; JobError if the channel is corrupt."""
        from anyio import IncompleteRead

        try:
            header = await self._stream.receive_exactly(_HEADER.size)
        except IncompleteRead:
            if self._stream.buffer:
                raise JobError("the worker's message channel ended inside a frame header") from None
            return None
        (size,) = _HEADER.unpack(header)
        if size > MAX_FRAME:
            raise JobError(f"the worker sent a frame of {size} bytes (limit {MAX_FRAME})")
        try:
            data = await self._stream.receive_exactly(size)
        except IncompleteRead:
            raise JobError("the worker's message channel ended inside a frame") from None
        try:
            return _decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise JobError(f"the worker sent an unreadable frame: {exc}") from None
