"""Events about files a user brought in through the web UI."""

from __future__ import annotations

from tunelog.events.base import Event


class FileUploaded(Event, frozen=True, tag="file-uploaded"):
    """A file was uploaded and stored as a content-addressed artifact (a folder holding the file)."""

    sha256: str
    """The artifact's sha256 (the folder's tree digest)."""
    name: str
    """The file's name as uploaded (kept, so its suffix still tells its format)."""
    size: int
    """Size of the file in bytes."""
    file_sha256: str
    """sha256 of the file's bytes."""
