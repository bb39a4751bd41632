"""`tunectl daemon install|uninstall`: rendered into temp dirs for both platforms (click's CliRunner;
nothing is enabled: --no-enable, or a PATH without systemctl)."""

from __future__ import annotations

import plistlib
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tunelog.frontends.cli.app import cli
from tunelog.frontends.cli.service import daemon_command


def invoke(*args: str, env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_systemd_unit(tmp_path: Path) -> None:
    home = tmp_path / "data home"
    code, out = invoke("daemon", "install", "--platform", "linux", "--dir", str(tmp_path / "units"), "--no-enable",
                       env={"TUNELOG_HOME": str(home)})
    unit = tmp_path / "units" / "tunelog.service"
    assert code == 0 and f"wrote {unit}" in out
    assert f"systemctl --user enable --now {unit}" in out  # printed for running by hand
    text = unit.read_text()
    command = daemon_command()
    assert command[-2:] == ["daemon", "run"] and Path(command[0]).is_absolute()
    assert f"\nExecStart={command[0]} daemon run\n" in text or f'\nExecStart="{command[0]}" daemon run\n' in text
    assert f'\nEnvironment="TUNELOG_HOME={home}"\n' in text
    assert "\nRestart=on-failure\n" in text and "\n[Install]\nWantedBy=default.target\n" in text

    code, out = invoke("daemon", "uninstall", "--platform", "linux", "--dir", str(tmp_path / "units"), "--no-disable",
                       env={"TUNELOG_HOME": str(home)})
    assert code == 0 and f"removed {unit}" in out and not unit.exists()
    code, out = invoke("daemon", "uninstall", "--platform", "linux", "--dir", str(tmp_path / "units"), "--no-disable",
                       env={})
    assert code == 0 and "no service file at" in out


def test_launchd_plist(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out = invoke("daemon", "install", "--platform", "macos", "--dir", str(tmp_path / "agents"), "--no-enable",
                       env={"TUNELOG_HOME": str(home)})
    path = tmp_path / "agents" / "dev.tunelog.daemon.plist"
    assert code == 0 and f"wrote {path}" in out and "launchctl bootstrap gui/" in out
    agent = plistlib.loads(path.read_bytes())
    assert agent["Label"] == "dev.tunelog.daemon"
    assert agent["ProgramArguments"] == [*daemon_command(), "--no-log-stderr"]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["EnvironmentVariables"] == {"TUNELOG_HOME": str(home)}
    code, out = invoke("daemon", "uninstall", "--platform", "macos", "--dir", str(tmp_path / "agents"),
                       "--no-disable", env={"TUNELOG_HOME": str(home)})
    assert code == 0 and not path.exists()


def test_no_tunelog_home_means_no_environment_line(tmp_path: Path) -> None:
    code, _ = invoke("daemon", "install", "--platform", "linux", "--dir", str(tmp_path), "--no-enable",
                     env={"TUNELOG_HOME": ""})
    assert code == 0 and "Environment=" not in (tmp_path / "tunelog.service").read_text()


def test_missing_service_manager_prints_the_commands(tmp_path: Path) -> None:
    """Without systemctl on PATH the file is still written, the commands are shown, exit code 0."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    code, out = invoke("daemon", "install", "--platform", "linux", "--dir", str(tmp_path / "units"),
                       env={"PATH": str(empty), "TUNELOG_HOME": str(tmp_path / "h")})
    assert code == 0
    assert "could not finish: systemctl not found" in out
    assert "  systemctl --user daemon-reload\n" in out and "  systemctl --user enable --now " in out


def test_unwritable_dir_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["daemon", "install", "--platform", "linux", "--dir", str(blocker / "sub"),
                                      "--no-enable"])
    assert result.exit_code == 1 and "Error: cannot write" in result.output


def test_python_fallback_when_no_console_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python3"))
    assert daemon_command() == [str(tmp_path / "bin" / "python3"), "-m", "tunelog.frontends.cli.main",
                                "daemon", "run"]
