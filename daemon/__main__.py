"""`python -m tunelog.daemon`: the daemon alone in the foreground, without the web UI (`tunectl daemon
run` serves the UI beside it)."""

from __future__ import annotations

import sys

from tunelog.daemon.main import run_daemon
from tunelog.daemon.paths import Paths
from tunelog.events.errors import TunelogError

if __name__ == "__main__":
    try:
        run_daemon(Paths.from_env())
    except TunelogError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        sys.exit(exc.exit_code)
