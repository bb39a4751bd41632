"""The installed tunelog version (cheap to import: the CLI's status path uses it)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def tunelog_version() -> str:
    try:
        return version("tunelog")
    except PackageNotFoundError:
        return "0+unknown"
