"""The single-instance lock: one daemon per data directory."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from tunelog.events.errors import ConflictError


class InstanceLock:
    """An exclusive flock on `daemon.lock`, holding the owner's pid and socket for error messages."""

    def __init__(self, path: Path, *, socket: Path):
        self.path = path
        self.socket = socket
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        f = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "unknown pid"
            f.close()
            raise ConflictError(f"a tunelog daemon is already running for {self.path.parent} ({owner})",
                                hint="stop it with `tunectl daemon stop`, or set TUNELOG_HOME for another one"
                                ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, socket {self.socket}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
