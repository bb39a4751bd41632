"""README and `--help` promises of `tunectl` that no other test pinned: Ctrl-C exits 130, the
default data and socket locations follow the XDG variables, a name registered with `models add`
is a model `train` accepts, and `train --preset/--method/--val-fraction/--format` reach the
resolved parameters the run records."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import MODULE, Daemon, cli_env, needs_testops, run_tunectl, start_daemon
from tests.support.trainer import chat_records
from tunelog.daemon.paths import Paths


@needs_testops
def test_ctrl_c_while_following_a_run_exits_130_and_leaves_the_run_going(daemon: Daemon, tmp_path: Path) -> None:
    graph = tmp_path / "slow.json"
    graph.write_text(json.dumps({"nodes": {"s": {"op": "testops.sleep", "params": {"seconds": 60}}}}))
    out = daemon.tunectl("workflow", "submit", str(graph), "--detach", "--json", "--no-cache")
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run"]["run_id"]
    # faulthandler: if the client hangs after Ctrl-C, SIGABRT makes it print where it is stuck.
    with subprocess.Popen([*MODULE, "runs", "follow", run_id], env={**daemon.env, "PYTHONFAULTHANDLER": "1"},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          # as from a terminal: a suite started in the background (`&`) passes SIGINT ignored
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as follow:
        try:
            assert follow.stdout is not None
            assert follow.stdout.readline().strip()  # following has begun once it prints
            follow.send_signal(signal.SIGINT)
            try:
                _, err = follow.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                follow.send_signal(signal.SIGABRT)
                pytest.fail(f"`runs follow` still ran 30 s after Ctrl-C; its threads:\n{follow.communicate(timeout=10)[1]}")
            assert follow.returncode == 130, err
        finally:
            if follow.poll() is None:
                follow.kill()
    assert daemon.json("runs", "show", run_id)["run"]["state"] == "running"  # only the client stopped
    assert daemon.tunectl("runs", "cancel", run_id).returncode == 0


def test_default_home_and_socket_follow_the_xdg_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNELOG_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    paths = Paths.from_env()
    assert paths.home == tmp_path / "data" / "tunelog" and paths.db == tmp_path / "data" / "tunelog" / "log.sqlite"
    assert paths.socket == tmp_path / "run" / "tunelog" / "daemon.sock"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert Paths.from_env().home == tmp_path / "me" / ".local" / "share" / "tunelog"


@needs_testops
def test_a_daemon_without_tunelog_home_keeps_its_state_and_socket_where_the_xdg_variables_say(tmp_path: Path) -> None:
    env = {k: v for k, v in cli_env(tmp_path / "unused").items() if k != "TUNELOG_HOME"}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_RUNTIME_DIR=str(tmp_path / "run"), HOME=str(tmp_path / "me"))
    home, sock = tmp_path / "data" / "tunelog", tmp_path / "run" / "tunelog" / "daemon.sock"
    started = run_tunectl(env, "daemon", "start", timeout=60)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        status = run_tunectl(env, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert (home / "log.sqlite").is_file() and sock.is_socket()
        assert not (tmp_path / "me").exists()  # nothing fell back to ~/.local/share
        assert oct(sock.parent.stat().st_mode & 0o777) == "0o700"
    finally:
        stopped = run_tunectl(env, "daemon", "stop", timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 30
    while sock.exists():
        assert time.monotonic() < deadline, "the socket outlived the daemon"
        time.sleep(0.05)


@pytest.mark.slow
def test_train_uses_a_registered_model_name_and_records_preset_method_val_fraction_and_format(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in chat_records(12)))
    d = start_daemon(tmp_path / "home")
    try:
        assert d.tunectl("models", "add", "tiny", str(tiny_model_dir)).returncode == 0
        out = d.tunectl("train", "--model", "tiny", "--data", str(data), "--preset", "lora-small",
                        "--method", "dora", "--val-fraction", "0.25", "--format", "messages",
                        "--set", "max_steps=2", "--set", "batch_size=2", "--set", "threads=1",
                        "--set", "max_length=64", "--json", timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        view = d.json("runs", "show", json.loads(out.stdout)["run"]["run_id"])
        assert view["run"]["state"] == "succeeded", view["run"]["nodes"]
        nodes = view["run"]["graph"]["nodes"]
        train = nodes["train"]["params"]
        # the preset's values, except what --method and --set replaced
        assert train["method"] == "dora" and train["r"] == 16 and train["alpha"] == 32 and train["lr"] == 0.0002
        assert train["max_steps"] == 2 and train["batch_size"] == 2
        assert nodes["data"]["params"]["format"] == "messages" and nodes["data"]["params"]["val_fraction"] == 0.25
        job = view["jobs"][view["run"]["nodes"]["train"]["job_id"]]
        assert Path(job["inputs"]["model"]).resolve() == tiny_model_dir.resolve()
        sha = view["run"]["nodes"]["data"]["outputs"]["dataset"]
        dataset = tmp_path / "home" / "artifacts" / "sha256" / sha[:2] / sha
        held_out = (dataset / "validation.jsonl").read_text().splitlines()
        assert len(held_out) == 3  # a quarter of 12 rows
    finally:
        d.stop()

