"""The live-update throttle: commits reach a page at once after a quiet moment, a fast stream is
held to about four updates a second, and the last commit is never left out."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from tunelog.daemon.services import Notifier
from tunelog.events.plugins import PluginRemoved
from tunelog.frontends.web.live import BURST, follow_head
from tunelog.store.memory import MemoryStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def live_store() -> tuple[MemoryStore, Any]:
    store, notifier = MemoryStore(), Notifier()
    store.subscribe(notifier.notify)
    return store, SimpleNamespace(services=SimpleNamespace(store=store, notifier=notifier))


def commit(store: MemoryStore) -> None:
    store.append("plugin-x", [PluginRemoved(name="x", path="/nowhere")])


async def test_a_commit_after_a_quiet_moment_is_published_at_once() -> None:
    store, ui = live_store()
    published: list[tuple[int, float]] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_head, ui, lambda head: published.append((head, time.monotonic())))
        await anyio.sleep(0.6)
        for _ in range(3):
            t0 = time.monotonic()
            commit(store)
            await anyio.sleep(0.4)
            head, at = published[-1]
            assert head == store.head() and at - t0 < 0.05
        tg.cancel_scope.cancel()


async def test_a_fast_stream_is_throttled_and_its_last_commit_published() -> None:
    store, ui = live_store()
    published: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_head, ui, published.append)
        await anyio.sleep(0.05)
        start = len(published)
        for _ in range(50):  # 2 s at 25 commits a second
            commit(store)
            await anyio.sleep(0.04)
        await anyio.sleep(0.4)
        tg.cancel_scope.cancel()
    updates = len(published) - start
    assert updates <= 2 * 4 + BURST + 1, published
    assert published[-1] == store.head()
