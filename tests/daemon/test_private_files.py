"""Private by default: everything under TUNELOG_HOME is its owner's alone (folders 0700, files 0600,
artifacts 0400), and a runtime folder in the shared temp dir is refused unless it is ours and
private (as ssh-agent and tmux do)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from tests.daemon.daemon_proc import Daemon
from tests.daemon.test_queue_durable import wait_event
from tunelog.daemon.paths import Paths
from tunelog.events.errors import TunelogError


def modes(root: Path) -> dict[str, int]:
    """Relative path -> permission bits of `root` and everything under it (links not followed)."""
    out = {".": stat.S_IMODE(root.lstat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            out[p.relative_to(root).as_posix()] = stat.S_IMODE(p.lstat().st_mode)
    return out


def test_the_home_and_everything_a_daemon_and_its_jobs_write_is_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    old = os.umask(0o022)  # the daemon must not rely on the user's umask
    try:
        d = Daemon(home, env={"TUNELOG_UI_PORT": "0", "TUNELOG_SLOTS": "cpu0"}).start()
    finally:
        os.umask(old)
    try:
        report = d.submit("outputs", params={"text": "private"})["job_id"]
        assert d.wait_job(report, ("succeeded", "failed"))["state"] == "succeeded"
        count = d.submit("checkpointing", params={"steps": 1000, "step_s": 0.02})["job_id"]
        wait_event(d, f"job-{count}", "job-progress")
        assert d.post(f"/v1/jobs/{count}/cancel", json={}).status_code == 202
        assert d.wait_job(count, ("cancelled", "failed"))["checkpoint_step"] is not None
        running = modes(home)
    finally:
        d.stop()
    after = modes(home)
    seen = running | after
    expected = {"log.sqlite", "log.sqlite-wal", "log.sqlite-shm", "daemon.log", "daemon.lock", "ui.json", "ui-token",
                f"jobs/{report}/worker.log", f"jobs/{report}/job.json", f"jobs/{count}/work"}
    assert expected <= seen.keys(), sorted(expected - seen.keys())
    assert any(p.startswith("plugin-code/") and p.endswith("manifest.yaml") for p in seen)
    artifacts = [p for p in seen if p.startswith("artifacts/sha256/") and p.count("/") >= 3]
    assert any(p.count("/") >= 4 for p in artifacts)  # a folder artifact (the checkpoint) and its files
    assert [(p, f"{m:04o}") for p, m in sorted(seen.items()) if m & 0o077] == []


def test_an_older_homes_open_files_and_folders_are_tightened(tmp_path: Path) -> None:
    paths = Paths.from_env(tmp_path / "home")
    (paths.home / "jobs").mkdir(parents=True, mode=0o755)
    paths.home.chmod(0o755)
    (paths.home / "jobs").chmod(0o755)
    paths.db.write_bytes(b"")
    paths.db.chmod(0o644)
    paths.ensure()
    assert modes(paths.home)["."] == 0o700
    assert {p: m for p, m in modes(paths.home).items() if m & 0o077} == {}


@pytest.fixture
def shared_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No TUNELOG_HOME and no XDG_RUNTIME_DIR: the socket goes to `<tmp>/tunelog-<uid>`; `<tmp>`
    is a fresh folder standing for /tmp."""
    monkeypatch.delenv("TUNELOG_HOME", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    shared = tmp_path / "tmp"
    shared.mkdir(mode=0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    return shared / f"tunelog-{os.getuid()}"


def test_the_runtime_folder_in_the_shared_temp_dir_is_created_private(shared_tmp: Path) -> None:
    paths = Paths.from_env()
    assert paths.runtime == shared_tmp
    paths.ensure()
    st = shared_tmp.lstat()
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    paths.ensure()  # ours and private: used again


@pytest.mark.parametrize(("prepare", "problem"), [
    (lambda p: (p.mkdir(mode=0o700), os.chown(p, 54321, 54321)), "belongs to another user (uid 54321"),
    (lambda p: (p.mkdir(), p.chmod(0o755)), "is open to other users (mode 0755"),
    (lambda p: (p.mkdir(), p.chmod(0o770)), "is open to other users (mode 0770"),
    (lambda p: ((p.parent / "elsewhere").mkdir(mode=0o700), p.symlink_to(p.parent / "elsewhere")),
     "is a symbolic link"),
    (lambda p: p.write_text(""), "is not a folder"),
], ids=["other-owner", "world-readable", "group-open", "symlink", "file"])
def test_a_runtime_folder_someone_else_could_have_made_is_refused_untouched(shared_tmp: Path, prepare: object,
                                                                           problem: str) -> None:
    prepare(shared_tmp)  # type: ignore[operator]
    before = shared_tmp.lstat()
    with pytest.raises(TunelogError) as err:
        Paths.from_env().ensure()
    assert f"refusing the runtime folder {shared_tmp}: it {problem}" in err.value.message
    assert err.value.hint and "XDG_RUNTIME_DIR" in err.value.hint
    after = shared_tmp.lstat()
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)
    assert not (shared_tmp / "daemon.sock").exists()
