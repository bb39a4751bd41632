"""Where tunelog keeps its state. `TUNELOG_HOME` moves all of it (tests use a temp dir)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

_SOCKET_MAX = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


@dataclass(frozen=True)
class Paths:
    """Every file and folder the daemon and its workers use."""

    home: Path
    runtime: Path

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Paths:
        """`home` argument, else `$TUNELOG_HOME`, else `$XDG_DATA_HOME/tunelog` (~/.local/share/tunelog)."""
        given = home or os.environ.get("TUNELOG_HOME")
        if given:
            h = Path(given).expanduser().resolve()
            return cls(home=h, runtime=_short_runtime(h / "run"))
        xdg_data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        xdg_run = os.environ.get("XDG_RUNTIME_DIR")
        runtime = Path(xdg_run) / "tunelog" if xdg_run else Path(tempfile.gettempdir()) / f"tunelog-{os.getuid()}"
        return cls(home=Path(xdg_data) / "tunelog", runtime=_short_runtime(runtime))

    @property
    def db(self) -> Path:
        return self.home / "log.sqlite"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def plugin_code(self) -> Path:
        """Snapshots of plugin folders by code hash: the exact code each job runs."""
        return self.home / "plugin-code"

    @property
    def user_plugins(self) -> Path:
        return self.home / "plugins"

    @property
    def jobs(self) -> Path:
        """One folder per job: its log and scratch space."""
        return self.home / "jobs"

    @property
    def log_file(self) -> Path:
        return self.home / "daemon.log"

    @property
    def lock(self) -> Path:
        return self.home / "daemon.lock"

    @property
    def socket(self) -> Path:
        return self.runtime / "daemon.sock"

    def ensure(self) -> None:
        """Create the folders with owner-only permissions where it matters."""
        for d in (self.home, self.artifacts, self.plugin_code, self.user_plugins, self.jobs):
            d.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.runtime, 0o700)


def _short_runtime(runtime: Path) -> Path:
    """Unix socket paths are short; fall back to a per-home folder in /tmp when too long."""
    if len(str(runtime / "daemon.sock")) <= _SOCKET_MAX:
        return runtime
    digest = hashlib.sha256(str(runtime).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tunelog-{os.getuid()}-{digest}"
