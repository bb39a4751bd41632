"""Preparing a JSON Lines file bigger than memory: peak RSS and rows/s of `datasets.prepare`.

Writes a synthetic alpaca JSONL of `--gb` GB (default 5) in a temp folder, prepares it (the plugin
operation in a child process of its own, so its peak RSS is its own) with a 10 % validation split,
then again with bad rows spread through it (they must be counted and named; nothing is stored).
As the baseline, the in-memory path prepares the first `--baseline-mb` MB in the same run: its
RSS per input MB shows what the whole file would have needed. Everything is deleted at the end.
Goal: peak RSS <= 2 GB.

    .venv/bin/python bench/big_data.py [--gb 5] [--baseline-mb 200] [--block-mb 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOAL_RSS_MB = 2048
CHILD = """
import json, sys, time
from pathlib import Path
from tunelog.events.errors import ValidationError
from tunelog.plugins.context import Context
from tunelog.plugins.datasets import backend
ctx, _ = Context.local(Path(sys.argv[2]))
t0 = time.perf_counter()
try:
    out = backend.prepare(ctx, {"val_fraction": 0.1, "seed": 0}, {"source": sys.argv[1]})
    result = {"report": out["report"]}
except ValidationError as e:
    result = {"refused": e.message.splitlines()[0], "problems": len(e.problems)}
result["seconds"] = time.perf_counter() - t0
# VmHWM: the peak of this process image (ru_maxrss would count the parent's pages at the fork)
hwm = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
result["peak_rss_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(result))
"""


def write_jsonl(path: Path, size: int, *, seed: int, block: int = 0) -> int:
    """Alpaca rows of ~0.5-2 KB until the file holds `size` bytes; returns the row count. With a
    `block` size, random rows fill the first `block` bytes and copies of them the rest (faster)."""
    if block and size > block:
        rows = write_jsonl(path, block, seed=seed)
        chunk, copies = path.read_bytes(), 1
        with open(path, "ab") as f:
            while len(chunk) * (copies + 1) <= size:
                f.write(chunk)
                copies += 1
        return rows * copies
    rng = random.Random(seed)
    words = [f"w{i:04d}" for i in range(5000)]
    n = 0
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as f:
        written = 0
        while written < size:
            row = {"instruction": " ".join(rng.choices(words, k=rng.randrange(20, 120))),
                   "output": " ".join(rng.choices(words, k=rng.randrange(60, 250)))}
            line = json.dumps(row) + "\n"
            f.write(line)
            written += len(line)
            n += 1
    return n


def spoil(path: Path, n: int) -> int:
    """Append `n` bad rows (cut-off JSON, a number for a text, a missing field); returns n."""
    bad = ['{"instruction": "cut off', json.dumps({"instruction": 5, "output": "x"}), json.dumps({"output": "y"})]
    with open(path, "a", encoding="utf-8") as f:
        for i in range(n):
            f.write(bad[i % 3] + "\n")
    return n


def prepare(source: Path, home: Path, *, stream_from: int | None = None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if stream_from is not None:
        env["TUNELOG_STREAM_FROM_BYTES"] = str(stream_from)
    done = subprocess.run([sys.executable, "-c", CHILD, str(source), str(home)], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(home, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=5.0)
    ap.add_argument("--baseline-mb", type=float, default=200.0)
    ap.add_argument("--block-mb", type=float, default=0.0,
                    help="write this many MB of random rows, then copies of them up to --gb (faster)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunelog-big-data-") as tmp:
        work = Path(tmp)
        big, small = work / "big.jsonl", work / "small.jsonl"
        t0 = time.perf_counter()
        rows = write_jsonl(big, int(args.gb * 1e9), seed=0, block=int(args.block_mb * 1e6))
        print(f"wrote {big.stat().st_size / 1e9:.2f} GB, {rows:,} rows in {time.perf_counter() - t0:.0f} s")
        write_jsonl(small, int(args.baseline_mb * 1e6), seed=1)
        base = prepare(small, work / "h0", stream_from=1 << 62)  # in memory
        base_mb = small.stat().st_size / 1e6
        passes = prepare(big, work / "h1")
        bad = spoil(big, 30)
        spoiled = prepare(big, work / "h2")
    gb = args.gb
    rate = passes["report"]["rows"] / passes["seconds"]
    print(f"in memory, {base_mb:.0f} MB: {base['peak_rss_mb']:.0f} MB peak RSS "
          f"({base['peak_rss_mb'] / base_mb:.1f} MB per input MB: ~{base['peak_rss_mb'] / base_mb * gb * 1000 / 1024:.0f}"
          f" GB for {gb:g} GB), {base['report']['rows'] / base['seconds']:,.0f} rows/s")
    print(f"in passes, {gb:g} GB: {passes['peak_rss_mb']:.0f} MB peak RSS (goal <= {GOAL_RSS_MB} MB: "
          f"{'met' if passes['peak_rss_mb'] <= GOAL_RSS_MB else 'NOT met'}), {passes['seconds']:.0f} s, "
          f"{rate:,.0f} rows/s, {passes['report']['train']:,} train / {passes['report']['validation']:,} validation")
    print(f"with {bad} bad rows: refused ({spoiled.get('refused')}), {spoiled.get('problems')} named, "
          f"{spoiled['peak_rss_mb']:.0f} MB peak RSS, {spoiled['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"baseline": base, "passes": passes, "spoiled": spoiled, "gb": gb}, indent=2))


if __name__ == "__main__":
    main()
