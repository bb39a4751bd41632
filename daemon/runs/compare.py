"""Comparison primitives over plain JSON values: the key paths where two values differ, numbers
within a tolerance, artifact hashes, and loss curves. Pure (no I/O); `daemon/runs/verify.py` builds
the verify and diff reports from them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

_SHA256 = re.compile(r"[0-9a-f]{64}")

Diff = dict[str, Any]
"""`{"path", "a", "b"}`; when a key exists on one side only, that side's value and `only_in`."""


@dataclass(frozen=True)
class Tolerance:
    """How far numbers (losses, numeric outputs) may drift and still count as reproduced:
    `|a - b| <= atol + rtol * |a|`, with `a` the baseline."""

    rtol: float = 1e-3
    atol: float = 1e-8

    def close(self, a: float, b: float) -> bool:
        return abs(a - b) <= self.atol + self.rtol * abs(a)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def is_sha256(value: Any) -> bool:
    """True for a content hash: how artifact outputs and inputs are recorded."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def key_diffs(a: Any, b: Any, prefix: str = "") -> list[Diff]:
    """Every key path where two JSON values differ, with both values, in key order."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[Diff] = []
        for k in sorted(set(a) | set(b), key=str):
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in a:
                out.append({"path": path, "b": b[k], "only_in": "b"})
            elif k not in b:
                out.append({"path": path, "a": a[k], "only_in": "a"})
            else:
                out += key_diffs(a[k], b[k], path)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in key_diffs(x, y, f"{prefix}[{i}]")]
    return [] if _same(a, b) else [{"path": prefix or "value", "a": a, "b": b}]


def prefixed(prefix: str, diffs: list[Diff]) -> list[Diff]:
    """The same differences with their paths under `prefix`."""
    return [{**d, "path": f"{prefix}.{d['path']}"} for d in diffs]


TIMING_KEYS = ("elapsed_s", "tokens_per_s", "eta_s", "duration_s", "seconds", "samples_per_s", "wall_s")
"""Output fields that measure the run, not its result: two faithful runs never agree on them."""


def is_timing(path: str) -> bool:
    """Whether an output path names a timing (ignored when comparing results)."""
    leaf = path.rsplit(".", 1)[-1].split("[", 1)[0]
    return leaf in TIMING_KEYS or leaf.endswith(("_per_s", "_seconds"))


def compare_outputs(a: Mapping[str, Any], b: Mapping[str, Any], tol: Tolerance) -> dict[str, Any]:
    """Output ports of one node in two runs: artifacts by hash, numbers within `tol`, the rest
    exactly; timings (`elapsed_s`, `tokens_per_s`, ...) are not results and are left out."""
    artifacts, beyond, within = [], [], []
    for d in key_diffs(a, b):
        if is_timing(d["path"]):
            continue
        if is_sha256(d.get("a")) or is_sha256(d.get("b")):
            artifacts.append(d)
        elif is_number(d.get("a")) and is_number(d.get("b")) and tol.close(d["a"], d["b"]):
            within.append(d)
        else:
            beyond.append(d)
    same = sorted(p for p, v in a.items() if is_sha256(v) and b.get(p) == v)
    return {"artifacts_equal": same, "artifacts_differ": artifacts, "values_differ": beyond,
            "values_within_tolerance": within}


def compare_curves(a: Mapping[int, float], b: Mapping[int, float], tol: Tolerance) -> dict[str, Any] | None:
    """Two loss curves (loss by step); None when neither run recorded one."""
    if not a and not b:
        return None
    common = sorted(set(a) & set(b))
    gaps = [abs(a[s] - b[s]) for s in common]
    exact = dict(a) == dict(b)
    within = set(a) == set(b) and all(tol.close(a[s], b[s]) for s in common)
    return {
        "verdict": "bit-identical" if exact else "within-tolerance" if within else "differs",
        "steps": {"a": len(a), "b": len(b), "compared": len(common)},
        "only_in_a": sorted(set(a) - set(b))[:20],
        "only_in_b": sorted(set(b) - set(a))[:20],
        "max_abs_diff": max(gaps, default=None),
        "first_differing_step": next((s for s in common if a[s] != b[s]), None),
        "last": {"a": a[max(a)] if a else None, "b": b[max(b)] if b else None},
    }


VERDICTS = ("bit-identical", "within-tolerance", "differs")
"""From best to worst; a whole run gets its worst node's verdict."""


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=VERDICTS.index, default="bit-identical")
