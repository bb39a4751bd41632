"""`tunectl daemon install|uninstall`: start the daemon at login (systemd user unit or LaunchAgent)."""

from __future__ import annotations

from pathlib import Path

import click

from tunelog.frontends.cli import exits, service

_platform = click.option("--platform", type=click.Choice(service.PLATFORMS), default=service.current_platform,
                         show_default="this machine's",
                         help="Which service manager to write for (linux: systemd, macos: launchd).")
_dir = click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                    help="Folder of the service file (default ~/.config/systemd/user or ~/Library/LaunchAgents).")


@click.command()
@_platform
@_dir
@click.option("--no-enable", is_flag=True, help="Only write the file; do not enable or start the service.")
@click.pass_context
def install(ctx: click.Context, platform: str, directory: Path | None, no_enable: bool) -> None:
    """Start the daemon at login (systemd or launchd).

    Writes a systemd user unit `tunelog.service` (Linux) or a LaunchAgent
    `dev.tunelog.daemon.plist` (macOS) and enables and starts it.
    The daemon then starts at login and is restarted if it fails. If systemctl or launchctl is
    missing or fails, the commands are printed for running by hand (the exit code stays 0).
    """
    plan = service.plan(platform, directory)
    try:
        plan.path.parent.mkdir(parents=True, exist_ok=True)
        plan.path.write_text(plan.text)
    except OSError as exc:
        ctx.exit(exits.fail(f"Error: cannot write {plan.path}: {exc.strerror or exc}", exits.FAILURE))
    click.echo(f"wrote {plan.path}")
    if no_enable:
        _by_hand("to enable it, run", plan.enable)
        return
    _run(plan.enable, "to enable it, run")


@click.command()
@_platform
@_dir
@click.option("--no-disable", is_flag=True, help="Only remove the file; do not stop or disable the service.")
@click.pass_context
def uninstall(ctx: click.Context, platform: str, directory: Path | None, no_disable: bool) -> None:
    """Remove the login service.

    Stops and disables the service written by `tunectl daemon install`, then removes its file.
    """
    plan = service.plan(platform, directory)
    if not no_disable:
        _run(plan.disable, "to disable it, run")
    try:
        plan.path.unlink()
        click.echo(f"removed {plan.path}")
    except FileNotFoundError:
        click.echo(f"no service file at {plan.path}")
    except OSError as exc:
        ctx.exit(exits.fail(f"Error: cannot remove {plan.path}: {exc.strerror or exc}", exits.FAILURE))
    if not no_disable:
        _run(plan.after_remove, "then run")


def _run(commands: list[list[str]], intro: str) -> None:
    done, why, left = service.run_commands(commands)
    for cmd in done:
        click.echo(f"ran  {' '.join(cmd)}")
    if why:
        click.echo(f"could not finish: {why}", err=True)
        _by_hand(intro, left)


def _by_hand(intro: str, commands: list[list[str]]) -> None:
    if commands:
        click.echo(f"{intro}:\n" + "\n".join(f"  {' '.join(cmd)}" for cmd in commands))
