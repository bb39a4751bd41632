"""`tunectl daemon`: run, start, stop, status, install, uninstall."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tunelog.frontends.cli import cmd_service, exits
from tunelog.frontends.cli import status as light
from tunelog.frontends.cli.client import Client, ConnectionLost, DaemonDown
from tunelog.frontends.cli.common import json_option, print_json

START_WAIT_S = 20.0
STOP_WAIT_S = 30.0


if TYPE_CHECKING:
    from tunelog.daemon.paths import Paths


def _paths() -> Paths:
    from tunelog.daemon.paths import Paths

    return Paths.from_env()


@click.group()
def daemon() -> None:
    """Run, start, stop or install the daemon.

    One daemon serves one data dir (TUNELOG_HOME); its socket lives next to it.
    """


daemon.add_command(cmd_service.install)
daemon.add_command(cmd_service.uninstall)


@daemon.command("run")
@click.option("--log-stderr/--no-log-stderr", default=True, hidden=True,
              help="Also log to stderr (off when started in the background).")
def run(log_stderr: bool) -> None:
    """Run the daemon in the foreground.

    It runs until SIGTERM, Ctrl-C or `tunectl daemon stop`. Exits 3 when a daemon already runs
    for this data dir.
    """
    from tunelog.daemon.main import run_daemon
    from tunelog.events.errors import TunelogError
    from tunelog.frontends.web.server import ui_extension

    try:
        run_daemon(_paths(), to_stderr=log_stderr, extensions=[ui_extension()])
    except TunelogError as exc:  # ConflictError: another daemon holds this data dir
        raise click.exceptions.Exit(exits.fail(exits.error_lines(exc.to_dict()), exc.exit_code)) from None


@daemon.command("start")
def start() -> None:
    """Start the daemon in the background.

    Waits until it answers (at most 20 s), then prints its pid and socket. Does nothing if one
    is running already.
    """
    paths = _paths()
    c = Client(str(paths.socket), timeout=10.0)
    try:
        st = c.get("/v1/status")
        click.echo(f"tunelog daemon already running: pid {st['pid']}, socket {st['socket']}")
        return
    except (DaemonDown, ConnectionLost):
        pass
    paths.ensure()
    with open(paths.log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tunelog.frontends.cli.main", "daemon", "run", "--no-log-stderr"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _tail(paths.log_file)
            raise click.exceptions.Exit(exits.fail(
                [f"Error: the daemon exited during start-up (exit code {proc.returncode}); "
                 f"last lines of {paths.log_file}:", *tail], proc.returncode or exits.FAILURE))
        try:
            st = c.get("/v1/status")
            click.echo(f"tunelog daemon started: pid {st['pid']}, socket {st['socket']}\nlog: {st['log_file']}")
            return
        except (DaemonDown, ConnectionLost):
            time.sleep(0.1)
    raise click.exceptions.Exit(exits.fail(
        f"Error: the daemon (pid {proc.pid}) did not answer within {START_WAIT_S:.0f} s; see {paths.log_file}",
        exits.FAILURE))


@daemon.command("stop")
def stop() -> None:
    """Stop the daemon and wait until it has.

    Running jobs are interrupted (their workers save a checkpoint first). Waits at most 30 s.
    Exits 0 when no daemon is running.
    """
    paths = _paths()
    c = Client(str(paths.socket), timeout=10.0)
    try:
        reply = c.post("/v1/daemon/stop")
    except DaemonDown:
        click.echo("tunelog daemon is not running")
        return
    click.echo(f"stopping tunelog daemon (pid {reply.get('pid')})...")
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        if not _answers(c) and not _locked(paths.lock):
            click.echo("tunelog daemon stopped")
            return
        time.sleep(0.1)
    raise click.exceptions.Exit(exits.fail(
        f"Error: the daemon (pid {reply.get('pid')}) is still running after {STOP_WAIT_S:.0f} s; "
        f"see {paths.log_file}", exits.FAILURE))


@daemon.command("status")
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the daemon's status, also when it is down.

    Like `tunectl status`, but a stopped daemon is a normal answer: it prints `not running` (with
    --json: {"running": false, ...}) on stdout and exits 69.
    """
    paths = _paths()
    try:
        st = Client(str(paths.socket), timeout=10.0).get("/v1/status")
    except DaemonDown as exc:
        if as_json:
            print_json({"running": False, "socket": str(paths.socket), "reason": exc.reason,
                        "data_dir": str(paths.home), "log_file": str(paths.log_file)})
        else:
            click.echo(f"tunelog daemon: not running ({exc.reason}: {paths.socket})\n"
                       f"  data dir  {paths.home}\n  log file  {paths.log_file}")
        ctx.exit(exits.DAEMON_DOWN)
    if as_json:
        print_json({"running": True, **st})
    else:
        click.echo(light.render(st))


def _answers(c: Client) -> bool:
    try:
        c.get("/v1/status")
        return True
    except DaemonDown:
        return False
    except ConnectionLost:
        return True  # shutting down: still there


def _locked(lock: Path) -> bool:
    """True while some process holds the daemon's single-instance lock."""
    try:
        f = open(lock)
    except FileNotFoundError:
        return False
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False


def _tail(path: Path, n: int = 10) -> list[str]:
    try:
        return ["  " + line for line in path.read_text(errors="replace").splitlines()[-n:]]
    except OSError:
        return []



@daemon.group("config")
def config() -> None:
    """The daemon's saved settings ($TUNELOG_HOME/config.json), read when it starts.

    backend: `local` (worker processes on this machine, the default) or `ray://HOST:PORT` (a Ray
    cluster; needs `pip install 'tunelog[ray]'`; TUNELOG_RAY_ADDRESS overrides it). ray_shared: a
    folder every Ray node and this machine reach (artifacts, job folders, plugin code), or an
    fsspec URI such as s3://bucket/prefix (`pip install 'tunelog[s3]'`); default
    $TUNELOG_HOME/ray-shared. ray_max_jobs: jobs kept on the cluster at once (default 4).
    ray_local_ops: comma-separated PLUGIN.OPERATION patterns whose jobs stay on this machine with
    the Ray backend (default `datasets.*`; '' sends every job to the cluster).
    """


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_context
def config_set(ctx: click.Context, key: str, value: str) -> None:
    """Save one setting; restart the daemon for it to take effect."""
    from tunelog.daemon.jobs.backend import write_setting
    from tunelog.events.errors import TunelogError

    try:
        write_setting(_paths(), key, value)
    except TunelogError as exc:
        ctx.exit(exits.fail(exits.error_lines(exc.to_dict()), exc.exit_code))
    click.echo(f"{key} = {value} (restart the daemon to use it: tunectl daemon stop && tunectl daemon start)")


@config.command("get")
@json_option
def config_get(as_json: bool) -> None:
    """Print the saved settings (and the defaults of those never saved)."""
    from tunelog.daemon.jobs.backend import DEFAULTS, read_config

    settings = DEFAULTS | read_config(_paths())
    if as_json:
        print_json(settings)
    else:
        for k, v in sorted(settings.items()):
            click.echo(f"{k} = {v}")
