"""A loopback-only network namespace for the calling thread (Linux, root), and the way back.

Ray advertises the machine's own network address even when told 127.0.0.1; inside a namespace
whose only interface is loopback it falls back to 127.0.0.1, so a test cluster stays on this
machine. Processes started from the thread afterwards (the Ray nodes, a daemon) inherit it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000


def why_not() -> str | None:
    """Why a private namespace cannot be made here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if not os.path.exists("/proc/self/ns/net"):
        return "no network namespaces here"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2) to bring up loopback"
    return None


@contextmanager
def loopback_only() -> Iterator[None]:
    """Move this thread into a new network namespace with only `lo` (up); move it back afterwards."""
    libc = ctypes.CDLL(None, use_errno=True)
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            yield
        finally:
            if libc.setns(back, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the first network namespace failed")
    finally:
        os.close(back)
