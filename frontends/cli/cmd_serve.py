"""`tunectl serve`: an OpenAI-compatible endpoint for a model and its adapters, as a daemon job."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import click

from tunelog.daemon.paths import Paths
from tunelog.frontends.cli import exits
from tunelog.frontends.cli import follow as F
from tunelog.frontends.cli.common import client, json_option, print_json
from tunelog.frontends.cli.refs import model_ref, resolve_adapter

_DONE = ("succeeded", "failed", "cancelled", "interrupted")


def named_adapters(c: Any, items: tuple[str, ...]) -> list[dict[str, str]]:
    """`NAME=ADAPTER` or `ADAPTER` (named `a<sha[:12]>`) -> [{"name", "sha256"}], prefixes resolved."""
    out = []
    for item in items:
        name, eq, prefix = item.rpartition("=")
        sha = resolve_adapter(c, prefix if eq else item)
        out.append({"name": name if eq else f"a{sha[:12]}", "sha256": sha})
    return out


def write_token(home: Any) -> tuple[str, str]:
    """(token, path of a new 0600 file holding it) under the data dir's `serve/` folder."""
    token = secrets.token_urlsafe(32)
    folder = home / "serve"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(8)}.token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token, str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(c: Any, run_id: str, url: str, token: str, *, timeout: float) -> dict[str, Any] | None:
    """The endpoint's /models answer once it serves; None when the run ended first (or on timeout)."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - a loopback URL we built
                return json.loads(answer.read())  # type: ignore[no-any-return]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if c.get(F.run_path(run_id))["run"]["state"] in _DONE:
            return None
        time.sleep(0.5)
    return None


@click.command()
@click.argument("model", metavar="MODEL")
@click.option("--adapter", "-a", "adapters", multiple=True, metavar="[NAME=]ADAPTER",
              help="An adapter to serve under NAME (repeatable); default name a<sha[:12]>.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--backend", type=click.Choice(["auto", "transformers", "vllm"]), default="auto", show_default=True,
              help="auto: vLLM where vllm is installed and a CUDA GPU is visible, else transformers generate; "
                   "vllm is refused, with what is missing, where it cannot run.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most tokens per answer when a request gives no max_tokens.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait for the endpoint.")
@json_option
@click.pass_context
def serve(ctx: click.Context, model: str, adapters: tuple[str, ...], port: int, backend: str, max_new_tokens: int,
          timeout: float, as_json: bool) -> None:
    """Serve MODEL and adapters through an OpenAI-compatible API on 127.0.0.1.

    Starts `evaluate.serve` as a daemon job (it keeps running after this command returns) and
    prints the base URL and a fresh bearer token. Routes: /v1/models, /v1/chat/completions,
    /v1/completions (with `stream: true` as server-sent events). Ask for model `base` or an
    adapter's NAME; all share one loaded base. Stop it with `tunectl runs cancel RUN`. The token
    lives only in a 0600 file under the data dir; the log records the model, the adapters and
    library versions (`model-served` event), never the token or the requests.
    """
    c = client()
    named = named_adapters(c, adapters)
    token, token_file = write_token(Paths.from_env().home)
    port = port or free_port()
    node = {"op": "evaluate.serve", "inputs": {"model": model_ref(c, model), "adapters": named},
            "params": {"token_file": token_file, "port": port, "backend": backend, "max_new_tokens": max_new_tokens}}
    row = c.post("/v1/runs", {"graph": {"description": f"serve {model}", "nodes": {"serve": node}},
                              "no_cache": True, "label": f"serve {model}"})["run"]
    url = f"http://127.0.0.1:{port}/v1"
    if not as_json:
        click.echo(f"run {row['run_id']}: starting the endpoint (loading the model)...")
    listed = wait_ready(c, row["run_id"], url, token, timeout=timeout)
    if listed is None:
        view = {"run": c.get(F.run_path(row["run_id"]))["run"], "jobs": {}}
        if view["run"]["state"] not in _DONE:
            ctx.exit(exits.fail(f"Error: the endpoint did not answer within {timeout:g} s; it may still be loading "
                                f"(tunectl runs show {row['run_id']})", exits.JOB_ERROR))
        ctx.exit(F.finish(view) or exits.JOB_ERROR)
    names = [m["id"] for m in listed["data"]]
    if as_json:
        print_json({"run": row["run_id"], "url": url, "token": token, "models": names})
        return
    click.echo(f"serving {', '.join(names)} at {url}")
    click.echo(f"token: {token}")
    click.echo(f"try: curl -H 'Authorization: Bearer {token}' {url}/models")
    click.echo(f"     OpenAI(base_url='{url}', api_key='<token>').chat.completions.create(model='{names[-1]}', ...)")
    click.echo(f"stop: tunectl runs cancel {row['run_id']}")
