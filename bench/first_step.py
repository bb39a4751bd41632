"""Time to the first training step of a new CPU run, workers started cold vs forked warm.

Two real daemons in turn on the same machine, in this one run: one with `TUNELOG_WARM_WORKERS=off`
(each job's worker is a new Python process that imports torch, transformers and peft: the old
path) and one with the warm worker host (workers fork from a process that imported them once).
Each submits `datasets.prepare -> lora_trainer.train` runs on a tiny Llama built from a config,
each run on a data file of its own (so neither node is answered from the cache), and reads from
the log the time from `run-submitted` to the first `job-metrics` event of the train job that
holds a loss. The first run is the one right after the daemon started ("first start": the warm
host may still be importing); the rest run on a daemon that is warm. Goal: warm <= 3 s.

    .venv/bin/python bench/first_step.py [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_S = 3.0
TRAIN = {"max_steps": 2, "batch_size": 4, "max_length": 64, "pad_to_multiple": 16, "threads": 1, "lr": 0.01}


def graph(model: Path, data: Path) -> dict[str, Any]:
    return {"nodes": {
        "data": {"op": "datasets.prepare", "inputs": {"source": str(data)}, "params": {"format": "messages"}},
        "train": {"op": "lora_trainer.train", "params": TRAIN,
                  "inputs": {"model": str(model), "dataset": {"node": "data", "output": "dataset"}}}}}


def one_run(d: Any, model: Path, work: Path, n: int) -> dict[str, float]:
    """Submit a run on fresh data; seconds from submit to the train job's first step, and its parts."""
    from tests.daemon.test_runs import wait_run
    from tests.support.trainer import chat_records
    from tunelog.store.sqlite import SqliteStore

    data = work / f"data-{n}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in chat_records(16, seed=1000 + n)))
    r = d.post("/v1/runs", json={"graph": graph(model, data)})
    assert r.status_code == 201, r.text
    run_id = r.json()["run"]["run_id"]
    done = wait_run(d, run_id, timeout=600)
    assert done["run"]["state"] == "succeeded", done["run"]["nodes"]
    store = SqliteStore(d.paths.db)
    try:
        submitted = next(e.time for e in store.read(stream=f"run-{run_id}") if e.type == "run-submitted")
        jobs = {name: node["job_id"] for name, node in done["run"]["nodes"].items()}
        prep = {e.type: e.time for e in store.read(stream=f"job-{jobs['data']}")}
        train = list(store.read(stream=f"job-{jobs['train']}"))
    finally:
        store.close()
    started = next(e.time for e in train if e.type == "job-started")
    first = next(e.time for e in train if e.type == "job-metrics"
                 and any("loss" in p for p in e.event.points))  # type: ignore[attr-defined]
    return {"first_step_s": first - submitted, "prepare_s": prep["job-succeeded"] - prep["job-started"],
            "train_start_to_step_s": first - started}


def wait_warm(d: Any, timeout: float = 300.0) -> float:
    """Seconds until the daemon's log says the warm host has imported its modules."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if "warm workers: host" in d.paths.log_file.read_text(errors="replace"):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise TimeoutError("the warm worker host did not finish importing")


def measure(mode: str, model: Path, work: Path, runs: int) -> dict[str, Any]:
    from tests.daemon.daemon_proc import Daemon

    env = {"TUNELOG_WARM_WORKERS": "off"} if mode == "cold" else {"TUNELOG_WARM_WORKERS": "on"}
    home = work / f"home-{mode}"
    d = Daemon(home, builtins=True, env=env)
    d.env.pop("TUNELOG_WARM_MODULES", None)  # the default list, whatever the shell says
    t0 = time.monotonic()
    d.start(timeout=120)
    first = one_run(d, model, work, 0 if mode == "cold" else 100)
    first["daemon_start_to_first_step_s"] = time.monotonic() - t0
    if mode == "warm":
        wait_warm(d)
    later = [one_run(d, model, work, i + (1 if mode == "cold" else 101)) for i in range(runs)]
    d.stop()
    return {"first": first, "later": later, "median_s": statistics.median(r["first_step_s"] for r in later)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs on a warm daemon, after the first one")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from tests.support.tiny import build_tiny

    with tempfile.TemporaryDirectory(prefix="tunelog-first-step-") as tmp:
        work = Path(tmp)
        model = build_tiny(work / "tiny")
        out = {mode: measure(mode, model, work, args.runs) for mode in ("cold", "warm")}
    cold, warm = out["cold"]["median_s"], out["warm"]["median_s"]
    print(f"{'path':6} {'first run (s)':>14} {'daemon start->step':>19} {'later runs (s)':>28} "
          f"{'median':>7} {'prepare':>8} {'train job->step':>16}")
    for mode, m in out.items():
        later = ", ".join(f"{r['first_step_s']:.2f}" for r in m["later"])
        print(f"{mode:6} {m['first']['first_step_s']:14.2f} {m['first']['daemon_start_to_first_step_s']:19.2f} "
              f"{later:>28} {m['median_s']:7.2f} {statistics.median(r['prepare_s'] for r in m['later']):8.2f} "
              f"{statistics.median(r['train_start_to_step_s'] for r in m['later']):16.2f}")
    print(f"time to first step on a warm daemon: {warm:.2f} s (goal <= {GOAL_S:g} s): "
          f"{'met' if warm <= GOAL_S else 'NOT met'}; cold / warm = {cold / warm:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({**out, "ratio": cold / warm, "goal_s": GOAL_S}, indent=2))


if __name__ == "__main__":
    main()
