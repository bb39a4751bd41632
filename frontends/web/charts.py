"""Charts as inline SVG rendered on the server: no chart library, nothing for the browser to fetch.

Each chart carries `data-points` (how many points it draws from) and `data-ts` (the log time
of its newest point) so tests and curious users can see how fresh it is.
"""

from __future__ import annotations

import math
from typing import Any

from reactpy import html, svg
from reactpy.core.vdom import make_vdom_constructor

svg_text = make_vdom_constructor("text")  # reactpy's svg.text takes no children

MAX_DRAWN = 400
"""Longer series are thinned to about this many points (the last point is always drawn)."""


def thin(points: list[tuple[float, float]], limit: int = MAX_DRAWN) -> list[tuple[float, float]]:
    """Every k-th point so that at most ~`limit` remain, keeping the newest."""
    if len(points) <= limit:
        return points
    k = math.ceil(len(points) / limit)
    kept = points[::k]
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]


def fmt(v: float) -> str:
    """A compact number for axis labels and captions."""
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.4g}"


def _scale(points: list[tuple[float, float]], *, width: float, height: float, pad: float) -> str:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    dx, dy = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    return " ".join(f"{pad + (x - x0) / dx * (width - 2 * pad):.1f},{height - pad - (y - y0) / dy * (height - 2 * pad):.1f}"
                    for x, y in points)


def dot(points: list[tuple[float, float]], *, width: float, height: float, r: float) -> list[Any]:
    """A dot in the middle for a series of one point (a polyline through one point draws nothing)."""
    if len(points) != 1:
        return []
    return [svg.circle({"cx": width / 2, "cy": height / 2, "r": r, "fill": "#4fc3f7", "className": "series-point"})]


def line_chart(points: list[tuple[float, float]], *, title: str, ts: float = 0.0, width: int = 520,
               height: int = 150, key: str | None = None) -> Any:
    """A titled line chart of (step, value) points with min/max labels and the latest value."""
    drawn = thin(points)
    last = f"{fmt(points[-1][1])} at step {fmt(points[-1][0])}" if points else "no points yet"
    pad, label = 8, {"fill": "#8b93a7", "fontSize": "10px"}
    body: list[Any] = [svg.rect({"x": 0, "y": 0, "width": width, "height": height, "fill": "#10131a"})]
    if len(drawn) >= 1:
        ys = [p[1] for p in points]
        body += [svg.polyline({"points": _scale(drawn, width=width, height=height, pad=pad), "fill": "none",
                               "stroke": "#4fc3f7", "strokeWidth": 1.8, "className": "series"}),
                 *dot(drawn, width=width, height=height, r=3),
                 svg_text({"x": pad, "y": 12, **label}, f"max {fmt(max(ys))}"),
                 svg_text({"x": pad, "y": height - 2, **label}, f"min {fmt(min(ys))}")]
    return html.figure(
        {"className": "chart", "key": key or title, "data-metric": title, "data-points": str(len(points)),
         "data-ts": f"{ts:.6f}"},
        html.figcaption(html.b(title), f"  {last}"),
        html.svg({"width": width, "height": height, "viewBox": f"0 0 {width} {height}", "role": "img",
                  "aria-label": f"{title} chart"}, *body),
    )


def sparkline(points: list[tuple[float, float]], *, ts: float = 0.0, width: int = 140, height: int = 28) -> Any:
    """A small unlabeled line for tables (e.g. a run's loss)."""
    drawn = thin(points, 120)
    line = [svg.polyline({"points": _scale(drawn, width=width, height=height, pad=2), "fill": "none",
                          "stroke": "#4fc3f7", "strokeWidth": 1.5}),
             *dot(drawn, width=width, height=height, r=2)] if drawn else []
    return html.svg({"className": "spark", "width": width, "height": height, "viewBox": f"0 0 {width} {height}",
                     "data-points": str(len(points)), "data-ts": f"{ts:.6f}"}, *line)
