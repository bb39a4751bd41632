"""The worker's message channel: frames written by `FrameWriter` to a real pipe and read back by
`FrameReader`, what may be sent, and every way a corrupt channel is refused with a JobError."""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np
import pytest
from anyio.streams.file import FileReadStream

from tunelog.daemon.jobs.protocol import (
    MAX_FRAME,
    FrameReader,
    FrameWriter,
    Message,
    WorkerSpec,
    encode_frame,
)
from tunelog.events.errors import JobError

pytestmark = pytest.mark.anyio


async def read_all(write: Callable[[int], None]) -> list[Message]:
    """What a FrameReader gets from a pipe that `write(fd)` fills (in a thread) and then closes."""
    r, w = os.pipe()

    def writer() -> None:
        try:
            write(w)
        finally:
            os.close(w)

    thread = threading.Thread(target=writer)
    thread.start()
    messages = []
    try:
        async with FileReadStream(os.fdopen(r, "rb", buffering=0)) as stream:
            reader = FrameReader(stream)
            while (msg := await reader.receive()) is not None:
                messages.append(msg)
    finally:
        thread.join()
    return messages


async def read_bytes(data: bytes) -> list[Message]:
    def write(fd: int) -> None:
        os.write(fd, data)

    return await read_all(write)


def test_a_frame_is_a_big_endian_length_then_the_msgpack_message() -> None:
    frame = encode_frame("progress", {"step": 3, "message": "é"})
    body = msgspec.msgpack.encode(["progress", {"step": 3, "message": "é"}])
    assert frame == struct.pack(">I", len(body)) + body
    assert frame[:4] == len(body).to_bytes(4, "big")


def test_paths_and_numpy_values_are_sent_as_plain_values_and_anything_else_is_refused() -> None:
    frame = encode_frame("metrics", {"path": Path("/a/b"), "loss": np.float32(0.5), "step": np.int64(7),
                                     "hist": np.array([1, 2])})
    assert msgspec.msgpack.decode(frame[4:]) == ["metrics", {"path": "/a/b", "loss": 0.5, "step": 7, "hist": [1, 2]}]

    class ListOnly:
        item = "not callable"

        def tolist(self) -> list[int]:
            return [1]

    assert msgspec.msgpack.decode(encode_frame("log", {"x": ListOnly()})[4:]) == ["log", {"x": [1]}]

    class Opaque:
        pass

    with pytest.raises(TypeError) as err:
        encode_frame("log", {"x": Opaque()})
    assert str(err.value) == ("cannot send a Opaque to the daemon; use plain numbers, strings, lists, dicts")


async def test_frames_from_several_threads_arrive_whole_and_in_each_threads_order() -> None:
    def write(fd: int) -> None:
        out = FrameWriter(fd)
        big = "x" * (1 << 20)  # far more than a pipe holds: written in pieces while the reader drains it

        def send(n: int) -> None:
            for i in range(20):
                out.send("log", {"thread": n, "i": i, "line": big if i % 7 == 0 else str(i)})

        threads = [threading.Thread(target=send, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    messages = await read_all(write)
    assert len(messages) == 60
    for n in range(3):
        mine = [m.body for m in messages if m.body["thread"] == n]
        assert [b["i"] for b in mine] == list(range(20))
        assert all(b["line"] == ("x" * (1 << 20) if b["i"] % 7 == 0 else str(b["i"])) for b in mine)


async def test_a_clean_end_between_frames_ends_the_channel() -> None:
    assert await read_bytes(b"") == []
    frames = encode_frame("result", {"outputs": {}}) + encode_frame("error", {"error": "boom"})
    assert await read_bytes(frames) == [Message("result", {"outputs": {}}), Message("error", {"error": "boom"})]


@pytest.mark.parametrize(("data", "message"), [
    (encode_frame("log", {"line": "a"}) + b"\x00\x00", "the worker's message channel ended inside a frame header"),
    (b"\x00", "the worker's message channel ended inside a frame header"),
    (encode_frame("log", {"line": "abc"})[:-1], "the worker's message channel ended inside a frame"),
    (struct.pack(">I", MAX_FRAME), "the worker's message channel ended inside a frame"),  # the limit itself is allowed
    (struct.pack(">I", MAX_FRAME + 1) + b"x" * 10, f"the worker sent a frame of {MAX_FRAME + 1} bytes (limit 67108864)"),
    (struct.pack(">I", 3) + b"\xc1\xc1\xc1", "the worker sent an unreadable frame: "),
    (struct.pack(">I", 1) + msgspec.msgpack.encode(7), "the worker sent an unreadable frame: "),
])
async def test_a_corrupt_channel_is_a_job_error_saying_how(data: bytes, message: str) -> None:
    with pytest.raises(JobError) as err:
        await read_bytes(data)
    assert err.value.message.startswith(message)
    if message.endswith(": "):
        assert len(err.value.message) > len(message), "the decoder's reason is left out"
    else:
        assert err.value.message == message
    assert err.value.__cause__ is None


def test_the_worker_spec_round_trips_through_job_json() -> None:
    spec = WorkerSpec(job_id="j", plugin="p", operation="op", params={"a": 1}, inputs={}, code_dir="/c",
                      artifacts="/a", workdir="/w")
    assert (spec.resume_sha256, spec.run_id, spec.cache_dir, spec.uses) == (None, None, "", {})
    assert msgspec.json.decode(msgspec.json.encode(spec), type=WorkerSpec) == spec
    assert MAX_FRAME == 64 * 1024 * 1024
