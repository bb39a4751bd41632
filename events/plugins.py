"""Events about plugins being found, loaded, reloaded or failing."""

from __future__ import annotations

from typing import Any

from tunelog.events.base import Event


class PluginLoaded(Event, frozen=True, tag="plugin-loaded"):
    """A plugin passed validation and was registered for the first time (or after a removal)."""

    name: str
    """Plugin name from its manifest."""
    version: str
    """Version string from its manifest."""
    code_hash: str
    """sha256 over every file of the plugin folder: the exact code jobs will run."""
    path: str
    """Folder it was loaded from."""
    source: str
    """`builtin` or `user`."""
    manifest: dict[str, Any]
    """The validated manifest, normalised."""


class PluginReloaded(Event, frozen=True, tag="plugin-reloaded"):
    """A registered plugin changed on disk and its new code passed validation."""

    name: str
    """Plugin name."""
    version: str
    """Version string from its manifest."""
    code_hash: str
    """sha256 of the new code."""
    previous_hash: str
    """sha256 of the code it replaces."""
    path: str
    """Folder it was loaded from."""
    source: str
    """`builtin` or `user`."""
    manifest: dict[str, Any]
    """The validated manifest, normalised."""


class PluginFailed(Event, frozen=True, tag="plugin-failed"):
    """A plugin folder could not be loaded; the previous good version (if any) stays registered."""

    name: str
    """Plugin name (the folder name when the manifest could not be read)."""
    path: str
    """Folder it was loaded from."""
    code_hash: str
    """sha256 of the code that failed."""
    error: str
    """One-line description of what is wrong."""
    problems: list[dict[str, Any]] = []
    """Every manifest problem found, each with `where` and `message`."""
    traceback: str = ""
    """Traceback of the import failure, if the code failed to import."""


class PluginRemoved(Event, frozen=True, tag="plugin-removed"):
    """A plugin folder disappeared from disk."""

    name: str
    """Plugin name."""
    path: str
    """Folder it was loaded from."""
