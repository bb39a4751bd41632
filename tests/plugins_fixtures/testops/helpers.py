"""A sibling module: proves the plugin folder loads as a package (relative imports work)."""

from __future__ import annotations

import time
from typing import Any


def sleep_until_stopped(ctx: Any, seconds: float) -> tuple[float, bool]:
    """Sleep up to `seconds`, returning early once the job is asked to stop."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if ctx.should_stop():
            return time.monotonic() - start, True
        time.sleep(0.01)
    return time.monotonic() - start, False
