"""`POST /uploads`: a file from the browser's upload form (multipart/form-data, field `file`),
stored content-addressed and recorded as a `file-uploaded` event; the browser is sent back to
the page in the form's `next` field with `?source=<stored path>`, or with `?upload_error=<why>`
when the file is refused (too large, empty, no name). A body far past the limit is cut off with 413.

A plain HTML form needs no script (the page's CSP allows none inline). The body is read up to
the upload limit (`TUNELOG_UPLOAD_MAX_MB`) and refused past it; multipart is parsed with the
standard library's email parser (Starlette's form parser needs python-multipart).
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from tunelog.events.errors import TunelogError, ValidationError
from tunelog.frontends.web.plugin_api import list_uploads, store_upload, upload_limit

if TYPE_CHECKING:
    from tunelog.frontends.web.ui import Ui


def parse_form(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Fields of a multipart/form-data body: name -> (file name or None, bytes)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ValidationError.collect("cannot read the upload", [("content-type", f"expected multipart/form-data, "
                                                                                   f"got {content_type or 'none'}")])
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return fields


def endpoint(ui: Ui) -> Any:
    """The Starlette endpoint, bound to the UI's handle."""
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, RedirectResponse

    async def upload(request: Request) -> Any:
        limit = upload_limit()
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit + 64 * 1024:
            return PlainTextResponse(f"413 the upload is larger than {limit // (1024 * 1024)} MB "
                                     "(TUNELOG_UPLOAD_MAX_MB)\n", status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit + 64 * 1024:
                return PlainTextResponse(f"413 the upload is larger than {limit // (1024 * 1024)} MB "
                                         "(TUNELOG_UPLOAD_MAX_MB)\n", status_code=413)
        fields: dict[str, tuple[str | None, bytes]] = {}
        try:
            fields = parse_form(request.headers.get("content-type", ""), bytes(body))
            name, data = fields.get("file", (None, b""))
            if not name:
                raise ValidationError.collect("nothing was uploaded", [("file", "choose a file")])
            sha = store_upload(ui, name, data)
            answer = {"source": next(u["path"] for u in list_uploads(ui) if u["sha256"] == sha)}
        except TunelogError as exc:
            lines = [f"{p.get('where')}: {p.get('message')}" for p in exc.problems]
            answer = {"upload_error": "; ".join([exc.message, *lines])}
        back = fields.get("next", (None, b"/"))[1].decode("utf-8", "replace")
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        return RedirectResponse(f"{quote(back)}?{urlencode(answer)}", status_code=303)

    return upload
