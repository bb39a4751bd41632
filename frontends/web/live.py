"""Live pages: re-render after the daemon commits events, at most a few times a second.

A page calls `use_head(ui)` once; the component then re-renders whenever the log head moves
and reads what it shows from the projections during render. The store notifies on the event
loop the UI shares, so reading the head and starting to wait happen with no commit in between
(nothing is missed); commits during a throttle pause are picked up right after it.

The throttle is a token bucket: on average at most 1/`interval` updates a second, but an update
that follows a quiet moment goes out at once (a fixed pause after every update would hold back
each event of a steady stream arriving at about that rate by almost the whole pause).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
from reactpy import hooks

from tunelog.frontends.web.ui import Ui

MIN_INTERVAL_S = 0.25
"""On average at most four updates a second per page."""
IDLE_WAIT_S = 5.0
BURST = 2.0
"""Updates that may go out back to back after a quiet moment."""


def use_head(ui: Ui, *, interval: float = MIN_INTERVAL_S, enabled: bool = True) -> int:
    """The log head position; the calling component re-renders when it moves (unless disabled)."""
    head, set_head = hooks.use_state(ui.services.store.head)

    @hooks.use_effect(dependencies=[enabled])
    async def follow() -> None:
        if enabled:
            await follow_head(ui, set_head, interval=interval)

    return head


async def follow_head(ui: Ui, publish: Callable[[int], None], *, interval: float = MIN_INTERVAL_S) -> None:
    """Call `publish(head)` after commits: at once when the bucket has a token, else as soon as it has
    one (tokens refill at one per `interval` seconds, up to BURST)."""
    store, notifier = ui.services.store, ui.services.notifier
    seen, tokens, last = -1, BURST, time.monotonic()
    while True:
        head = store.head()
        if head == seen:
            await notifier.wait(IDLE_WAIT_S)
            continue
        now = time.monotonic()
        tokens, last = min(BURST, tokens + (now - last) / interval), now
        if tokens < 1:
            await anyio.sleep((1 - tokens) * interval)
            continue
        tokens -= 1
        seen = head
        publish(head)
