"""Who may talk to the daemon: only processes of the user that runs it.

The socket file is 0600 in a 0700 folder, and each connection's peer uid is checked as well
(SO_PEERCRED on Linux, getpeereid on macOS), so a permissive umask or a copied socket path
cannot open the daemon to other users.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from typing import Any

log = logging.getLogger("tunelog.peer")


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process on the other end of a Unix socket, or None if it cannot be told."""
    if hasattr(socket, "SO_PEERCRED"):
        # struct ucred: a signed pid_t, then unsigned uid_t and gid_t (a uid from 2**31 up is positive)
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("iII"))
        _pid, uid, _gid = struct.unpack("iII", creds)
        return int(uid)
    getpeereid = getattr(os, "getpeereid", None)  # macOS / BSD, when Python exposes it
    if getpeereid is not None:
        return int(getpeereid(sock.fileno())[0])
    return None


def peer_allowed(sock: socket.socket, *, own_uid: int | None = None) -> bool:
    """True when the peer runs as `own_uid` (default: our uid). Unknown peers are refused."""
    if sock.family != socket.AF_UNIX:
        return True  # TCP (web UI) is guarded by its token and Host/Origin checks instead
    uid = peer_uid(sock)
    expected = os.getuid() if own_uid is None else own_uid
    return uid is not None and uid == expected


def checked_protocol(base: type[Any]) -> type[asyncio.Protocol]:
    """Wrap a uvicorn HTTP protocol class so connections from other users are closed at once."""

    class PeerChecked(base):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None and not peer_allowed(sock):
                log.warning("refused a connection from uid %s", peer_uid(sock))
                transport.close()

    return PeerChecked


def bind_unix_socket(path: os.PathLike[str] | str) -> socket.socket:
    """Create the daemon's listening socket with mode 0600 (its folder must be 0700)."""
    path = os.fspath(path)
    if os.path.exists(path):
        os.unlink(path)  # stale: the caller holds the single-instance lock
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock
