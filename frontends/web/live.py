"""Live pages: re-render after the daemon commits events, at most a few times a second.

A page calls `use_head(ui)` once; the component then re-renders whenever the log head moves
and reads what it shows from the projections during render. The store notifies on the event
loop the UI shares, so reading the head and starting to wait happen with no commit in between
(nothing is missed); commits during the throttle pause are picked up right after it.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from reactpy import hooks

from tunelog.frontends.web.ui import Ui

MIN_INTERVAL_S = 0.25
"""At most four updates a second per page."""
IDLE_WAIT_S = 5.0


def use_head(ui: Ui, *, interval: float = MIN_INTERVAL_S, enabled: bool = True) -> int:
    """The log head position; the calling component re-renders when it moves (unless disabled)."""
    head, set_head = hooks.use_state(ui.services.store.head)

    @hooks.use_effect(dependencies=[enabled])
    async def follow() -> None:
        if enabled:
            await follow_head(ui, set_head, interval=interval)

    return head


async def follow_head(ui: Ui, publish: Callable[[int], None], *, interval: float = MIN_INTERVAL_S) -> None:
    """Call `publish(head)` after each commit, no more often than every `interval` seconds."""
    store, notifier = ui.services.store, ui.services.notifier
    seen = -1
    while True:
        head = store.head()
        if head != seen:
            seen = head
            publish(head)
            await anyio.sleep(interval)
            continue
        await notifier.wait(IDLE_WAIT_S)
