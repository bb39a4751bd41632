"""Run lora_trainer.train as a worker process would, under `torchrun` / `accelerate launch`; each
rank writes its messages and outputs to ROOT/messages-<rank>.jsonl.

    python -m tests.support.trainer_worker ROOT MODEL_DIR DATASET_SHA PARAMS_JSON
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    from tunelog.plugins.context import Context
    from tunelog.plugins.lora_trainer import backend
    from tunelog.store.artifacts import ArtifactStore

    root, model_dir, dataset, params = Path(argv[0]), argv[1], argv[2], json.loads(argv[3])
    rank = os.environ.get("RANK", "0")
    with open(root / f"messages-{rank}.jsonl", "w") as log:
        def sink(kind: str, body: dict) -> None:
            log.write(json.dumps({"message": kind, **body}) + "\n")

        ctx = Context(job_id=f"rank{rank}", workdir=root / "jobs" / rank, artifacts=ArtifactStore(root / "artifacts"),
                      sink=sink)
        outputs = backend.train(ctx, params, {"model": model_dir, "dataset": dataset})
        log.write(json.dumps({"message": "outputs", **outputs}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
