"""What a model or data reference typed by a user looks like: a hub id or a local path.

Shared by the CLI (which makes paths absolute) and the daemon's submit checks (which refuse a
path that does not exist). Standard library only: the CLI imports it on its light path.
"""

from __future__ import annotations

import re
from pathlib import PurePath

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+(@[\w.\-/]+)?$")
FILE_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".arrow", ".txt",
                           ".yaml", ".yml", ".gguf", ".safetensors", ".bin", ".pt", ".pth"})
"""Suffixes that make a value a file name, never a hub id."""


def looks_like_hub_id(value: str) -> bool:
    """`owner/name[@revision]` without a leading `.`, `/` or `~` and without a file suffix."""
    return bool(HUB_ID.match(value)) and PurePath(value.partition("@")[0]).suffix.lower() not in FILE_SUFFIXES


def looks_like_path(value: str) -> bool:
    """A value a user means as a local path: it starts with `/`, `.` or `~`, has a file suffix, or
    holds a `/` without being a hub id."""
    return value.startswith(("/", ".", "~")) or PurePath(value).suffix.lower() in FILE_SUFFIXES or (
        "/" in value and not looks_like_hub_id(value))
