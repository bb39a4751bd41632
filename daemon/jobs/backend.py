"""Where jobs run: local worker processes (the default) or a Ray cluster.

The choice is `backend` in `$TUNELOG_HOME/config.json` (`tunectl daemon config set backend
ray://HOST:PORT`), overridden by `TUNELOG_RAY_ADDRESS`; the daemon reads it when it starts.
Storage every Ray node can reach (artifacts, job folders) is `ray_shared` in the same file or
`TUNELOG_RAY_SHARED`: a shared folder or an fsspec URI such as `s3://bucket/prefix`. With the Ray
backend, operations matching `ray_local_ops` (patterns such as `datasets.*`) still run as local
worker processes. Nothing here imports ray: `require_ray` only
looks for it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from tunelog.daemon.jobs.ray_storage import check_location
from tunelog.daemon.paths import Paths
from tunelog.events.errors import JobError, ValidationError

CONFIG_KEYS = ("backend", "ray_shared", "ray_max_jobs", "ray_local_ops")
"""What `tunectl daemon config set` accepts."""

DEFAULT_LOCAL_OPS = "datasets.*"
"""Operations that stay on this machine with the Ray backend unless `ray_local_ops` says otherwise:
the dataset operations, which need no GPU and read files named on this machine."""

DEFAULTS = {"backend": "local", "ray_local_ops": DEFAULT_LOCAL_OPS}
"""What a setting is when it was never saved (`tunectl daemon config get` shows these too)."""

_OP_PATTERN = re.compile(r"[\w*?-]+\.[\w*?-]+")

INSTALL_RAY = "pip install 'tunelog[ray]'"


@dataclass(frozen=True)
class BackendChoice:
    """The backend a daemon uses: `local`, or `ray` with the cluster's address."""

    kind: str
    address: str = ""
    """What `ray.init(address=...)` gets: `ray://HOST:PORT` (Ray Client) or a cluster's GCS `HOST:PORT`."""
    shared: str | None = None
    """Storage every node and the daemon can read and write (artifacts, plugin code, job folders): an
    absolute folder, or an fsspec URI such as `s3://bucket/prefix`."""
    max_jobs: int = 4
    """Jobs the daemon keeps on the cluster at once (Ray queues what does not fit its resources)."""
    local_ops: tuple[str, ...] = ()
    """`plugin.operation` patterns whose jobs run as local worker processes all the same."""

    def runs_locally(self, plugin: str, operation: str) -> str | None:
        """The `ray_local_ops` pattern that keeps this operation on this machine, or None."""
        return next((p for p in self.local_ops if fnmatchcase(f"{plugin}.{operation}", p)), None)


def config_path(paths: Paths) -> Path:
    return paths.home / "config.json"


def read_config(paths: Paths) -> dict[str, str]:
    """The saved settings (empty when there are none); a damaged file is an error naming it."""
    path = config_path(paths)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}", hint="fix or remove the file") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path} must hold a JSON object", hint="fix or remove the file")
    return {str(k): str(v) for k, v in data.items()}


def check_setting(key: str, value: str) -> str:
    """The normalised value of one setting, or ValidationError naming the key."""
    if key not in CONFIG_KEYS:
        raise ValidationError.collect("unknown setting", [(key, f"settings are {', '.join(CONFIG_KEYS)}")])
    if key == "backend":
        if value != "local" and not (value.startswith("ray://") and _host_port(value[len("ray://"):])):
            raise ValidationError.collect("cannot set the backend", [
                ("backend", f"{value!r} is neither `local` nor `ray://HOST:PORT`")])
        if value != "local":
            require_ray()
    elif key == "ray_shared":
        return check_location(value)
    elif key == "ray_local_ops":
        patterns = local_op_patterns(value)
        bad = [p for p in patterns if not _OP_PATTERN.fullmatch(p)]
        if bad:
            raise ValidationError.collect("cannot set the operations that stay local", [
                ("ray_local_ops", f"{p!r} is not a PLUGIN.OPERATION pattern such as datasets.* or evaluate.run")
                for p in bad])
        return ",".join(patterns)
    elif not value.isdigit() or int(value) < 1:
        raise ValidationError.collect("cannot set the job limit", [("ray_max_jobs", "a whole number >= 1")])
    return value


def write_setting(paths: Paths, key: str, value: str) -> dict[str, str]:
    """Check and save one setting (owner-only file, replaced atomically); returns all settings."""
    config = read_config(paths) | {key: check_setting(key, value)}
    path = config_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return config


def choose_backend(paths: Paths, env: Mapping[str, str] = os.environ) -> BackendChoice:
    """The backend the daemon starts with: `TUNELOG_RAY_ADDRESS`, else the saved `backend`, else local."""
    config = read_config(paths)
    address = env.get("TUNELOG_RAY_ADDRESS", "").strip() or config.get("backend", "local")
    if address == "local":
        return BackendChoice("local")
    require_ray()
    shared = env.get("TUNELOG_RAY_SHARED") or config.get("ray_shared") or str(paths.home / "ray-shared")
    return BackendChoice("ray", address=address, shared=check_location(shared),
                         max_jobs=int(config.get("ray_max_jobs", "4")),
                         local_ops=tuple(local_op_patterns(config.get("ray_local_ops", DEFAULT_LOCAL_OPS))))


def local_op_patterns(value: str) -> list[str]:
    """The patterns of a `ray_local_ops` value (comma-separated; empty: every job goes to the cluster)."""
    return [p.strip() for p in value.split(",") if p.strip()]


def require_ray() -> None:
    """JobError with the install command when ray is not installed."""
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise JobError("the Ray backend needs the `ray` package, which is not installed",
                       hint=f"install it: {INSTALL_RAY} (or set the backend back: "
                            "tunectl daemon config set backend local)")


def _host_port(text: str) -> bool:
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit()
