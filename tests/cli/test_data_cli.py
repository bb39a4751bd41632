"""Nothing dropped or altered silently, through the real CLI and daemon: the data counts line after
`tunectl train` and in `runs show`, `--columns` pairs and mapping files, and preference data
refused by supervised training with the stage to use."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Daemon, start_daemon
from tests.support.tiny import corpus

pytestmark = pytest.mark.slow

SMALL = ("--set", "max_steps=1", "--set", "batch_size=2", "--set", "threads=1", "--set", "max_length=48",
         "--set", "pad_to_multiple=16")


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = start_daemon(tmp_path_factory.mktemp("data-cli") / "home")
    yield daemon
    daemon.stop()


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def long_text(seed: int) -> str:
    return " ".join(corpus(12, seed=seed))  # well over 48 tokens


def test_counts_line_after_train_and_in_runs_show_with_columns_pairs(d: Daemon, tmp_path: Path,
                                                                     tiny_model_dir: Path) -> None:
    rows = [{"question": f"what is the capital {w}", "answer": f"the capital is {w}"}
            for w in ("north", "south", "east", "west", "city", "village")]
    rows += [{"question": "tell a story", "answer": long_text(1)}, {"question": "more", "answer": long_text(2)}]
    rows += [{"question": long_text(3), "answer": "paris"}]
    data = jsonl(tmp_path / "qa.jsonl", rows)
    out = d.tunectl("train", "--model", str(tiny_model_dir), "--data", str(data), "--columns",
                    "prompt=question,response=answer", *SMALL, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    line = ("data: 9 alpaca rows: 6 used · 2 truncated to max_length 48 · 1 dropped (no response token within "
            "max_length 48)")
    assert line in out.stdout.splitlines()
    run_id = out.stdout.splitlines()[0].removeprefix("run ")
    assert line in d.tunectl("runs", "show", run_id).stdout.splitlines()
    nodes = d.json("runs", "show", run_id)["run"]["nodes"]
    report = nodes["data"]["outputs"]["report"]
    assert (report["format"], report["rows"], report["used"]) == ("alpaca", 9, 9)
    assert "9 rows: 9 used (alpaca)" in d.tunectl("logs", nodes["data"]["job_id"]).stdout
    assert ("train: 9 records: 6 used · 2 truncated to max_length 48 (kept the start) · 1 dropped (no response "
            "token within max_length)") in d.tunectl("logs", nodes["train"]["job_id"]).stdout


def test_columns_mapping_file_in_dataset_info_style(d: Daemon, tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = [{"dialog": [{"speaker": "person", "text": f"hi {w}"}, {"speaker": "bot", "text": f"hello {w}"}]}
            for w in ("north", "south", "east", "west")]
    data = jsonl(tmp_path / "chats.jsonl", rows)
    mapping = tmp_path / "dataset_info.json"
    mapping.write_text(json.dumps({"chats": {"file_name": "chats.jsonl", "formatting": "sharegpt",
                                             "columns": {"messages": "dialog"},
                                             "tags": {"role_tag": "speaker", "content_tag": "text",
                                                      "user_tag": "person", "assistant_tag": "bot"}}}))
    out = d.tunectl("train", "--model", str(tiny_model_dir), "--data", str(data), "--columns", str(mapping),
                    *SMALL, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "data: 4 sharegpt rows: 4 used" in out.stdout.splitlines()
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"columns": {"messages": "turns"}}))
    out = d.tunectl("train", "--model", str(tiny_model_dir), "--data", str(data), "--columns", str(missing),
                    *SMALL, timeout=300)
    assert out.returncode == 6
    assert "columns.messages names column 'turns', which chats.jsonl does not have (its columns: dialog)" \
        in out.stdout + out.stderr


def test_bad_columns_option_is_a_usage_error(d: Daemon, tmp_path: Path, tiny_model_dir: Path) -> None:
    data = jsonl(tmp_path / "qa.jsonl", [{"q": "a", "a": "b"}])
    before = d.json("runs", "list")
    for value in ("prompt=", "no-such-file.json"):
        out = d.tunectl("train", "--model", str(tiny_model_dir), "--data", str(data), "--columns", value)
        assert out.returncode == 2 and "--columns" in out.stderr, out.stderr
    assert d.json("runs", "list") == before


def test_preference_data_is_refused_by_supervised_training_naming_the_stage(d: Daemon, tmp_path: Path,
                                                                           tiny_model_dir: Path) -> None:
    rows = [{"conversations": [{"from": "human", "value": f"capital of {w}"}],
             "chosen": {"from": "gpt", "value": f"the capital is {w}"}, "rejected": {"from": "gpt", "value": "paris"}}
            for w in ("north", "south")]
    out = d.tunectl("train", "--model", str(tiny_model_dir), "--data", str(jsonl(tmp_path / "pairs.jsonl", rows)),
                    *SMALL, timeout=300)
    assert out.returncode == 2, out.stdout + out.stderr  # refused at submit: nothing queued
    assert "pairs.jsonl row 1 holds preference pairs (chosen/rejected answers) (columns: conversations, chosen, " \
           "rejected), but node train trains stage sft" in out.stderr, out.stderr
    assert "use stage dpo or orpo or simpo" in out.stderr
