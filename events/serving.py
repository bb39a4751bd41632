"""What an OpenAI-compatible endpoint served (evaluate.serve). Requests are not events; what
answered them is: the base model, each adapter under its name, the backend and library versions.

Routing: the job emits it to its own stream (`job-<job_id>`).
"""

from __future__ import annotations

from typing import Any

from tunelog.events.base import Event


class ModelServed(Event, frozen=True, tag="model-served"):
    """An endpoint started answering on 127.0.0.1."""

    job_id: str
    """Job that runs the endpoint; cancelling it stops the endpoint."""
    base_model: dict[str, Any]
    """Identity of the base model (reference plus weight hashes, or its artifact)."""
    adapters: dict[str, str]
    """Model name a client asks for -> adapter sha256 (`base` is the base with every adapter off)."""
    address: str
    """`http://127.0.0.1:<port>/v1`."""
    backend: str
    """`transformers` (generate) or `vllm`."""
    versions: dict[str, str]
    """Versions of the libraries that generate the answers (torch, transformers, peft, ...)."""
