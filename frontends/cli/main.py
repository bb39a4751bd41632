"""Entry point of `tunectl` (console script and `python -m tunelog.frontends.cli.main`).

`tunectl status [--json]` is answered without importing click (the whole call should cost
little more than starting Python); everything else goes through the click app in `app.py`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run tunectl with `argv` (default: the process arguments) and exit with its code."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["status"] and set(args[1:]) <= {"--json"}:
        from tunelog.frontends.cli import status

        sys.exit(status.run(as_json="--json" in args))
    from tunelog.frontends.cli.app import cli

    cli.main(args=args, prog_name="tunectl")


if __name__ == "__main__":
    main()
