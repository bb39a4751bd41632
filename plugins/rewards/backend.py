"""Built-in reward functions for GRPO, written as plugin operations: `op(ctx, params, inputs)`
returns `{"rewards": [float, ...]}`, one per completion in `inputs["completions"]`, with the dataset
row of each completion in `inputs["rows"]` (its columns, e.g. a reference `answer`). The GRPO stage
calls them in its own process for every batch; they can also run as jobs of their own."""

from __future__ import annotations

import re
from typing import Any

from tunelog.events.errors import ValidationError


def exact_match(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """1.0 when a completion equals the row's reference answer (trimmed), else 0.0."""
    completions, rows = _completions(inputs), _rows(inputs)
    column = params.get("answer_column", "answer")
    missing = [i for i, row in enumerate(rows) if column not in row]
    if missing:
        raise ValidationError(f"rewards.exact_match: row {missing[0] + 1} has no {column!r} column",
                              hint="set answer_column to the column holding the reference answer")

    def norm(text: Any) -> str:
        text = str(text).strip()
        return text.lower() if params.get("ignore_case") else text

    return {"rewards": [float(norm(c) == norm(row[column])) for c, row in zip(completions, rows, strict=True)]}


def regex_format(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """1.0 when a completion matches `pattern` (anywhere, or whole with `full_match`), else 0.0."""
    try:
        pattern = re.compile(params.get("pattern", ".+"), re.DOTALL)
    except re.error as e:
        raise ValidationError(f"rewards.regex_format: pattern is not a regular expression: {e}") from e
    match = pattern.fullmatch if params.get("full_match") else pattern.search
    return {"rewards": [float(match(c) is not None) for c in _completions(inputs)]}


def length_penalty(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Minus `per_word` for each word beyond `target_words`; 0 for shorter completions."""
    target, per_word = int(params.get("target_words", 20)), float(params.get("per_word", 0.05))
    return {"rewards": [-per_word * max(0, len(c.split()) - target) for c in _completions(inputs)]}


def _completions(inputs: dict[str, Any]) -> list[str]:
    completions = inputs.get("completions")
    if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
        raise ValidationError("inputs.completions must be a list of strings")
    return completions


def _rows(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    rows = inputs.get("rows") or [{} for _ in _completions(inputs)]
    if len(rows) != len(_completions(inputs)):
        raise ValidationError("inputs.rows must hold one row per completion")
    return list(rows)
