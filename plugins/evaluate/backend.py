"""Operations of the `evaluate` plugin: loss/perplexity and sample generations, base vs adapters.

Requests are checked first (adapter names and configs are plain JSON); torch, the model and the
adapters load afterwards, in `.inference`, imported lazily so importing this module is fast.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from tunelog.events.errors import ValidationError
from tunelog.plugins.api import JobContext
from tunelog.plugins.common.adapters import (
    is_sha,
    model_folder,
    parse_named,
    read_adapter_config,
    reload_problems,
)


def loss(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Token-weighted validation loss and perplexity of the base and of each adapter."""
    named = _named_adapters(ctx, inputs, include_base=bool(params.get("include_base", True)))
    dataset_sha = inputs.get("dataset")
    if not is_sha(dataset_sha):
        raise ValidationError(f"inputs.dataset: expected a dataset artifact hash, got {str(dataset_sha)[:80]!r}")
    from tunelog.plugins.common.data import counts_text, encode_dataset, read_dataset
    from tunelog.plugins.common.models import load_tokenizer

    records = read_dataset(ctx.artifact_path(dataset_sha), params.get("split", "validation"))
    base_dir = model_folder(ctx, inputs.get("model"))
    tokenizer = load_tokenizer(base_dir)
    features = encode_dataset(tokenizer, records, max_length=int(params.get("max_length", 512)),
                              train_on_prompt=bool(params.get("train_on_prompt", False)))
    ctx.log(counts_text(features.counts))
    if not features:
        raise ValidationError(f"the {params.get('split')} split has no example with a target token to score")

    from . import inference

    model = inference.load(base_dir, named, dtype=params.get("dtype", "float32"), quantization=_quantization(params))
    size = int(params.get("batch_size", 8))
    batches = [features[i: i + size] for i in range(0, len(features), size)]
    batches = batches[: int(params.get("max_batches", 0)) or None]
    variants = _variants(named, include_base=bool(params.get("include_base", True)))
    results: dict[str, Any] = {}
    for done, name in enumerate(variants):
        ctx.progress(done, len(variants), f"scoring {name}")
        total, tokens = inference.score(model, name, batches, pad_id=tokenizer.pad_token_id, stop=ctx.should_stop)
        if not tokens:  # stopped before the first batch
            break
        results[name] = {"loss": total / tokens, "perplexity": math.exp(min(total / tokens, 700.0)), "tokens": tokens}
        ctx.metrics(done, **{f"{name}/loss": total / tokens})
        if ctx.should_stop():
            break
    ctx.progress(len(variants), len(variants), "done")
    return {"report": {"split": params.get("split", "validation"), "examples": sum(len(b) for b in batches),
                       "batches": len(batches), "stopped": ctx.should_stop(), "results": results}}


def generate(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Answers to each prompt from the base (under `base`) and from each adapter (under its name)."""
    prompts = params.get("prompts")
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValidationError("params.prompts: expected a non-empty list of non-empty strings")
    from .checks import generate as refusals

    for where, problem in refusals(params, inputs, {})[0]:  # before the model loads
        raise ValidationError(f"params.{where}: {problem}")
    named = _named_adapters(ctx, inputs, include_base=bool(params.get("include_base", True)))
    base_dir = model_folder(ctx, inputs.get("model"))
    from tunelog.plugins.common.models import load_tokenizer

    tokenizer = load_tokenizer(base_dir)

    from . import inference

    model = inference.load(base_dir, named, dtype=params.get("dtype", "float32"), quantization=_quantization(params))
    chat = bool(params.get("chat", True))
    history = _history(params.get("history"))
    system = str(params.get("system") or "")
    template = str(params.get("chat_template") or "") or None
    if template and not chat:
        raise ValidationError("params.chat_template: chat is off, so no chat template is used; turn chat on or "
                              "leave it empty")
    if chat and not template and not getattr(tokenizer, "chat_template", None):
        if history or system:
            raise ValidationError("params.history/system: the tokenizer has no chat template to place them in; "
                                  "set chat to false and leave them empty")
        ctx.log("the tokenizer has no chat template: prompts are used as plain text")
        chat = False
    if not chat and (history or system):
        ctx.log("chat is off: the system prompt and history are not used")
    settings = {k: params[k] for k in GENERATION_KEYS if k in params}
    variants = _variants(named, include_base=bool(params.get("include_base", True)))
    from .streaming import Progress

    progress = Progress(ctx, variants=variants, total=len(prompts) * len(variants), stream=bool(params.get("stream")))
    size = int(params.get("batch_size", 1))
    report: dict[str, dict[str, str]] = {}
    for i in range(0, len(prompts), size):
        if ctx.should_stop():
            break
        progress.start(i)
        chunk = prompts[i: i + size]
        ids = [inference.prompt_ids(tokenizer, p, chat=chat, system=system, history=history, template=template)
               for p in chunk]
        for name in variants:
            progress.begin(name)
            streamer = progress.streamer(tokenizer, name, settings.get("stop", ())) if size == 1 else None
            for prompt, answer in zip(chunk, inference.complete_many(model, tokenizer, name, ids, **settings,
                                                                     streamer=streamer), strict=True):
                report.setdefault(prompt, {})[name] = answer.text
                progress.finish(name, answer.text)
    progress.end()
    return {"report": report}


def serve(ctx: JobContext, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-compatible endpoint on 127.0.0.1 until the job is cancelled (see `.serving`)."""
    backend = _backend(params)
    token = _token(params.get("token_file"))
    named = _named_adapters(ctx, inputs, include_base=True)
    base_ref = inputs.get("model")
    base_dir = model_folder(ctx, base_ref)
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", int(params.get("port", 0))))
    except OSError as e:
        sock.close()
        raise ValidationError(f"params.port: cannot listen on 127.0.0.1:{params.get('port')}: {e.strerror}") from None
    from tunelog.events.serving import ModelServed
    from tunelog.plugins.common.adapters import model_lineage
    from tunelog.plugins.common.models import load_tokenizer

    from . import inference, serving

    ctx.progress(0, None, f"loading the model ({backend})")
    tokenizer = load_tokenizer(base_dir)
    if backend == "vllm":
        from . import vllm_engine

        complete = vllm_engine.load(base_dir, named, dtype=str(params.get("dtype", "float32")))
    else:
        model = inference.load(base_dir, named, dtype=params.get("dtype", "float32"),
                               quantization=_quantization(params))
        complete = functools.partial(inference.complete, model, tokenizer)
    defaults = {"max_new_tokens": int(params.get("max_new_tokens", 256)), "temperature": 0.0}
    server = serving.Server(complete, tokenizer, names=["base", *(n for n, _ in named)], token=token,
                            defaults=defaults)
    address = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    ctx.emit(ModelServed(job_id=ctx.job_id, base_model=model_lineage(base_ref, base_dir),
                         adapters={n: f.name for n, f in named}, address=address, backend=backend,
                         versions=_versions()))
    serving.run(server, sock, stop=ctx.should_stop, ready=lambda: ctx.progress(1, None, f"serving on {address}"))
    ctx.log(f"stopped after {server.requests} request(s)")
    return {"report": {"address": address, "models": server.names, "requests": server.requests}}


def _token(path: Any) -> str:
    """The bearer token, read from a file only its owner can read (so it never enters the log)."""
    import os
    import stat
    from pathlib import Path

    if not isinstance(path, str) or not path:
        raise ValidationError("params.token_file: give the path of a file holding the bearer token")
    file = Path(path)
    try:
        mode = file.stat().st_mode
        token = file.read_text().strip()
    except OSError as e:
        raise ValidationError(f"params.token_file: cannot read {path}: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO) or file.stat().st_uid != os.getuid():
        raise ValidationError(f"params.token_file: {path} must belong to you and be readable by you only (chmod 600)")
    if len(token) < 16:
        raise ValidationError(f"params.token_file: the token in {path} is shorter than 16 characters")
    return token


def _backend(params: dict[str, Any]) -> str:
    """The backend this job serves with (see `checks.choose_backend`); an explicit vllm that cannot run
    here is refused with what is missing."""
    import importlib.util

    import torch

    from .checks import choose_backend, vllm_refusal

    backend, why = choose_backend(str(params.get("backend", "auto")),
                                  vllm_installed=importlib.util.find_spec("vllm") is not None,
                                  cuda=torch.cuda.is_available(), quantization=_quantization(params))
    if backend == "vllm" and why:
        raise ValidationError(f"params.backend: {vllm_refusal(why)}")
    return backend


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "vllm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


GENERATION_KEYS = ("max_new_tokens", "greedy", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed",
                   "stop")
"""Parameters of evaluate.generate passed to `inference.complete_many` as they are."""


def _history(value: Any) -> list[dict[str, str]]:
    """Earlier turns of the conversation, checked: [{"role": "user"|"assistant", "content": text}, ...]."""
    if value in (None, []):
        return []
    if not isinstance(value, list):
        raise ValidationError("params.history: expected a list of {role, content} objects")
    problems = [(f"params.history[{i}]", "expected {\"role\": \"user\" or \"assistant\", \"content\": text}")
                for i, m in enumerate(value) if not isinstance(m, dict) or m.get("role") not in ("user", "assistant")
                or not isinstance(m.get("content"), str) or set(m) - {"role", "content"}]
    if problems:
        raise ValidationError.collect("invalid conversation history", problems)
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _named_adapters(ctx: JobContext, inputs: dict[str, Any], *, include_base: bool) -> list[tuple[str, Any]]:
    """(name, folder) of every adapter input, checked: `adapter` is named `adapter`."""
    named = parse_named(inputs.get("adapters"), where="inputs.adapters")
    if inputs.get("adapter") is not None:
        if any(n == "adapter" for n, _ in named):
            raise ValidationError("inputs.adapters: the name 'adapter' is taken by inputs.adapter")
        named = parse_named([{"name": "adapter", "sha256": inputs["adapter"]}], where="inputs.adapter") + named
    if not named and not include_base:
        raise ValidationError("nothing to evaluate: no adapters and include_base is false")
    out, problems = [], []
    for name, sha in named:
        folder = ctx.artifact_path(sha)
        problems += [(f"adapter {name}", m) for m in reload_problems(read_adapter_config(folder, where=name))]
        out.append((name, folder))
    if problems:
        raise ValidationError.collect("these adapters cannot be evaluated", problems)
    return out


def _variants(named: list[tuple[str, Any]], *, include_base: bool) -> list[str]:
    return (["base"] if include_base else []) + [n for n, _ in named]


def _quantization(params: dict[str, Any]) -> str | None:
    q = params.get("quantization", "none")
    return None if q in (None, "none") else str(q)
