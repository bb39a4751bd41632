"""`tunectl workflow|runs|resume|models|presets` against a real daemon, with the testops plugin (no torch)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from tests.cli.conftest import Daemon, needs_testops
from tunelog.frontends.cli.app import cli

pytestmark = needs_testops


def write(path: Path, graph: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(graph) if path.suffix == ".yaml" else json.dumps(graph))
    return path


def pipe(text: str = "hello") -> dict[str, Any]:
    return {"description": "two steps", "nodes": {
        "a": {"op": "testops.outputs", "params": {"text": text}},
        "b": {"op": "testops.outputs", "params": {"text": "second"}, "inputs": {"data": {"node": "a", "output": "report"}}}}}


def run_id_of(stdout: str) -> str:
    return next(line.split()[1] for line in stdout.splitlines() if line.startswith("run r"))


def test_validate_prints_every_problem_and_exits_2(daemon: Daemon, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", {"nodes": {
        "x": {"op": "testops.outputs", "params": {"text": 3, "nope": 1}},
        "y": {"op": "testops.outputs", "inputs": {"data": {"node": "ghost", "output": "report"}}},
        "z": {"op": "testops.nosuch"}}})
    out = daemon.tunectl("workflow", "validate", str(bad))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == "Error: the workflow graph has 4 problem(s)"
    where = {line.split(":")[0].strip(" -") for line in lines[1:]}
    assert where == {"nodes.x.params.text", "nodes.x.params.nope", "nodes.y.inputs.data", "nodes.z.op"}
    assert all(line.startswith("  - nodes.") for line in lines[1:])
    good = daemon.tunectl("workflow", "validate", str(write(tmp_path / "good.json", pipe())))
    assert good.returncode == 0 and good.stdout.strip() == "ok: 2 node(s), order a -> b"
    missing = daemon.tunectl("workflow", "validate", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_submit_with_a_name_saves_it_then_list_show_export_round_trip(daemon: Daemon, tmp_path: Path) -> None:
    # "round trip" is a text no other test of this module's daemon runs, so the first submit computes.
    out = daemon.tunectl("workflow", "submit", str(write(tmp_path / "wf.yaml", pipe("round trip"))), "--name", "pipe")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("saved workflow pipe@1\nrun r")
    assert "a: completed report=" in out.stdout and "succeeded in" in out.stdout
    assert "pipe" in {w["name"] for w in daemon.json("workflow", "list")}
    shown = daemon.json("workflow", "show", "pipe")
    assert (shown["name"], shown["version"], shown["graph"]) == ("pipe", 1, pipe("round trip"))
    assert daemon.tunectl("workflow", "show", "pipe").stdout.startswith("# workflow pipe@1\ndescription: two steps")
    assert yaml.safe_load(daemon.tunectl("workflow", "export", "pipe").stdout) == pipe("round trip")
    exported = tmp_path / "exported.json"
    assert daemon.tunectl("workflow", "export", "pipe", "--version", "1", "-o", str(exported)).returncode == 0
    assert json.loads(exported.read_text()) == pipe("round trip")
    again = daemon.tunectl("workflow", "submit", str(exported))
    assert again.returncode == 0 and "a: cached" in again.stdout and "b: cached" in again.stdout
    v2 = daemon.tunectl("workflow", "submit", str(write(tmp_path / "v2.yaml", pipe("changed"))), "--name", "pipe",
                        "--detach")
    assert v2.returncode == 0 and "saved workflow pipe@2" in v2.stdout and "runs follow" in v2.stdout
    view = daemon.json("workflow", "submit", "pipe@1", "--force", "b")
    assert (view["run"]["workflow"], view["run"]["workflow_version"]) == ("pipe", 1)
    assert {n: s["state"] for n, s in view["run"]["nodes"].items()} == {"a": "cached", "b": "completed"}
    assert daemon.tunectl("workflow", "show", "ghost").returncode == 4


def test_a_failed_run_exits_6_and_runs_list_show_resume_describe_it(daemon: Daemon, tmp_path: Path) -> None:
    # Params of its own: another test of this module's daemon must not have cached "ok" already.
    graph = {"nodes": {"ok": {"op": "testops.outputs", "params": {"text": "before the failure"}},
                       "f": {"op": "testops.fail"},
                       "after": {"op": "testops.outputs", "inputs": {"data": {"node": "f", "output": "nothing"}}}}}
    out = daemon.tunectl("workflow", "submit", str(write(tmp_path / "fails.json", graph)))
    assert out.returncode == 6
    run_id = run_id_of(out.stdout)
    assert f"Error: run {run_id} failed" in out.stderr
    assert "  - f: failed: ValueError: boom" in out.stderr and "  - after: upstream node 'f'" in out.stderr
    listed = {r["run_id"]: r for r in daemon.json("runs", "list")}
    assert listed[run_id]["state"] == "failed"
    table = daemon.tunectl("runs", "list").stdout.splitlines()
    assert table[0].split() == ["RUN", "STATE", "NODES", "SUBMITTED", "TIME", "WHAT"]
    assert [line.split()[:3] for line in table if line.startswith(run_id)] == [[run_id, "failed", "1/3"]]
    view = daemon.json("runs", "show", run_id[:-2])  # a unique prefix is enough
    assert view["run"]["nodes"]["f"]["state"] == "failed" and view["jobs"]
    shown = daemon.tunectl("runs", "show", run_id).stdout
    assert "NODE   OPERATION        STATE" in shown and "ValueError: boom" in shown
    again = daemon.tunectl("resume", run_id)
    assert again.returncode == 6 and "resuming f, after" in again.stdout
    assert daemon.tunectl("runs", "follow", run_id).returncode == 6  # already over: at once
    assert daemon.tunectl("runs", "show", "rnosuch").returncode == 4


def test_cancel_then_resume_continues_from_the_checkpoint(daemon: Daemon, tmp_path: Path) -> None:
    graph = {"nodes": {"count": {"op": "testops.checkpointing", "params": {"steps": 300, "step_s": 0.02}}}}
    out = daemon.tunectl("workflow", "submit", str(write(tmp_path / "count.json", graph)), "--detach", "--json")
    run_id = json.loads(out.stdout)["run"]["run_id"]
    deadline = time.monotonic() + 60
    # Cancel once the job has counted steps, so its checkpoint is past step 0.
    while not any(j["step"] > 0 for j in daemon.json("jobs", "list", "--state", "running")):
        assert time.monotonic() < deadline, "the counting job reported no step in time"
        time.sleep(0.1)
    assert daemon.tunectl("runs", "cancel", run_id).stdout.strip() == f"cancel requested for run {run_id}"
    while daemon.json("runs", "show", run_id)["run"]["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert daemon.json("runs", "show", run_id)["run"]["state"] == "cancelled"
    resumed = daemon.tunectl("resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert "from job" in resumed.stdout and "count: step 300/300 (100%)" in resumed.stdout
    outputs = daemon.json("runs", "show", run_id)["run"]["nodes"]["count"]["outputs"]
    assert outputs["step"] == 300 and outputs["resumed_from"] > 0


def test_following_shows_progress_with_the_last_metrics(daemon: Daemon, tmp_path: Path) -> None:
    graph = {"nodes": {"p": {"op": "testops.progress", "params": {"n": 40}}}}
    out = daemon.tunectl("workflow", "submit", str(write(tmp_path / "p.json", graph)), "--no-cache")
    assert out.returncode == 0, out.stderr
    assert "p: step 40/40 (100%) loss=0.025" in out.stdout.splitlines()


def test_models_add_list_remove(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    added = daemon.json("models", "add", "mine", str(tmp_path / "weights"), "--note", "a test")
    assert added["ref"] == str(tmp_path / "weights")
    assert daemon.json("models", "add", "hub", "org/name")["ref"] == "org/name"
    assert {m["name"]: m["ref"] for m in daemon.json("models", "list")} == {"mine": str(tmp_path / "weights"),
                                                                          "hub": "org/name"}
    assert "mine  " in daemon.tunectl("models", "list").stdout
    assert daemon.tunectl("models", "remove", "mine").stdout.strip() == "removed model mine"
    assert [m["name"] for m in daemon.json("models", "list")] == ["hub"]
    gone = daemon.tunectl("models", "remove", "mine")
    assert gone.returncode == 4 and "no model named 'mine'" in gone.stderr
    assert daemon.tunectl("models", "add", "bad name!", "x").returncode == 2


def test_presets_list_and_show(daemon: Daemon) -> None:
    listed = daemon.json("presets", "list")
    assert "demo-facts" in listed and listed["demo-facts"]["params"]["max_steps"] == 40
    assert any(line.startswith("demo-facts") for line in daemon.tunectl("presets").stdout.splitlines())
    shown = daemon.tunectl("presets", "show", "demo-facts").stdout
    assert shown.startswith("demo-facts\n") and "  max_steps                40" in shown
    unknown = daemon.tunectl("presets", "show", "nope")
    assert unknown.returncode == 4 and "Hint: presets: " in unknown.stderr


def test_every_command_has_help() -> None:
    runner = CliRunner()
    paths: list[list[str]] = []

    def walk(group: Any, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            paths.append([*prefix, name])
            if hasattr(command, "commands"):
                walk(command, [*prefix, name])

    walk(cli, [])
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
    merge_help = runner.invoke(cli, ["merge", "--help"]).output
    assert "the only exact weighted sum" in merge_help and "need equal ranks" in merge_help
    assert "merge_and_unload: exact" in merge_help and "an approximation" in merge_help
    assert "`cat` combine node" in " ".join(runner.invoke(cli, ["generate", "--help"]).output.split())
