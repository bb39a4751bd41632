"""Operations that exercise the job runner. Each is as small as the behaviour it provokes."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .helpers import sleep_until_stopped


def sleep(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    ctx.progress(0, message="sleeping")
    slept, stopped = sleep_until_stopped(ctx, float(params["seconds"]))
    return {"slept": slept, "stopped": stopped}


def progress(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    n = int(params["n"])
    print("a print() goes to worker.log, not into the message channel")
    for i in range(n):
        ctx.progress(i + 1, n)
        ctx.metrics(i, loss=1.0 / (i + 1), lr=0.001)
        if i % 50 == 0:
            ctx.log(f"point {i}")
    return {"count": n}


def fail(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    print("about to fail", file=sys.stderr)
    raise ValueError("boom")


def crash(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    print("about to crash")
    if params["how"] == "abort":
        os.abort()
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)
    return {}


def hang(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx.progress(0, message="hanging")
    time.sleep(float(params["seconds"]))
    return {}


def exit(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    os._exit(int(params["code"]))


def outputs(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    text = str(params["text"])
    sleep_until_stopped(ctx, float(params.get("delay", 0)))
    if inputs.get("data"):
        text += "\n" + ctx.artifact_path(inputs["data"]).read_text()
    path = Path(ctx.workdir) / "report.txt"
    path.write_text(text)
    return {"report": ctx.store_artifact("report", path), "text": text}


def checkpointing(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    start = 0
    if ctx.resume_from is not None:
        start = json.loads((Path(ctx.resume_from) / "state.json").read_text())["step"]
    step = start
    while step < int(params["steps"]):
        if ctx.should_stop():
            folder = Path(ctx.workdir) / f"checkpoint-{step}"
            folder.mkdir(parents=True)
            (folder / "state.json").write_text(json.dumps({"step": step}))
            ctx.checkpoint(step, folder)
            break
        time.sleep(float(params["step_s"]))
        step += 1
        ctx.progress(step, int(params["steps"]))
    return {"step": step, "resumed_from": start}


def emit(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    # Run events are not written yet; any non-job event shows the plumbing. PluginRemoved of a
    # plugin that never existed changes no projection.
    from tunelog.events.jobs import JobSucceeded
    from tunelog.events.plugins import PluginRemoved

    note = PluginRemoved(name="testops-emitted", path=str(ctx.workdir))
    ctx.emit({"stream": params["stream"], "event": note})
    ctx.emit({"stream": "daemon", "event": note})
    ctx.emit(JobSucceeded(job_id=ctx.job_id, outputs={}, duration_s=0.0))
    ctx.emit(note)
    return {}


def env(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    return {"seen": {"cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "cwd": os.getcwd(),
                     "job_id": os.environ.get("TUNELOG_JOB_ID"), "no_bytecode": sys.dont_write_bytecode,
                     "pgid_is_pid": os.getpgid(0) == os.getpid(), "package": __package__}}


def process(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    numpy = sys.modules.get("numpy")
    return {"seen": {"ppid": os.getppid(), "preloaded": sorted(m for m in ("numpy", "torch") if m in sys.modules),
                     "numpy_draw": int(numpy.random.randint(1 << 30)) if numpy is not None else None,
                     "job_id": os.environ.get("TUNELOG_JOB_ID"), "cwd": os.getcwd(),
                     "pgid_is_pid": os.getpgid(0) == os.getpid(), "no_bytecode": sys.dont_write_bytecode}}


def read_file(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    source = Path(inputs["path"])
    copy = Path(ctx.workdir) / "content.txt"
    copy.write_bytes(source.read_bytes())
    return {"content": ctx.store_artifact("content", copy), "size": copy.stat().st_size}


def curve(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    import random

    steps, every = int(params["steps"]), int(params["every"])
    losses: list[float] = []
    if ctx.resume_from is not None:
        losses = json.loads((Path(ctx.resume_from) / "state.json").read_text())["losses"]
    start = len(losses)
    noise = random.Random()  # unseeded on purpose: `jitter` makes a replay differ a little
    for step in range(len(losses) + 1, steps + 1):
        loss = float(params["scale"]) / step + float(params["jitter"]) * noise.random()
        losses.append(loss)
        ctx.metrics(step, loss=loss)
        if step % every == 0 or step == steps:
            folder = Path(ctx.workdir) / f"checkpoint-{step}"
            folder.mkdir(parents=True)
            (folder / "state.json").write_text(json.dumps({"losses": losses}))
            ctx.checkpoint(step, folder)
        if ctx.should_stop():
            break
    weights = Path(ctx.workdir) / "weights.txt"
    weights.write_text("\n".join(repr(x) for x in losses))
    return {"weights": ctx.store_artifact("weights", weights), "final_loss": losses[-1] if losses else None,
            "resumed_from": start}


def invalid(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Fail the way the datasets plugin does on bad rows: a ValidationError with a problem list."""
    from tunelog.events.errors import ValidationError

    n = int(params["rows"])
    print("checking rows", file=sys.stderr)
    raise ValidationError.collect(
        f"data: {n} problems; nothing was stored\nthe rows were read from data.jsonl",
        [(f"row {i + 1}", f"field 'response' is missing (reason {i + 1})") for i in range(n)],
        hint="fix the rows named below, or map columns with the `columns` parameter")


def fake_adapter(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Store a folder holding only a LoRA adapter_config.json: an adapter the UI lists, that merges
    check (and refuse) without loading any weights."""
    folder = Path(ctx.workdir) / "adapter"
    folder.mkdir()
    config = {"peft_type": "LORA", "r": int(params["r"]), "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return {"adapter": ctx.store_artifact("adapter", folder)}


def fake_merged_model(ctx: Any, params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Store a folder and record it as a merged model (AdapterMerged, output_kind `model`), as
    adapter_merge.merge_and_unload does, without loading any weights."""
    from tunelog.events.merges import AdapterMerged, MergeInput, merge_stream

    folder = Path(ctx.workdir) / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "fake", "seed": params["seed"]}))
    sha = ctx.store_artifact("model", folder)
    ctx.emit(AdapterMerged(merge_id=merge_stream(sha), merge_type="merge_and_unload",
                           inputs=[MergeInput(sha256=inputs["adapter"])], base_model={"ref": "fake-base"},
                           output_sha256=sha, output_kind="model", exact=True, job_id=ctx.job_id))
    return {"model": sha}
