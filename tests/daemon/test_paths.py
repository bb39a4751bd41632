"""Where the daemon keeps its files, in process: the default locations, the short-socket fallback,
and what `ensure` creates, tightens and refuses. Written against surviving mutants of daemon/paths.py
(the daemon-process tests exercise the same code, but mutation testing cannot credit them)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from tunelog.daemon.paths import _SOCKET_MAX, Paths
from tunelog.events.errors import TunelogError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_home_defaults_to_xdg_data_home_then_to_local_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNELOG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert Paths.from_env() == Paths(home=tmp_path / "data" / "tunelog", runtime=tmp_path / "run" / "tunelog")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert Paths.from_env().home == tmp_path / "me" / ".local" / "share" / "tunelog"


def test_a_socket_path_of_exactly_the_limit_is_kept_one_longer_moves_to_a_short_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")
    base = str(tmp_path / "h")
    pad = _SOCKET_MAX - len(base + "/x/run/daemon.sock")
    assert pad > 0
    exact = Path(base + "/" + "x" * (pad + 1) + "/run")
    assert len(str(exact / "daemon.sock")) == _SOCKET_MAX
    assert Paths.from_env(exact.parent).runtime == exact
    longer = Paths.from_env(Path(base + "/" + "x" * (pad + 2)))
    assert longer.runtime.parent == Path(tempfile.gettempdir()) and longer.runtime.name.startswith(f"tunelog-{os.getuid()}-")


def test_ensure_makes_owner_only_folders_tightens_open_files_and_leaves_tighter_ones(tmp_path: Path) -> None:
    old = os.umask(0)  # what the folders get must not depend on the caller's umask
    try:
        paths = Paths(home=tmp_path / "home", runtime=tmp_path / "deep" / "er" / "run")
        paths.ensure()
        paths.ensure()  # again: everything exists
    finally:
        os.umask(old)
    for d in (paths.home, paths.artifacts, paths.plugin_code, paths.user_plugins, paths.jobs, paths.runtime):
        assert mode(d) == 0o700, d
    open_file, read_only = paths.home / "daemon.log", paths.home / "ui.json"
    open_file.write_text("x")
    open_file.chmod(0o644)
    read_only.write_text("x")
    read_only.chmod(0o400)
    paths.ensure()
    assert (mode(open_file), mode(read_only)) == (0o600, 0o400)


def test_a_runtime_folder_in_the_shared_temp_dir_that_others_can_open_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    runtime = tmp_path / "tunelog-test"
    runtime.mkdir(mode=0o755)
    runtime.chmod(0o755)
    paths = Paths(home=tmp_path / "home", runtime=runtime)
    with pytest.raises(TunelogError) as refused:
        paths.ensure()
    assert refused.value.message == f"refusing the runtime folder {runtime}: it is open to other users (mode 0755, needs 0700)"
    assert refused.value.hint == (f"if it is yours, `chmod 700 {runtime}` or remove it; else set XDG_RUNTIME_DIR "
                                  "or TUNELOG_HOME to a private place")
    runtime.chmod(0o700)
    paths.ensure()
