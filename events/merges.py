"""Lineage events of merges: an adapter folded into a model, or adapters combined into one.

Routing: these events belong to the stream `merge-<output sha256[:16]>`, carried in the
`merge_id` field. A plugin emits them with `ctx.emit(event)`; the job runner appends each event
to the stream its `merge_id` names (never to the job's own stream).
"""

from __future__ import annotations

from typing import Any

import msgspec

from tunelog.events.base import Event

EXACT_COMBINATIONS = frozenset({"cat"})
"""Combination types whose output delta is exactly the weighted sum of the inputs' deltas."""


def merge_stream(output_sha256: str) -> str:
    """The stream a merge's lineage lives in, named by its output artifact."""
    return f"merge-{output_sha256[:16]}"


class MergeInput(msgspec.Struct, frozen=True, kw_only=True):
    """One adapter that went into a merge."""

    sha256: str
    """Content hash of the adapter folder."""
    weight: float = 1.0
    """Weight it was given (always 1.0 for `merge_and_unload`)."""


class AdapterMerged(Event, frozen=True, tag="adapter-merged"):
    """An adapter was merged into a base model, or several adapters were combined into one adapter."""

    merge_id: str
    """Stream of this lineage record: `merge-<output sha256[:16]>`."""
    merge_type: str
    """`merge_and_unload`, or the peft combination type actually applied (`cat`, `linear`, `svd`, `ties`, ...)."""
    inputs: list[MergeInput]
    """The adapters merged, with their weights, in the order given."""
    base_model: dict[str, Any]
    """Identity of the base model the adapters were applied to (reference plus weight hashes)."""
    output_sha256: str
    """Content hash of the result: a full model folder or a peft adapter folder."""
    output_kind: str
    """`model` (merged full model) or `adapter` (combined peft adapter)."""
    exact: bool
    """True when the result's weight update is exactly the (weighted) sum of the inputs' updates.

    Only `merge_and_unload` and `cat` are exact (up to float rounding in the merge dtype); `linear`
    and the ties/dare/magnitude_prune types combine the A and B factors separately, `svd` types are
    rank-truncated approximations, and dare types drop entries at random."""
    density: float | None = None
    """Fraction of entries kept by ties/dare/magnitude_prune types; None where unused."""
    rank: int | None = None
    """LoRA rank of a combined adapter (`cat`: the sum of the inputs' ranks)."""
    dtype: str | None = None
    """Floating dtype the merge was computed and saved in."""
    params: dict[str, Any] = {}
    """Other settings that shaped the result (svd_rank, majority_sign_method, seed, requested type...)."""
    job_id: str | None = None
    """Job that performed the merge."""
