"""Helpers shared by the click commands: the client, `--json`, printing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tunelog.frontends.cli.client import Client

F = TypeVar("F", bound=Callable[..., Any])


def socket_path() -> str:
    """The daemon's socket for the current environment."""
    from tunelog.daemon.paths import Paths

    return str(Paths.from_env().socket)


def client(*, timeout: float | None = None) -> Client:
    """A client for the daemon of the current environment (`TUNELOG_HOME`)."""
    return Client(socket_path()) if timeout is None else Client(socket_path(), timeout=timeout)


def json_option(fn: F) -> F:
    """Add `--json` (machine-readable output) to a read command."""
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(fn)


def print_json(obj: Any, *, lines: bool = False) -> None:
    """Print JSON: indented by default, one compact object per line with `lines`."""
    if lines:
        click.echo(json.dumps(obj, separators=(",", ":")))
    else:
        click.echo(json.dumps(obj, indent=2))
