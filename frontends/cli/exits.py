"""Exit codes and the one way errors are written to stderr. Standard library only (light path).

The codes mirror `tunelog.events.errors` (`TunelogError.exit_code`); a test keeps them equal.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs ~3 ms on the light path
if TYPE_CHECKING:
    from typing import Any

OK = 0
FAILURE = 1
INVALID = 2
CONFLICT = 3
NOT_FOUND = 4
PLUGIN_ERROR = 5
JOB_ERROR = 6
DAEMON_DOWN = 69  # EX_UNAVAILABLE (sysexits.h)
INTERRUPTED = 130  # Ctrl-C

BY_CODE = {"invalid": INVALID, "conflict": CONFLICT, "not_found": NOT_FOUND,
           "plugin_error": PLUGIN_ERROR, "job_error": JOB_ERROR}
"""Error envelope `code` -> exit code; any other code exits with FAILURE."""

EPILOG = """\b
Exit codes:
  0    success
  1    other error (daemon internal error, timeout, ...)
  2    invalid input (bad option or value, rejected parameters)
  3    conflict (e.g. a daemon already runs for this data dir)
  4    not found (unknown job, plugin, ...)
  5    plugin error
  6    job error; `logs -f` exits 6 when the job did not succeed, and commands that
       follow a run (train, resume, merge, generate, workflow submit, runs follow)
       when the run did not succeed
  69   the daemon is not running (EX_UNAVAILABLE)
  130  interrupted (Ctrl-C)

\b
Environment:
  TUNELOG_HOME   data dir (default $XDG_DATA_HOME/tunelog); the socket follows it
"""


def exit_code(error: dict[str, Any]) -> int:
    """The exit code for an API error envelope's `error` object."""
    return BY_CODE.get(str(error.get("code", "")), FAILURE)


def error_lines(error: dict[str, Any]) -> list[str]:
    """`Error: message`, one `  - where: message` per problem, then `Hint: ...`."""
    lines = [f"Error: {error.get('message', 'unknown error')}"]
    for p in error.get("problems") or []:
        where, message = p.get("where", ""), p.get("message", "")
        lines.append(f"  - {where}: {message}" if where else f"  - {message}")
    if error.get("hint"):
        lines.append(f"Hint: {error['hint']}")
    return lines


def daemon_down_line(socket_path: str, reason: str = "no socket") -> str:
    """The single line printed when nothing answers on the socket."""
    where = f"no socket at {socket_path}" if reason == "no socket" else f"{reason}: {socket_path}"
    return f"Error: the tunelog daemon is not running ({where}). Start it with: tunectl daemon start"


def fail(lines: list[str] | str, code: int) -> int:
    """Write error lines to stderr and return `code` (callers exit with it)."""
    text = lines if isinstance(lines, str) else "\n".join(lines)
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
    return code
