"""Who may talk to the web UI: the local user's browser, and nothing else.

The UI listens on 127.0.0.1, but any web page the user visits can make their browser send
requests there, and a DNS-rebinding page can even make them look same-origin. So every request
and websocket must pass three checks, in this order (a pure ASGI middleware, `LocalGuard`):

1. Host is `127.0.0.1:PORT` or `localhost:PORT` (a rebinding page carries its own name);
2. Origin, when a browser sends one, is ours; websockets must send it (browsers always do), so
   no other site can open the live connection with the user's cookie;
3. the secret token: the `tunelog_ui` cookie or `Authorization: Bearer TOKEN`.

The token is re-read from its file when the file changes: `tunectl ui --rotate-token` writes a
new one, and from then on the old token and every cookie holding it are refused (a page already
open keeps its live connection until it is closed or reloaded).

`GET /any/path?token=TOKEN` trades the token for the cookie (HttpOnly, SameSite=Strict) and
redirects to the same path without it, so the token does not stay in the address bar or history.
The redirect goes only to a path on this origin: percent-encoded, with a single leading slash, so
`//evil.example/?token=...` lands on `/evil.example/` here, never on another host.
Refusals: 403 for a wrong Host or Origin, 400 for a path with control characters (a decoded
CR, LF, NUL or tab), 401 for a missing or wrong token; a refused websocket
is closed before it is accepted (the server answers the handshake with 403).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "tunelog_ui"
TOKEN_FILE = "ui-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIE_MAX_AGE = 30 * 24 * 3600
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""Characters no page path of ours holds: such a request is refused with 400."""
_PATH_SAFE = "/-._~!$&'()*+,;=:@"
"""Characters a path keeps as they are (RFC 3986 pchar and '/'); everything else is percent-encoded."""


def load_or_create_token(home: Path) -> str:
    """The UI token stored in `home/ui-token` (owner read/write only), created on first use."""
    path = home / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # tighten a file copied in with looser rights
        token = path.read_text().strip()
        if len(token) >= 32:
            return token
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def rotate_token(home: Path) -> str:
    """Replace the UI token with a new one (atomically, owner-only); returns it."""
    path = home / TOKEN_FILE
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token


class TokenFile:
    """The current token: the one given, replaced by the file's whenever the file changes."""

    def __init__(self, token: str, path: Path | None = None):
        self._token, self._path = token, path
        self._seen: tuple[int, int, int] | None = None
        if path is not None:
            self.current()

    def current(self) -> str:
        if self._path is None:
            return self._token
        try:
            st = self._path.stat()
        except OSError:
            return self._token  # a missing file changes nothing: never fall back to no token
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._seen:
            text = self._path.read_text().strip()
            if len(text) >= 32:
                self._token = text
            self._seen = key
        return self._token


def content_security_policy(port: int) -> str:
    """Only this server may serve scripts, styles, images and the websocket: no CDN, no framing."""
    ws = f"ws://127.0.0.1:{port} ws://localhost:{port}"
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            f"connect-src 'self' {ws}; font-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


class LocalGuard:
    """ASGI middleware enforcing Host, Origin and token for every HTTP request and websocket."""

    def __init__(self, app: ASGIApp, *, token: str, port: int, token_file: Path | None = None):
        self.app, self.port = app, port
        self.tokens = TokenFile(token, token_file)
        self.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
        self.origins = frozenset(f"http://{h}" for h in self.hosts)
        self.extra_headers = [(b"content-security-policy", content_security_policy(port).encode()),
                              (b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                              # same-origin, not no-referrer: under no-referrer a browser sends
                              # `Origin: null` with a form's POST (the upload form), which check() refuses.
                              (b"referrer-policy", b"same-origin"), (b"cache-control", b"no-store")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        status, why = self.check(kind, scope.get("method", "GET"), headers)
        if status == 0 and _CONTROL.search(scope.get("path") or ""):
            status, why = 400, "the path holds control characters (CR, LF, NUL, tab...)"
        if status == 0 and kind == "http":
            token = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get("token")
            if token is not None and scope.get("method") in SAFE_METHODS:
                await self._login(scope, send, token)
                return
        if status == 0 and not self.authorized(headers):
            status, why = 401, "a valid token is required: run `tunectl ui` to open the UI"
        if status:
            await _refuse(kind, send, status, why)
            return
        await self.app(scope, receive, self._with_headers(send) if kind == "http" else send)

    @property
    def token(self) -> str:
        """The token in force now."""
        return self.tokens.current()

    def check(self, kind: str, method: str, headers: dict[str, str]) -> tuple[int, str]:
        """(0, '') when Host and Origin are acceptable, else (403, reason)."""
        if headers.get("host") not in self.hosts:
            return 403, "this server answers only to 127.0.0.1 and localhost on its own port"
        origin = headers.get("origin")
        if kind == "websocket" and origin not in self.origins:
            return 403, "cross-origin websocket refused"
        if origin is not None and origin not in self.origins and (kind == "websocket" or method not in SAFE_METHODS):
            return 403, "cross-origin request refused"
        return 0, ""

    def authorized(self, headers: dict[str, str]) -> bool:
        """Whether the request carries the token as cookie or bearer credential."""
        bearer = headers.get("authorization", "")
        if bearer[:7].lower() == "bearer " and secrets.compare_digest(bearer[7:].strip().encode(), self.token.encode()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is simply no credential
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and secrets.compare_digest(morsel.value.encode(), self.token.encode())

    async def _login(self, scope: Scope, send: Send, token: str) -> None:
        current = self.token
        if not secrets.compare_digest(token.encode(), current.encode()):
            await _refuse("http", send, 401, "wrong token: run `tunectl ui` for a fresh link")
            return
        rest = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != "token"]
        target = same_origin_path(scope.get("path") or "/") + (f"?{urlencode(rest)}" if rest else "")
        cookie = f"{COOKIE}={current}; HttpOnly; SameSite=Strict; Path=/; Max-Age={COOKIE_MAX_AGE}"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", target.encode("latin-1")), (b"set-cookie", cookie.encode()),
                                (b"content-length", b"0"), *self.extra_headers]})
        await send({"type": "http.response.body", "body": b""})

    def _with_headers(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.extra_headers]}
            await send(message)

        return wrapped


def same_origin_path(path: str) -> str:
    """`path` as a redirect target that stays on this origin: percent-encoded (so no backslash,
    tab, CR/LF or non-ASCII reaches the browser, which would strip or reinterpret them), with one
    leading slash (`//host` and `/\\host` would name another host)."""
    return "/" + quote(path, safe=_PATH_SAFE).lstrip("/")


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers, lower-cased names; the first of repeated headers wins (cookie: joined)."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie" and name in out:
            out[name] += "; " + value
        else:
            out.setdefault(name, value)
    return out


async def _refuse(kind: str, send: Send, status: int, why: str) -> None:
    if kind == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": why[:120]})
        return
    body = f"{status} {why}\n".encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
