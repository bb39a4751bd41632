"""Where tunelog keeps its state. `TUNELOG_HOME` moves all of it (tests use a temp dir).

Everything is private to its owner: folders 0700, files 0600 (artifacts 0400). The daemon and its
workers run under umask 077, and `ensure` tightens a home made by an older version.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tunelog.events.errors import TunelogError

UMASK = 0o077
"""Files and folders the daemon and its workers create are readable by their owner only."""

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
        """Create the folders, owner-only (0700), and make the home's own files owner-only (0600).

        A runtime folder directly in the shared temp dir (`/tmp/tunelog-<uid>`) is never repaired:
        one that is not a folder we own and only we can open is refused (see `check_private_dir`).
        """
        for d in (self.home, self.artifacts, self.plugin_code, self.user_plugins, self.jobs):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for entry in self.home.iterdir():  # the log and its WAL, daemon.log, ui.json, ...: tighten old ones
            st = entry.lstat()
            if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
                if stat.S_ISDIR(st.st_mode):
                    entry.chmod(0o700)
                elif stat.S_ISREG(st.st_mode):
                    entry.chmod(0o600)
        self.home.chmod(0o700)
        if self.runtime.parent == Path(tempfile.gettempdir()):
            try:
                self.runtime.mkdir(mode=0o700)
            except FileExistsError:
                pass
            check_private_dir(self.runtime)
        else:
            self.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.runtime.chmod(0o700)


def check_private_dir(path: Path) -> None:
    """Refuse a folder in a shared place that another user could have made or can open, as
    ssh-agent and tmux do: it must be a real folder (not a symlink), ours, and mode 0700."""
    st = path.lstat()
    problem = None
    if stat.S_ISLNK(st.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "is not a folder"
    elif st.st_uid != os.getuid():
        problem = f"belongs to another user (uid {st.st_uid}, you are {os.getuid()})"
    elif stat.S_IMODE(st.st_mode) & 0o077:
        problem = f"is open to other users (mode {stat.S_IMODE(st.st_mode):04o}, needs 0700)"
    if problem is not None:
        raise TunelogError(f"refusing the runtime folder {path}: it {problem}",
                           hint=f"if it is yours, `chmod 700 {path}` or remove it; else set XDG_RUNTIME_DIR "
                                "or TUNELOG_HOME to a private place")


def _short_runtime(runtime: Path) -> Path:
    """Unix socket paths are short; fall back to a per-home folder in /tmp when too long."""
    if len(str(runtime / "daemon.sock")) <= _SOCKET_MAX:
        return runtime
    digest = hashlib.sha256(str(runtime).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tunelog-{os.getuid()}-{digest}"
