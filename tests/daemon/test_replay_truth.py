"""Replay tells the truth, through the real daemon: an exact replay of real training lists no
drift at all, and a replay after the data file was edited names the change by content hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.daemon_proc import running
from tests.daemon.test_runs import wait_run
from tests.daemon.test_training_runs import submit, two_nodes, write_data

pytestmark = pytest.mark.slow


def test_an_exact_replay_lists_no_drift_and_an_edited_data_file_is_named_by_hash(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_data(tmp_path / "train.jsonl")
    with running(tmp_path / "home", builtins=True) as d:
        # `alpha` is left to its default, 16: a number parameter written as an integer. The recorded
        # graph carries it resolved, so the replay gives it explicitly; both must hash the same.
        original = submit(d, two_nodes(tiny_model_dir, data, max_steps=2))
        run_id = original["run"]["run_id"]
        replay = d.post(f"/v1/runs/{run_id}/replay", json={"verify": True}).json()["run"]
        assert wait_run(d, replay["run_id"], timeout=600)["run"]["state"] == "succeeded"
        report = d.get(f"/v1/runs/{replay['run_id']}/verify").json()["verify"]
        assert report["verdict"] == "bit-identical", report["summary"]
        assert report["drift"] == [], report["drift"]

        write_data(data, seed=5)  # the user edits the data file, then replays the original
        changed = d.post(f"/v1/runs/{run_id}/replay", json={}).json()["run"]
        wait_run(d, changed["run_id"], timeout=600)
        report = d.get(f"/v1/runs/{changed['run_id']}/verify").json()["verify"]
        assert report["verdict"] == "differs"
        assert "not recorded" not in report["summary"], report["summary"]
        notes = {(x["node"], x["path"]): x for x in report["drift"]}
        source = notes[("data", "inputs.source")]
        assert source["recorded"] is True and source["a"] != source["b"]
        assert source["note"] == f"data changed: sha {source['a'][:12]} → {source['b'][:12]}"
        assert "data changed: sha" in report["summary"]
