"""Choosing the job backend: `tunectl daemon config set backend ...`, TUNELOG_RAY_ADDRESS, the refusal
without ray, and ray staying out of a daemon that runs jobs locally. (The Ray backend itself runs
against a real cluster in test_ray_backend.py.)"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from tunelog.daemon.jobs.backend import (
    BackendChoice,
    check_setting,
    choose_backend,
    config_path,
    read_config,
    require_ray,
    write_setting,
)
from tunelog.daemon.paths import Paths
from tunelog.events.errors import JobError, ValidationError
from tunelog.frontends.cli.app import cli


def tunectl(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"TUNELOG_HOME": str(home)}, catch_exceptions=False)
    return result.exit_code, result.output


def test_config_set_saves_the_ray_backend_and_the_daemon_chooses_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out = tunectl(home, "daemon", "config", "set", "backend", "ray://head.example:10001")
    assert code == 0, out
    assert "restart the daemon" in out
    assert json.loads(config_path(Paths.from_env(home)).read_text()) == {"backend": "ray://head.example:10001"}
    assert config_path(Paths.from_env(home)).stat().st_mode & 0o777 == 0o600
    choice = choose_backend(Paths.from_env(home), env={})
    assert (choice.kind, choice.address, choice.shared) == ("ray", "ray://head.example:10001", str(home / "ray-shared"))
    # the environment wins over the saved setting; `local` switches back
    assert choose_backend(Paths.from_env(home), env={"TUNELOG_RAY_ADDRESS": "10.0.0.5:6379"}).address == "10.0.0.5:6379"
    assert tunectl(home, "daemon", "config", "set", "backend", "local")[0] == 0
    assert choose_backend(Paths.from_env(home), env={}).kind == "local"
    code, out = tunectl(home, "daemon", "config", "get", "--json")
    assert json.loads(out) == {"backend": "local", "ray_local_ops": "datasets.*"}  # the default rule, shown
    # which operations stay on this machine: saved, shown, and what the daemon's Ray backend gets
    assert tunectl(home, "daemon", "config", "set", "ray_local_ops", " datasets.*, evaluate.* ")[0] == 0
    assert "ray_local_ops = datasets.*,evaluate.*" in tunectl(home, "daemon", "config", "get")[1]
    choice = choose_backend(Paths.from_env(home), env={"TUNELOG_RAY_ADDRESS": "10.0.0.5:6379"})
    assert choice.local_ops == ("datasets.*", "evaluate.*")
    assert choice.runs_locally("evaluate", "generate") == "evaluate.*"
    assert choice.runs_locally("lora_trainer", "train") is None
    assert tunectl(home, "daemon", "config", "set", "ray_local_ops", "")[0] == 0  # nothing stays local
    assert choose_backend(Paths.from_env(home), env={"TUNELOG_RAY_ADDRESS": "10.0.0.5:6379"}).local_ops == ()


def test_a_bad_setting_is_refused_by_name_and_nothing_changes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert tunectl(home, "daemon", "config", "set", "ray_max_jobs", "2")[0] == 0
    before = config_path(Paths.from_env(home)).read_bytes()
    for args, named in ((("backend", "http://head:80"), "backend"), (("ray_max_jobs", "0"), "ray_max_jobs"),
                        (("ray_shared", "relative/dir"), "ray_shared"), (("colour", "blue"), "colour"),
                        (("ray_local_ops", "datasets.*,evaluate"), "ray_local_ops")):
        code, out = tunectl(home, "daemon", "config", "set", *args)
        assert code == 2 and f"{named}:" in out, out
        assert args[0] != "ray_local_ops" or "'evaluate' is not a PLUGIN.OPERATION pattern" in out, out
    assert config_path(Paths.from_env(home)).read_bytes() == before


def test_the_shared_storage_may_be_an_fsspec_uri_and_a_bad_one_is_refused_naming_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    assert tunectl(home, "daemon", "config", "set", "ray_shared", "s3://models-bucket/tunelog/")[0] == 0
    assert read_config(Paths.from_env(home)) == {"ray_shared": "s3://models-bucket/tunelog"}
    choice = choose_backend(Paths.from_env(home), env={"TUNELOG_RAY_ADDRESS": "10.0.0.5:6379"})
    assert choice.shared == "s3://models-bucket/tunelog"
    assert tunectl(home, "daemon", "config", "set", "ray_shared", f"file://{tmp_path}/shared")[0] == 0  # a path
    assert read_config(Paths.from_env(home))["ray_shared"] == f"{tmp_path}/shared"
    before = config_path(Paths.from_env(home)).read_bytes()
    for value, said, hint in (
            ("nosuch://bucket/x", "nosuch:// is not a protocol fsspec knows", None),
            ("gs://bucket/x", "gs:// needs the `gcsfs` package, which is not installed", "pip install gcsfs"),
            ("s3://", "'s3://' names no bucket or path after s3://", None),
            ("memory://x", "memory:// lives inside one process", None),
            ("relative/dir", "'relative/dir': give an absolute path or an fsspec URI", None)):
        code, out = tunectl(home, "daemon", "config", "set", "ray_shared", value)
        assert code == 2 and f"ray_shared: {said}" in out, out
        assert hint is None or f"install it here and on every Ray node: {hint}" in out, out
    # s3fs missing: its extra's install command; a bad URI in the environment is refused when the daemon starts
    monkeypatch.setitem(sys.modules, "s3fs", None)  # what `import s3fs` meets where it is not installed
    monkeypatch.delitem(importlib.import_module("fsspec.registry")._registry, "s3", raising=False)  # nor loaded
    code, out = tunectl(home, "daemon", "config", "set", "ray_shared", "s3://bucket/x")
    assert code == 2 and "s3:// needs the `s3fs` package" in out and "pip install 'tunelog[s3]'" in out, out
    assert config_path(Paths.from_env(home)).read_bytes() == before
    with pytest.raises(ValidationError, match="cannot set the shared storage"):
        choose_backend(Paths.from_env(home), env={"TUNELOG_RAY_ADDRESS": "10.0.0.5:6379",
                                                  "TUNELOG_RAY_SHARED": "nosuch://bucket"})


def test_without_ray_the_backend_is_refused_with_the_install_command(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    home = tmp_path / "home"
    code, out = tunectl(home, "daemon", "config", "set", "backend", "ray://head:10001")
    assert code != 0 and "pip install 'tunelog[ray]'" in out, out
    assert not config_path(Paths.from_env(home)).exists()
    assert tunectl(home, "daemon", "config", "set", "backend", "local")[0] == 0  # going back needs no ray
    with pytest.raises(Exception, match=r"the Ray backend needs the `ray` package") as refused:
        choose_backend(Paths.from_env(home), env={"TUNELOG_RAY_ADDRESS": "ray://head:10001"})
    assert "pip install 'tunelog[ray]'" in str(getattr(refused.value, "hint", ""))


def test_the_daemon_imports_ray_only_for_the_ray_backend() -> None:
    code = ("import sys, pkgutil, importlib, tunelog.daemon as d\n"
            "for m in pkgutil.walk_packages(d.__path__, 'tunelog.daemon.'):\n"
            "    importlib.import_module(m.name)\n"
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_ray_backend_keeps_ray_max_jobs_on_the_cluster_and_leaves_devices_to_it(tmp_path: Path) -> None:
    from tunelog.daemon.jobs.backend import BackendChoice
    from tunelog.daemon.jobs.ray_backend import RayBackend
    from tunelog.daemon.jobs.runner import JobRunner
    from tunelog.events.errors import JobError, ValidationError
    from tunelog.store.artifacts import ArtifactStore
    from tunelog.store.sqlite import SqliteStore

    paths = Paths.from_env(tmp_path / "home")
    paths.ensure()
    backend = RayBackend(BackendChoice("ray", address="ray://head:10001", shared=str(tmp_path / "shared"), max_jobs=3,
                                       local_ops=("datasets.*",)), paths)
    runner = JobRunner(SqliteStore(paths.db), paths, ArtifactStore(paths.artifacts), backend=backend, slots=["cpu0"])
    assert runner.slots == ["ray0", "ray1", "ray2", "cpu0"]  # ray_max_jobs jobs on the cluster at once, + local
    runner.check_devices(resource="gpu", devices=8, where=None)  # the cluster, not this machine, has the GPUs
    assert runner.local_rule("datasets", "prepare") == "datasets.*" and runner.local_rule("lora_trainer", "train") is None
    with pytest.raises(JobError, match="needs 2 CPU slots and this daemon has 1"):  # a local job: this machine's slots
        runner.check_devices(resource="cpu", devices=2, where="datasets.*")
    with pytest.raises(ValidationError, match="cannot queue the job"):
        runner.check_devices(resource="cpu", devices=0)


def test_a_node_asks_the_ray_cluster_for_devices_nodes_and_a_gpu_type_and_this_machine_refuses_what_it_cannot_give(
        tmp_path: Path) -> None:
    """The request mapping (what the job's actor and its Ray Train run ask Ray for); GPUs are not
    tested here: the tests' cluster has none."""
    from tunelog.daemon.jobs.ray_backend import ray_request
    from tunelog.daemon.jobs.runner import JobRunner
    from tunelog.events.errors import ValidationError
    from tunelog.store.artifacts import ArtifactStore
    from tunelog.store.sqlite import SqliteStore

    assert ray_request(resource="any", devices=1, nodes=0, gpu_type="") == ({"num_cpus": 1}, None)
    assert ray_request(resource="gpu", devices=1, nodes=0, gpu_type="") == ({"num_cpus": 1, "num_gpus": 1}, None)
    assert ray_request(resource="any", devices=1, nodes=0, gpu_type="H100") == (
        {"num_cpus": 1, "num_gpus": 1, "accelerator_type": "H100"}, None)  # a GPU model implies a GPU
    assert ray_request(resource="cpu", devices=2, nodes=0, gpu_type="") == (
        {"num_cpus": 0}, {"num_workers": 2, "use_gpu": False, "placement_strategy": "PACK"})
    assert ray_request(resource="gpu", devices=8, nodes=2, gpu_type="A100")[1] == {
        "num_workers": 8, "use_gpu": True, "placement_strategy": "SPREAD", "accelerator_type": "A100"}
    assert ray_request(resource="gpu", devices=4, nodes=1, gpu_type="")[1]["placement_strategy"] == "STRICT_PACK"
    assert ray_request(resource="gpu", devices=2, nodes=2, gpu_type="")[1]["placement_strategy"] == "STRICT_SPREAD"

    paths = Paths.from_env(tmp_path / "home")
    paths.ensure()
    store = SqliteStore(paths.db)
    runner = JobRunner(store, paths, ArtifactStore(paths.artifacts), slots=["cpu0", "cpu1"])
    job = {"plugin": "lora_trainer", "operation": "train", "params": {}, "inputs": {}, "code_hash": "c" * 64,
           "plugin_version": "1", "resource": "any"}
    head = store.head()
    for ask, field, hint in (({"devices": 2, "nodes": 2}, "nodes", "set nodes to 0 or 1"),
                             ({"gpu_type": "A100"}, "gpu_type", "leave gpu_type empty"),
                             ({"devices": 2, "nodes": 3}, "nodes", "make devices a multiple of nodes")):
        with pytest.raises(ValidationError) as refused:
            runner.submit(**job, **ask)  # type: ignore[arg-type]
        assert refused.value.problems[0]["where"] == field
        assert hint in str(refused.value.hint)
    assert store.head() == head  # nothing queued


@pytest.mark.parametrize("ends", [{1: -9}, {0: 1, 1: -9}, {1: -9, 0: 1}])
def test_a_ray_train_rank_killed_by_a_signal_loses_the_job_whichever_rank_failed_first(ends: dict[int, int]) -> None:
    """The killed rank is named, though rank 0 (whose collectives broke when its peer died) may
    have exited with an error before the killed rank's death was seen."""
    from tunelog.daemon.jobs.ray_host import ray_train_outcome

    rc, lost = ray_train_outcome(ends, "\nTrainingFailedError: rank 1: the worker exited with status -9\nmore",
                                 stop_asked=False)
    assert lost == ("the Ray Train run lost a worker: rank 1's worker died from SIGKILL; "
                    "TrainingFailedError: rank 1: the worker exited with status -9")
    assert rc == ends.get(0, 1)


def test_ray_train_ranks_that_exit_with_an_error_fail_the_job_and_a_silent_failure_is_a_lost_node() -> None:
    from tunelog.daemon.jobs.ray_host import ray_train_outcome

    assert ray_train_outcome({0: 3, 1: 1}, "boom", stop_asked=False) == (3, None)  # rank 0's status
    assert ray_train_outcome({1: 2}, "boom", stop_asked=False) == (2, None)  # rank 0 was ended by Ray Train
    assert ray_train_outcome({}, "ActorDiedError: node gone\n", stop_asked=False) == (
        1, "the Ray Train run lost a worker or its node: ActorDiedError: node gone")
    assert ray_train_outcome({0: 0}, "x", stop_asked=False) == (1, "the Ray Train run lost a worker or its node: x")
    assert ray_train_outcome({1: -15, 0: 1}, "stopped", stop_asked=True) == (1, None)  # a stop is not a loss


def refusal(err: pytest.ExceptionInfo[ValidationError]) -> tuple[str, list[tuple[str, str]]]:
    return err.value.message, [(p["where"], p["message"]) for p in err.value.problems]


def test_a_damaged_config_file_is_refused_naming_it(tmp_path: Path) -> None:
    paths = Paths.from_env(tmp_path / "home")
    assert read_config(paths) == {}  # never saved
    path = config_path(paths)
    path.parent.mkdir(parents=True)
    path.write_text('{"ray_max_jobs": 3, "backend": "local"}')
    assert read_config(paths) == {"ray_max_jobs": "3", "backend": "local"}  # a hand-written number
    for text, said in (("{not json", f"cannot read {path}: "), ("[1, 2]", f"{path} must hold a JSON object")):
        path.write_text(text)
        with pytest.raises(ValidationError) as err:
            read_config(paths)
        assert err.value.message.startswith(said) and err.value.hint == "fix or remove the file"
    path.unlink()
    path.mkdir()  # not a file
    with pytest.raises(ValidationError, match=f"^cannot read {path}: .*Is a directory"):
        choose_backend(paths, env={})


def test_each_setting_is_checked_and_normalised() -> None:
    assert check_setting("backend", "local") == "local"
    assert check_setting("backend", "ray://head.example:10001") == "ray://head.example:10001"
    assert check_setting("backend", "ray://[::1]:10001") == "ray://[::1]:10001"
    assert [check_setting("ray_max_jobs", v) for v in ("1", "12")] == ["1", "12"]
    assert check_setting("ray_local_ops", "datasets.*,, evaluate.run ,x-y.z?") == "datasets.*,evaluate.run,x-y.z?"
    assert check_setting("ray_local_ops", " , ") == ""
    with pytest.raises(ValidationError) as err:
        check_setting("colour", "blue")
    assert refusal(err) == ("unknown setting", [("colour", "settings are backend, ray_shared, ray_max_jobs, "
                                                           "ray_local_ops")])
    for bad in ("ray://head", "ray://:10001", "ray://head:port", "head:10001", "ray:/head:1", "LOCAL"):
        with pytest.raises(ValidationError) as err:
            check_setting("backend", bad)
        assert refusal(err) == ("cannot set the backend",
                                [("backend", f"{bad!r} is neither `local` nor `ray://HOST:PORT`")]), bad
    for bad in ("0", "-1", "two", "", "1.5"):
        with pytest.raises(ValidationError) as err:
            check_setting("ray_max_jobs", bad)
        assert refusal(err) == ("cannot set the job limit", [("ray_max_jobs", "a whole number >= 1")]), bad
    with pytest.raises(ValidationError) as err:
        check_setting("ray_local_ops", "datasets, evaluate.run, a.b.c")
    assert refusal(err) == ("cannot set the operations that stay local", [
        ("ray_local_ops", f"{p!r} is not a PLUGIN.OPERATION pattern such as datasets.* or evaluate.run")
        for p in ("datasets", "a.b.c")])


def test_a_saved_setting_is_kept_with_the_others_in_a_private_file(tmp_path: Path) -> None:
    paths = Paths.from_env(tmp_path / "data" / "home")
    assert write_setting(paths, "ray_max_jobs", "2") == {"ray_max_jobs": "2"}  # the home is made too
    assert config_path(paths) == paths.home / "config.json" and paths.home.stat().st_mode & 0o777 == 0o700
    assert write_setting(paths, "ray_local_ops", "evaluate.* ,datasets.*") == {
        "ray_max_jobs": "2", "ray_local_ops": "evaluate.*,datasets.*"}
    assert config_path(paths).read_text() == '{\n  "ray_local_ops": "evaluate.*,datasets.*",\n  "ray_max_jobs": "2"\n}\n'
    assert config_path(paths).stat().st_mode & 0o777 == 0o600
    assert [p.name for p in config_path(paths).parent.iterdir()] == ["config.json"]  # no temporary file left
    assert write_setting(paths, "ray_max_jobs", "5")["ray_max_jobs"] == "5"


def test_the_environment_wins_over_each_saved_setting(tmp_path: Path) -> None:
    paths = Paths.from_env(tmp_path / "home")
    write_setting(paths, "backend", "ray://saved:10001")
    write_setting(paths, "ray_shared", str(tmp_path / "saved"))
    write_setting(paths, "ray_max_jobs", "7")
    saved = choose_backend(paths, env={"TUNELOG_RAY_ADDRESS": "  "})  # blank: not set
    assert saved == BackendChoice("ray", address="ray://saved:10001", shared=str(tmp_path / "saved"), max_jobs=7,
                                  local_ops=("datasets.*",))
    chosen = choose_backend(paths, env={"TUNELOG_RAY_ADDRESS": " 10.0.0.5:6379 ",
                                        "TUNELOG_RAY_SHARED": str(tmp_path / "env")})
    assert (chosen.address, chosen.shared) == ("10.0.0.5:6379", str(tmp_path / "env"))
    assert choose_backend(paths, env={"TUNELOG_RAY_ADDRESS": "local"}) == BackendChoice("local")
    fresh = Paths.from_env(tmp_path / "fresh")
    default = choose_backend(fresh, env={"TUNELOG_RAY_ADDRESS": "head:6379"})
    assert (default.shared, default.max_jobs, default.local_ops) == (str(fresh.home / "ray-shared"), 4,
                                                                    ("datasets.*",))
    assert choose_backend(fresh, env={}) == BackendChoice("local")


def test_operations_stay_local_by_the_first_pattern_that_matches_case_and_all() -> None:
    choice = BackendChoice("ray", address="head:6379", local_ops=("datasets.*", "*.prepare", "evaluate.run"))
    assert choice.runs_locally("datasets", "prepare") == "datasets.*"
    assert choice.runs_locally("other", "prepare") == "*.prepare"
    assert choice.runs_locally("evaluate", "run") == "evaluate.run"
    assert choice.runs_locally("Datasets", "split") is None and choice.runs_locally("evaluate", "runs") is None
    assert BackendChoice("local").runs_locally("datasets", "prepare") is None


def test_ray_that_cannot_be_looked_up_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    require_ray()  # installed here
    broken = types.ModuleType("ray")
    broken.__spec__ = None  # find_spec raises ValueError for such a module
    monkeypatch.setitem(sys.modules, "ray", broken)
    with pytest.raises(JobError) as err:
        require_ray()
    assert err.value.message == "the Ray backend needs the `ray` package, which is not installed"
    assert err.value.hint == ("install it: pip install 'tunelog[ray]' (or set the backend back: "
                              "tunectl daemon config set backend local)")
