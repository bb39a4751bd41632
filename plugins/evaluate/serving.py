"""An OpenAI-compatible HTTP endpoint over one loaded base model with its adapters (evaluate.serve).

Routes: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`; `stream: true`
answers with server-sent events (`data: {chunk}` ... `data: [DONE]`), as OpenAI's API does. Every
request needs `Authorization: Bearer <token>`. The `model` field picks the variant: `base` (every
adapter disabled) or an adapter's name, switched per request on the one loaded model (peft
multi-adapter). One generation runs at a time (the model is shared); others wait their turn.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import inference

Complete = Callable[..., inference.Generation]
"""`complete(name, ids, *, streamer, **settings)`: one answer of variant `name` (transformers generate
through `inference.complete`, or the vLLM engine); a `streamer` receives the text as it comes."""


class ApiError(Exception):
    """An OpenAI-style error answer."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.kind, "param": self.param,
                                       "code": None}}, status_code=self.status)


class Server:
    """The endpoint's state: the backend's `complete`, the variant names, the token, and the one-at-a-time lock."""

    def __init__(self, complete: Complete, tokenizer: Any, *, names: list[str], token: str, defaults: dict[str, Any]):
        self.complete, self.tokenizer, self.names, self.token = complete, tokenizer, names, token
        self.defaults = defaults
        self.lock = threading.Lock()
        self.requests = 0

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
        ])

    async def models(self, request: Request) -> Response:
        try:
            self._auth(request)
        except ApiError as e:
            return e.response()
        return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                                         "owned_by": "tunelog"} for n in self.names]})

    async def chat(self, request: Request) -> Response:
        return await self._answer(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._answer(request, chat=False)

    async def _answer(self, request: Request, *, chat: bool) -> Response:
        try:
            self._auth(request)
            body = await _json(request)
            name = self._variant(body.get("model"))
            ids = self._prompt(body, chat=chat)
            settings = self._settings(body)
        except ApiError as e:
            return e.response()
        self.requests += 1
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        head = {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
                "model": name}
        if body.get("stream"):
            return StreamingResponse(self._stream(head, name, ids, settings, chat=chat), media_type="text/event-stream")
        done = await anyio.to_thread.run_sync(lambda: self._generate(name, ids, settings, None))
        choice: dict[str, Any] = {"index": 0, "finish_reason": done.finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": done.text}
        else:
            choice.update(text=done.text, logprobs=None)
        usage = {"prompt_tokens": len(ids), "completion_tokens": done.tokens, "total_tokens": len(ids) + done.tokens}
        return JSONResponse({**head, "choices": [choice], "usage": usage})

    async def _stream(self, head: dict[str, Any], name: str, ids: list[int], settings: dict[str, Any], *,
                      chat: bool) -> AsyncIterator[str]:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["done"] = self._generate(name, ids, settings, streamer)
            except Exception as e:  # surfaces in the stream instead of hanging it
                result["error"] = e
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        head = {**head, "object": "chat.completion.chunk" if chat else "text_completion"}
        if chat:
            yield _sse({**head, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        sent, stop = "", list(settings.get("stop") or [])
        while (piece := await anyio.to_thread.run_sync(next, streamer, None)) is not None:
            text = sent + piece
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
            fresh = (text[:cut] if cut >= 0 else text)[len(sent):]
            if fresh:
                sent += fresh
                yield _sse({**head, "choices": [_delta(fresh, chat=chat)]})
            if cut >= 0:
                break
        await anyio.to_thread.run_sync(thread.join)
        if "error" in result:
            yield _sse({"error": {"message": str(result["error"]), "type": "server_error"}})
        else:
            yield _sse({**head, "choices": [{**_delta("", chat=chat, empty=True),
                                             "finish_reason": result["done"].finish}]})
        yield "data: [DONE]\n\n"

    def _generate(self, name: str, ids: list[int], settings: dict[str, Any], streamer: Any) -> inference.Generation:
        with self.lock:
            return self.complete(name, ids, streamer=streamer, **settings)

    def _auth(self, request: Request) -> None:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token.encode()):
            raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer <token>)",
                           kind="invalid_api_key")

    def _variant(self, name: Any) -> str:
        if name not in self.names:
            raise ApiError(404, f"model {name!r} is not served here; models: {', '.join(self.names)}",
                           param="model", kind="not_found_error")
        return str(name)

    def _prompt(self, body: dict[str, Any], *, chat: bool) -> list[int]:
        if not chat:
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt:
                raise ApiError(400, "prompt: expected a non-empty string", param="prompt")
            return list(self.tokenizer(prompt)["input_ids"])
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise ApiError(400, "messages: expected a non-empty list of {role, content} objects with text content",
                           param="messages")
        if not getattr(self.tokenizer, "chat_template", None):
            raise ApiError(400, "this model's tokenizer has no chat template: use /v1/completions", param="messages")
        return inference.messages_ids(self.tokenizer, [{"role": m["role"], "content": m["content"]} for m in messages])

    def _settings(self, body: dict[str, Any]) -> dict[str, Any]:
        """Generation settings from the request's OpenAI fields, over the server's defaults."""
        out = dict(self.defaults)
        fields = {"max_tokens": "max_new_tokens", "max_completion_tokens": "max_new_tokens",
                  "temperature": "temperature", "top_p": "top_p", "seed": "seed", "top_k": "top_k", "min_p": "min_p",
                  "repetition_penalty": "repetition_penalty"}
        for key, target in fields.items():
            value = body.get(key)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ApiError(400, f"{key}: expected a non-negative number, got {value!r}", param=key)
            out[target] = int(value) if target in ("max_new_tokens", "seed", "top_k") else float(value)
        if out.get("max_new_tokens", 1) < 1:
            raise ApiError(400, "max_tokens: must be at least 1", param="max_tokens")
        stop = body.get("stop")
        stop = [stop] if isinstance(stop, str) else stop
        if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop)):
            raise ApiError(400, "stop: expected a string or a list of non-empty strings", param="stop")
        out["stop"] = stop or []
        out["greedy"] = float(out.get("temperature", 0.0)) <= 0
        return out


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as e:
        raise ApiError(400, f"the request body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def _delta(text: str, *, chat: bool, empty: bool = False) -> dict[str, Any]:
    if chat:
        return {"index": 0, "delta": {} if empty else {"content": text}, "finish_reason": None}
    return {"index": 0, "text": text, "logprobs": None, "finish_reason": None}


def run(server: Server, sock: Any, *, stop: Callable[[], bool], ready: Callable[[], None]) -> None:
    """Serve on the bound socket until `stop()` is true (polled); uvicorn runs in a thread so the
    worker's own SIGTERM handling (cancel) stays in charge."""
    import uvicorn

    config = uvicorn.Config(server.app(), log_level="warning", access_log=False, lifespan="off")
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not http.started and thread.is_alive():
        time.sleep(0.05)
    if not thread.is_alive():
        raise RuntimeError("the HTTP server did not start")
    ready()
    while not stop() and thread.is_alive():
        time.sleep(0.2)
    http.should_exit = True
    thread.join(timeout=30)
