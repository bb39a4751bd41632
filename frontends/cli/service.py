"""Start at login: a systemd user unit (Linux) or a launchd LaunchAgent (macOS).

`plan()` renders the file and the commands that enable or disable it; `run_commands()` runs
them, stopping at the first that is missing or fails so the rest can be shown for running by hand.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

UNIT = "tunelog.service"
LABEL = "dev.tunelog.daemon"
PLATFORMS = ("linux", "macos")


class Plan(NamedTuple):
    """What install writes and runs, and what uninstall runs and removes."""

    platform: str
    path: Path
    text: str
    enable: list[list[str]]
    """Run after writing the file (unless --no-enable)."""
    disable: list[list[str]]
    """Run before removing the file."""
    after_remove: list[list[str]]
    """Run after removing the file."""


def current_platform() -> str:
    return "macos" if sys.platform == "darwin" else "linux"


def daemon_command() -> list[str]:
    """The tunectl console script next to this Python if there is one, else `python -m`."""
    script = Path(sys.executable).parent / "tunectl"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "daemon", "run"]
    return [sys.executable, "-m", "tunelog.frontends.cli.main", "daemon", "run"]


def service_env() -> dict[str, str]:
    """Environment the service needs: TUNELOG_HOME (absolute) when it is set."""
    home = os.environ.get("TUNELOG_HOME")
    return {"TUNELOG_HOME": str(Path(home).expanduser().resolve())} if home else {}


def plan(platform: str, directory: Path | None = None) -> Plan:
    """The service definition for `platform` (linux or macos), placed in `directory` or the default."""
    if platform == "linux":
        default = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"
        path = (directory or default).expanduser().absolute() / UNIT
        unit = UNIT if directory is None else str(path)  # systemctl links a unit given by full path
        return Plan("linux", path, systemd_unit(daemon_command(), service_env()),
                    enable=[["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", unit]],
                    disable=[["systemctl", "--user", "disable", "--now", UNIT]],
                    after_remove=[["systemctl", "--user", "daemon-reload"]])
    if platform == "macos":
        path = (directory or Path.home() / "Library" / "LaunchAgents").expanduser().absolute() / f"{LABEL}.plist"
        domain = f"gui/{os.getuid()}"
        return Plan("macos", path, launchd_plist(daemon_command(), service_env(), log=_home() / "launchd.log"),
                    enable=[["launchctl", "bootstrap", domain, str(path)]],
                    disable=[["launchctl", "bootout", domain, str(path)]], after_remove=[])
    raise ValueError(f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}")


def systemd_unit(command: list[str], env: dict[str, str]) -> str:
    """A systemd user unit running the daemon in the foreground, restarted if it fails."""
    lines = [
        "# Written by `tunectl daemon install`; remove with `tunectl daemon uninstall`.",
        "[Unit]",
        "Description=tunelog daemon (local LLM fine-tuning)",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_systemd_quote(a) for a in command),
        *(f"Environment={_systemd_quote(f'{k}={v}', env=True)}" for k, v in env.items()),
        "Restart=on-failure",
        "RestartSec=3",
        "# On SIGTERM the daemon stops its workers itself (they save a checkpoint); leftovers are killed later.",
        "KillMode=mixed",
        "TimeoutStopSec=60",
        "",
        "[Install]",
        "WantedBy=default.target",
    ]
    return "\n".join(lines) + "\n"


def launchd_plist(command: list[str], env: dict[str, str], *, log: Path) -> str:
    """A LaunchAgent started at login and restarted when it exits with an error.

    The daemon writes its own log file; stderr (start-up crashes only) goes to `log`.
    """
    agent: dict[str, object] = {
        "Label": LABEL,
        "ProgramArguments": [*command, "--no-log-stderr"],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Background",
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
    }
    if env:
        agent["EnvironmentVariables"] = env
    return plistlib.dumps(agent, sort_keys=False).decode()


def run_commands(commands: list[list[str]]) -> tuple[list[list[str]], str | None, list[list[str]]]:
    """Run commands in order: (done, why the first failure failed or None, the ones not done)."""
    for i, cmd in enumerate(commands):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except FileNotFoundError:
            return commands[:i], f"{cmd[0]} not found", commands[i:]
        except subprocess.TimeoutExpired:
            return commands[:i], f"`{' '.join(cmd)}` timed out", commands[i:]
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            return commands[:i], f"`{' '.join(cmd)}` failed: {detail[-1] if detail else proc.returncode}", commands[i:]
    return commands, None, []


def _home() -> Path:
    from tunelog.daemon.paths import Paths

    return Paths.from_env().home


def _systemd_quote(arg: str, *, env: bool = False) -> str:
    """Quote one word for a unit line: `%` is a specifier everywhere, `$` expands in ExecStart only."""
    arg = arg.replace("%", "%%") if env else arg.replace("%", "%%").replace("$", "$$")
    if not env and arg and not any(c in arg for c in ' \t"\'\\;'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
