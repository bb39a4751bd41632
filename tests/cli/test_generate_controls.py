"""`tunectl generate` passes every generation control to the evaluate node: its answers through a
real daemon equal the node's answers run in-process with the same parameters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Daemon, start_daemon
from tests.support.adapters import call
from tunelog.frontends.cli.client import Client
from tunelog.plugins.context import Context

pytest.importorskip("torch")
PROMPT = "what is the capital of france"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("home"), OMP_NUM_THREADS="1")
    yield d
    d.stop()


def test_generate_options_reach_the_evaluate_node(daemon: Daemon, tiny_model_dir: Path, tmp_path: Path) -> None:
    history = [{"role": "user", "content": "apple river"}, {"role": "assistant", "content": "green stone"}]
    (tmp_path / "history.json").write_text(json.dumps(history))
    out = daemon.tunectl("generate", "--model", str(tiny_model_dir), "--max-new-tokens", "10", "--temperature",
                         "1.3", "--top-p", "0.9", "--top-k", "30", "--min-p", "0.02", "--repetition-penalty", "0.5",
                         "--seed", "5", "--system", "answer small", "--history", str(tmp_path / "history.json"),
                         PROMPT, "--json", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    got = json.loads(out.stdout)["answers"][PROMPT]["base"]
    ctx, _ = Context.local(tmp_path / "local")
    want = call("evaluate", "generate", ctx, inputs={"model": str(tiny_model_dir)}, prompts=[PROMPT],
                max_new_tokens=10, greedy=False, temperature=1.3, top_p=0.9, top_k=30, min_p=0.02,
                repetition_penalty=0.5, seed=5, system="answer small", history=history)["report"][PROMPT]["base"]
    assert got == want
    plain = daemon.tunectl("generate", "--model", str(tiny_model_dir), "--max-new-tokens", "10", "--no-chat-template",
                           PROMPT, "--json", timeout=300)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["answers"][PROMPT]["base"] == call(
        "evaluate", "generate", ctx, inputs={"model": str(tiny_model_dir)}, prompts=[PROMPT], max_new_tokens=10,
        chat=False)["report"][PROMPT]["base"]


def test_a_bad_history_file_is_refused(daemon: Daemon, tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "h.json").write_text('{"role": "user"}')
    out = daemon.tunectl("generate", "--model", str(tiny_model_dir), "--history", str(tmp_path / "h.json"), PROMPT)
    assert out.returncode == 2 and "must hold a JSON list of turns" in out.stderr


def test_batch_size_reaches_the_node_and_a_streamed_batch_is_refused_at_submit(daemon: Daemon, tiny_model_dir: Path,
                                                                               tmp_path: Path) -> None:
    prompts = [PROMPT, "name a river", "blue"]
    out = daemon.tunectl("generate", "--model", str(tiny_model_dir), "--max-new-tokens", "12", "--batch-size", "3",
                         *prompts, "--json", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    ctx, _ = Context.local(tmp_path / "local")
    one_at_a_time = call("evaluate", "generate", ctx, inputs={"model": str(tiny_model_dir)}, prompts=prompts,
                         max_new_tokens=12)["report"]
    assert {p: a["base"] for p, a in json.loads(out.stdout)["answers"].items()} == {
        p: a["base"] for p, a in one_at_a_time.items()}
    status = Client(daemon.socket, timeout=10)
    head = status.get("/v1/status")["head"]
    workflow = tmp_path / "streamed-batch.json"
    workflow.write_text(json.dumps({"nodes": {"g": {"op": "evaluate.generate", "inputs": {"model": str(tiny_model_dir)},
                                                    "params": {"prompts": prompts, "stream": True, "batch_size": 2}}}}))
    refused = daemon.tunectl("workflow", "submit", str(workflow))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "batch_size" in refused.stderr and "streaming generates one prompt at a time" in refused.stderr
    assert status.get("/v1/status")["head"] == head
