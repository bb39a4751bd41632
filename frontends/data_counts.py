"""One text for what happened to a run's data rows, shared by `tunectl` and the web run page.

It reads the `report` output of `datasets.prepare` (rows read, used, left out, warnings) and the
`encoding` the trainer adds to its `metrics` output (rows truncated or dropped at max_length),
for example `1,204 alpaca rows: 1,150 used · 40 truncated to max_length 512 · 14 dropped (no response
token within max_length)`. Pure: no I/O, no imports from the daemon or plugins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def data_counts(outputs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Lines about the data of a run, from its nodes' outputs in order: the counts line, then
    warnings. Empty when no node prepared data."""
    outputs = list(outputs)
    report = next((o["report"] for o in outputs if _is_report(o.get("report"))), None)
    if report is None:
        return []
    encodings = [e for o in outputs for e in _encodings(o)]
    parts = _parts(report, encodings)
    fmt = f"{report['format']} " if report.get("format") else ""
    line = f"{report['rows']:,} {fmt}rows: " + " · ".join(parts)
    tools = sum(e.get("tools_in_system") or 0 for e in encodings)
    if tools:
        line += f"; tools of {tools:,} went into a system message (the chat template does not render tools)"
    return [line, *_warnings(report)]


def _is_report(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("rows"), int) and isinstance(value.get("used"), int)


def _encodings(output: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    metrics = output.get("metrics")
    dataset = metrics.get("dataset") if isinstance(metrics, Mapping) else None
    encoding = dataset.get("encoding") if isinstance(dataset, Mapping) else None
    return [e for e in encoding.values() if isinstance(e, Mapping)] if isinstance(encoding, Mapping) else []


def _parts(report: Mapping[str, Any], encodings: list[Mapping[str, Any]]) -> list[str]:
    chat = [e for e in encodings if e.get("kind") == "chat"]
    text = [e for e in encodings if e.get("kind") == "text"]
    def total(key: str) -> int:
        return sum(int(e.get(key) or 0) for e in chat)
    truncated = total("truncated")
    dropped = total("dropped_too_long") + total("dropped_no_target")
    length = next((e["max_length"] for e in encodings if "max_length" in e), None)
    parts = [f"{report['used'] - truncated - dropped:,} used"]
    if truncated:
        parts.append(f"{truncated:,} truncated to max_length {length}")
    if total("dropped_too_long"):
        parts.append(f"{total('dropped_too_long'):,} dropped (longer than max_length {length})")
    if total("dropped_no_target"):
        parts.append(f"{total('dropped_no_target'):,} dropped (no response token within max_length {length})")
    for reason, count in (report.get("dropped") or {}).items():
        parts.append(f"{count:,} left out ({reason})")
    if text:
        parts[0] += f", cut into {sum(int(e.get('chunks') or 0) for e in text):,} chunks of max_length {length}"
        left = sum(int(e.get("tokens_left_out") or 0) for e in text)
        parts[0] += f" (a last {left}-token piece left out)" if left else ""
    return parts


def _warnings(report: Mapping[str, Any]) -> list[str]:
    hit = (report.get("warnings") or {}).get("placeholder")
    if not isinstance(hit, Mapping) or not hit.get("warn"):
        return []
    more = ", ..." if hit["count"] > len(hit["rows"]) else ""
    return [f"warning: {hit['count']:,} rows still hold a template placeholder such as {hit['example']} "
            f"({', '.join(hit['rows'])}{more})"]
