"""`tunectl status`: the light path. Standard library only: no click, msgspec, rich or httpx.

`socket_path()` mirrors `tunelog.daemon.paths.Paths.from_env().socket` without importing
pathlib, dataclasses, tempfile and hashlib (together ~25 ms); a test keeps the two equal.
"""

from __future__ import annotations

import json
import os
import sys

from tunelog.frontends.cli import exits
from tunelog.frontends.cli.client import ApiError, Client, DaemonDown

TYPE_CHECKING = False  # typing costs ~3 ms on the light path
if TYPE_CHECKING:
    from typing import Any

_SOCKET_MAX = 100  # as in daemon/paths.py


def socket_path() -> str:
    """The daemon's socket for the current environment (`TUNELOG_HOME`, XDG dirs)."""
    home = os.environ.get("TUNELOG_HOME")
    if home:
        runtime = _clean(os.path.realpath(os.path.expanduser(home))) + "/run"
    else:
        xdg_run = os.environ.get("XDG_RUNTIME_DIR")
        if xdg_run:
            runtime = _clean(xdg_run) + "/tunelog"
        else:
            import tempfile

            runtime = _clean(tempfile.gettempdir()) + f"/tunelog-{os.getuid()}"
    if len(runtime + "/daemon.sock") > _SOCKET_MAX:
        import hashlib
        import tempfile

        digest = hashlib.sha256(runtime.encode()).hexdigest()[:16]
        runtime = _clean(tempfile.gettempdir()) + f"/tunelog-{os.getuid()}-{digest}"
    return runtime + "/daemon.sock"


def _clean(path: str) -> str:
    """Normalise like pathlib does: no empty or `.` parts, no trailing slash."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts)


def fetch(sock: str | None = None) -> dict[str, Any]:
    """GET /v1/status. Raises DaemonDown when nothing answers."""
    return Client(sock or socket_path(), timeout=10.0).get("/v1/status")  # type: ignore[no-any-return]


def duration(seconds: float | None) -> str:
    """A short human duration: 45s, 3m12s, 2h05m, 3d04h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def counts(by_state: dict[str, int], order: tuple[str, ...]) -> str:
    """`2 running, 1 queued` in a fixed order, then any other keys; `none` when empty."""
    keys = [k for k in order if by_state.get(k)] + sorted(k for k in by_state if k not in order and by_state[k])
    return ", ".join(f"{by_state[k]} {k}" for k in keys) or "none"


def render(st: dict[str, Any]) -> str:
    """Human text for a status reply."""
    proj = ", ".join(f"{k} {v}" for k, v in (st.get("projections") or {}).items())
    lines = [
        f"tunelog {st.get('version', '?')}: running, pid {st.get('pid')}, up {duration(st.get('uptime_s'))}",
        f"  socket    {st.get('socket', '')}",
        f"  data dir  {st.get('data_dir', '')}",
        f"  log file  {st.get('log_file', '')}",
        f"  events    {st.get('head', 0)}" + (f" (projections at {proj})" if proj else ""),
        "  jobs      " + counts(st.get("jobs") or {},
                                ("running", "queued", "succeeded", "failed", "cancelled", "interrupted")),
        "  plugins   " + counts(st.get("plugins") or {}, ("loaded", "failed", "removed")),
    ]
    slots = st.get("slots")
    if slots:
        lines.append("  slots     " + _slots(slots))
    backend = st.get("backend") or {}
    if backend.get("kind") == "ray":
        lines += _cluster(backend)
    return "\n".join(lines)


def _cluster(b: dict[str, Any]) -> list[str]:
    """The Ray cluster's lines: address, free CPUs and GPUs, one line per node."""
    if b.get("error"):
        return [f"  backend   ray {b.get('address', '')}: unreachable ({b['error']})"]
    nodes = b.get("nodes") or []
    lines = [f"  backend   ray {b.get('address', '')}: {sum(1 for n in nodes if n.get('alive'))} nodes alive, "
             f"CPUs {b.get('cpus_free', 0):g}/{b.get('cpus', 0):g} free, GPUs {b.get('gpus_free', 0):g}/{b.get('gpus', 0):g} free",
             f"  shared    {b.get('shared', '')}",
             f"  local     {', '.join(b.get('local_ops') or []) or 'none'} (ray_local_ops: these jobs run on this machine)"]
    lines += [f"  node      {n.get('node_id', '')[:12]} {n.get('address', '')} {'alive' if n.get('alive') else 'dead'}, "
              f"{n.get('cpus', 0):g} CPUs, {n.get('gpus', 0):g} GPUs" for n in nodes]
    return lines


def _slots(slots: Any) -> str:
    """`cpu0: free, gpu0: job <id>` from the `{slot: job id or None}` mapping."""
    if not isinstance(slots, dict):
        return str(slots)
    return ", ".join(f"{k}: {'free' if v is None else f'job {v}' if isinstance(v, str) else v}"
                     for k, v in slots.items())


def run(*, as_json: bool) -> int:
    """Print the status; return the exit code (69 when the daemon is not running)."""
    try:
        st = fetch()
    except DaemonDown as exc:
        return exits.fail(exits.daemon_down_line(exc.socket_path, exc.reason), exits.DAEMON_DOWN)
    except ApiError as exc:
        return exits.fail(exits.error_lines(exc.error), exits.exit_code(exc.error))
    except Exception as exc:  # connection broke mid-reply, timeout: one line, not a traceback
        return exits.fail(f"Error: cannot read the daemon's status: {exc}", exits.FAILURE)
    sys.stdout.write((json.dumps(st, indent=2) if as_json else render(st)) + "\n")
    return exits.OK
