"""The live-update throttle: commits reach a page at once after a quiet moment, a fast stream is
held to about four updates a second, and the last commit is never left out.

Latencies are compared with a plain follower of the same commit notifier measured in the same
test (the event loop's own wake-up time), never with a constant: a loaded machine slows both."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from tunelog.daemon.services import Notifier
from tunelog.events.plugins import PluginRemoved
from tunelog.frontends.web.live import BURST, MIN_INTERVAL_S, follow_head
from tunelog.store.memory import MemoryStore

pytestmark = pytest.mark.anyio

QUIET_S = BURST * MIN_INTERVAL_S * 1.2
"""Long enough for the throttle's bucket to refill completely."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def live_store() -> tuple[MemoryStore, Any]:
    store, notifier = MemoryStore(), Notifier()
    store.subscribe(notifier.notify)
    return store, SimpleNamespace(services=SimpleNamespace(store=store, notifier=notifier))


def commit(store: MemoryStore) -> None:
    store.append("plugin-x", [PluginRemoved(name="x", path="/nowhere")])


class Published:
    """What a follower published, with the time, and a wait for a given head (bounded)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []
        self._changed = anyio.Event()

    def __call__(self, head: int) -> None:
        self.seen.append((head, time.monotonic()))
        self._changed.set()
        self._changed = anyio.Event()

    async def reached(self, head: int, *, timeout: float = 10.0) -> float:
        """When `head` was published (waits for it, at most `timeout` seconds)."""
        with anyio.fail_after(timeout):
            while not self.seen or self.seen[-1][0] < head:
                await self._changed.wait()
        return next(at for h, at in self.seen if h >= head)


async def plain_follower(store: MemoryStore, ui: Any, publish: Published) -> None:
    """The baseline: wakes on every commit, no throttle."""
    while True:
        await ui.services.notifier.wait(60)
        publish(store.head())


async def test_a_commit_after_a_quiet_moment_is_published_at_once() -> None:
    store, ui = live_store()
    throttled, plain = Published(), Published()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_head, ui, throttled)
        tg.start_soon(plain_follower, store, ui, plain)
        await throttled.reached(0)
        extra = []
        for _ in range(3):
            await anyio.sleep(QUIET_S)  # a quiet moment: the bucket is full again
            commit(store)
            extra.append(await throttled.reached(store.head()) - await plain.reached(store.head()))
        tg.cancel_scope.cancel()
    # Held back by the throttle, an update would come a whole interval after the plain follower's.
    assert max(extra) < MIN_INTERVAL_S / 2, extra


async def test_a_fast_stream_is_throttled_and_its_last_commit_published() -> None:
    store, ui = live_store()
    published = Published()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_head, ui, published)
        await published.reached(0)
        start, t0 = len(published.seen), time.monotonic()
        for _ in range(50):  # about 2 s at 25 commits a second
            commit(store)
            await anyio.sleep(0.04)
        await published.reached(store.head())
        elapsed = time.monotonic() - t0
        tg.cancel_scope.cancel()
    updates = len(published.seen) - start
    # The bucket allows BURST at once, then one per interval over the time the stream took here;
    # unthrottled, each of the 50 commits would be an update.
    assert updates <= elapsed / MIN_INTERVAL_S + BURST + 1, (updates, elapsed)
    assert published.seen[-1][0] == store.head()
