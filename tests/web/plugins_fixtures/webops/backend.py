"""A slow, deterministic loss curve, so a browser can watch a chart grow."""

from __future__ import annotations

import time
from typing import Any


def ticker(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    steps, pause = int(params["steps"]), float(params["step_s"])
    loss = 0.0
    for step in range(1, steps + 1):
        loss = 2.0 / step + 0.1
        ctx.metrics(step, loss=loss, lr=0.001 * (1 - step / steps), tokens_per_s=1000.0 + step)
        ctx.progress(step, steps)
        ctx.log(f"step {step} loss {loss:.4f}")
        if ctx.should_stop():
            break
        time.sleep(pause)
    return {"final_loss": loss}
