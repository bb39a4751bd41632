"""The editor's browser bundle (React 19 + @xyflow/react + d3-force in one ESM file), loaded
with `reactpy.web.module_from_file` from the package: nothing is fetched from a CDN.

The bundle is built by `npm ci && npm run build` in `frontends/web` (`make web`) and shipped
in the wheel; when it is missing the editor shows how to build it instead of a blank canvas.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from reactpy import web

BUNDLE = Path(__file__).resolve().parents[1] / "static" / "bundle" / "editor.js"
"""Output of `frontends/web/build.mjs`."""
MODULE_NAME = "tunelog-workflow-editor"
BUILD_HINT = "run `make web` (that is `npm ci && npm run build` in frontends/web), then reload this page"


def canvas_component() -> Any | None:
    """The `WorkflowCanvas` constructor of the bundle, or None when the bundle is not built."""
    try:
        stat = BUNDLE.stat()
    except OSError:
        return None
    return _load(stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _load(mtime_ns: int, size: int) -> Any:
    """Load once per bundle file version. The served name carries the content hash, so a browser
    never runs a cached copy of an older build."""
    digest = hashlib.sha256(BUNDLE.read_bytes()).hexdigest()[:12]
    module = web.module_from_file(f"{MODULE_NAME}-{digest}", BUNDLE, fallback="loading the workflow editor…")
    return web.export(module, "WorkflowCanvas")
