"""The click app: the command tree in one visible list, and errors turned into exit codes."""

from __future__ import annotations

from typing import Any

import click

from tunelog.frontends.cli import exits
from tunelog.frontends.cli.client import ApiError, ConnectionLost, DaemonDown


class TunectlGroup(click.Group):
    """A click group that prints daemon errors as `Error: ...` and exits with their code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DaemonDown as exc:
            raise click.exceptions.Exit(exits.fail(exits.daemon_down_line(exc.socket_path, exc.reason),
                                                   exits.DAEMON_DOWN)) from None
        except ApiError as exc:
            raise click.exceptions.Exit(exits.fail(exits.error_lines(exc.error), exits.exit_code(exc.error))) from None
        except ConnectionLost as exc:
            raise click.exceptions.Exit(exits.fail(f"Error: lost the connection to the daemon: {exc}",
                                                   exits.FAILURE)) from None
        except KeyboardInterrupt:
            raise click.exceptions.Exit(exits.INTERRUPTED) from None


@click.group(cls=TunectlGroup, epilog=exits.EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tunelog", prog_name="tunectl")
def cli() -> None:
    """Control the tunelog daemon: train, merge and compare adapters, run workflows, and watch
    runs, jobs, plugins and the event log.

    tunectl talks HTTP to the daemon over its Unix socket (owner only). Start the daemon with
    `tunectl daemon start` (background) or `tunectl daemon run` (foreground).
    """
    # No SIGPIPE tricks here: `daemon run` goes through this group, and a server must survive
    # clients that hang up. click itself exits quietly when our stdout reader goes away.


def _register() -> None:
    from tunelog.frontends.cli.cmd_daemon import daemon
    from tunelog.frontends.cli.cmd_demo import demo
    from tunelog.frontends.cli.cmd_events import events, status
    from tunelog.frontends.cli.cmd_export import export
    from tunelog.frontends.cli.cmd_jobs import jobs
    from tunelog.frontends.cli.cmd_logs import logs
    from tunelog.frontends.cli.cmd_merge import generate, merge
    from tunelog.frontends.cli.cmd_models import adapters, models, presets
    from tunelog.frontends.cli.cmd_plugins import plugins
    from tunelog.frontends.cli.cmd_reproduce import diff, fork, lineage, replay, verify
    from tunelog.frontends.cli.cmd_runs import resume, runs
    from tunelog.frontends.cli.cmd_serve import serve
    from tunelog.frontends.cli.cmd_state import state
    from tunelog.frontends.cli.cmd_train import train
    from tunelog.frontends.cli.cmd_ui import ui
    from tunelog.frontends.cli.cmd_workflow import workflow

    for command in (status, daemon, demo, events, plugins, jobs, logs, train, runs, resume, replay, merge, generate,
                    export, serve, adapters, models, presets, workflow, state, ui):
        cli.add_command(command)
    for command in (verify, diff, lineage, fork):
        runs.add_command(command)


_register()
