"""The submit checks (daemon/runs/preflight.py) on real parts: a real store and artifact store, a real
plugin with a checks module run in its throwaway process. What a `model` or `path` input may name,
the text of each refusal, and the plugin's problems and warnings placed on the field they name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tunelog.daemon.paths import Paths
from tunelog.daemon.runs.graph import parse_graph
from tunelog.daemon.runs.preflight import check_graph, consumers, model_problem, path_problem, submit_checked
from tunelog.daemon.services import Services, build_services
from tunelog.events.errors import ValidationError
from tunelog.events.runs import ModelAdded

MANIFEST = {
    "name": "toy", "version": "1", "description": "d", "checks": "checks.py",
    "operations": {
        "prep": {"description": "p", "resource": "cpu",
                 "outputs": {"rows": {"type": "json", "description": "r"}}},
        "train": {"description": "t", "resource": "gpu",
                  "inputs": {"model": {"type": "model", "description": "m"},
                             "data": {"type": "path", "description": "d"},
                             "hint": {"type": "json", "description": "h"}},
                  "params": {"size": {"type": "integer", "description": "s", "default": 1}},
                  "outputs": {"adapter": {"type": "adapter", "description": "a"}}},
    },
}
CHECKS = '''
import json


def train(params, inputs, facts):
    problems = [("size", "too big")] if params["size"] > 3 else []
    return problems, [("inputs.model", json.dumps({"model": inputs.get("model"), "facts": facts}, sort_keys=True))]


def prep(params, inputs, facts):
    return [], [("rows", f"fed to {[c['node'] + '.' + c['port'] for c in facts['consumers']]}")]
'''
BROKEN = {"name": "bad", "version": "1", "description": "d", "checks": "checks.py",
          "operations": {"op": {"description": "o", "resource": "cpu"}}}


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    plugins = tmp_path_factory.mktemp("plugins")
    folder = plugins / "toy"
    folder.mkdir()
    (folder / "manifest.yaml").write_text(yaml.safe_dump(MANIFEST))
    (folder / "backend.py").write_text("def train(ctx, params, inputs):\n    return {}\n\n\nprep = train\n")
    (folder / "checks.py").write_text(CHECKS)
    bad = plugins / "bad"
    bad.mkdir()
    (bad / "manifest.yaml").write_text(yaml.safe_dump(BROKEN))
    (bad / "backend.py").write_text("def op(ctx, params, inputs):\n    return {}\n")
    (bad / "checks.py").write_text("def op(params, inputs, facts):\n    raise RuntimeError('boom')\n")
    services = build_services(Paths.from_env(tmp_path_factory.mktemp("home")), version="test", plugin_dirs=[plugins],
                              builtin_dir=Path("/nonexistent"), slots=["cpu0", "gpu0", "gpu1"])
    anyio.run(services.plugins.scan)
    yield services
    services.store.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    good = root / "good"
    good.mkdir()
    (good / "config.json").write_text("{}")
    (good / "model.safetensors").write_bytes(b"w")
    one_gguf = root / "one-gguf"
    one_gguf.mkdir()
    (one_gguf / "m.gguf").write_bytes(b"GGUF")
    two_gguf = root / "two-gguf"
    two_gguf.mkdir()
    (two_gguf / "a.gguf").write_bytes(b"GGUF")
    (two_gguf / "b.gguf").write_bytes(b"GGUF")
    (two_gguf / "config.json").write_text("{}")
    no_config = root / "no-config"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(b"w")
    no_weights = root / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    (no_weights / "notes.txt").write_text("x")
    (root / "m.gguf").write_bytes(b"GGUF and weights")
    (root / "fake.gguf").write_bytes(b"GGU")
    return {"root": root, "good": good, "one_gguf": one_gguf, "two_gguf": two_gguf, "no_config": no_config,
            "no_weights": no_weights, "gguf": root / "m.gguf", "fake": root / "fake.gguf"}


def test_model_folders_and_files_are_told_apart(s: Services, models: dict[str, Path]) -> None:
    for ok in ("good", "one_gguf", "gguf"):
        assert model_problem(s, str(models[ok])) == (str(models[ok]), None)
    two = models["two_gguf"]  # two .gguf files are not one model; its config.json has no weights beside it
    assert model_problem(s, str(two)) == (str(two), f"folder {two} is not a model: it has no weights "
                                                    "(.safetensors, .bin, .pt, .pth files)")
    assert model_problem(s, str(models["no_config"]))[1] == (
        f"folder {models['no_config']} is not a model: it has no config.json (nor exactly one .gguf file)")
    assert model_problem(s, str(models["no_weights"]))[1] == (
        f"folder {models['no_weights']} is not a model: it has no weights (.safetensors, .bin, .pt, .pth files)")
    fake = str(models["fake"])
    assert model_problem(s, fake) == (fake, f"{fake} is neither a model folder nor a .gguf file")


def test_hub_ids_names_and_missing_paths(s: Services, models: dict[str, Path]) -> None:
    assert model_problem(s, "owner/name@main") == ("owner/name@main", None)
    assert model_problem(s, "tinyllama") == ("tinyllama", "no registered model named 'tinyllama' (`tunectl models "
                                                          "list` shows them; a hub id is owner/name)")
    missing = str(models["root"] / "gone")
    assert model_problem(s, missing) == (missing, f"no such file or folder: {missing}")
    assert model_problem(s, "./gone.gguf") == ("./gone.gguf", "no such file or folder: ./gone.gguf")
    assert path_problem(str(models["gguf"])) is None
    assert path_problem("owner/data") is None
    assert path_problem(missing) == f"no such file or folder: {missing}"


def test_a_registered_name_stands_for_its_reference(s: Services, models: dict[str, Path]) -> None:
    good, missing = str(models["good"]), str(models["root"] / "gone")
    s.store.append("model-good", [ModelAdded(name="good", ref=good)])
    s.store.append("model-broken", [ModelAdded(name="broken", ref=missing)])
    s.store.append("model-owner/self", [ModelAdded(name="owner/self", ref="owner/self")])
    s.store.append("model-alias", [ModelAdded(name="alias", ref="good")])
    assert model_problem(s, "good") == (good, None)
    assert model_problem(s, "alias") == (good, None)  # a name for a name is followed
    assert model_problem(s, "broken") == (missing, f"registered model 'broken' ({missing}): no such file or folder: "
                                                   f"{missing}")
    assert model_problem(s, "owner/self") == ("owner/self", None)  # registered under its own hub id: no loop


def test_a_model_artifact_is_named_by_its_hash(s: Services, models: dict[str, Path]) -> None:
    ref = s.artifacts.put_dir(models["good"])
    got, problem = model_problem(s, ref.sha256)
    assert problem is None and got == str(s.artifacts.path(ref.sha256, verify=False))
    assert (Path(got) / "config.json").is_file()
    absent = "ab" * 32
    assert model_problem(s, absent) == (absent, "no model artifact abababababab in the store")
    # a hash with a newline after it is no artifact reference (a pattern's `$` would match before it)
    assert model_problem(s, ref.sha256 + "\n")[0] != str(s.artifacts.path(ref.sha256, verify=False))


def graph(model: str, data: str, size: int = 1, hint: Any = None) -> dict[str, Any]:
    return {"nodes": {  # train first: the plugin's first node decides whether its check sees CUDA
        "train": {"op": "toy.train", "params": {"size": size},
                  "inputs": {"model": model, "data": data, "hint": hint or {"node": "prep", "output": "rows"}}},
        "prep": {"op": "toy.prep"},
    }}


def check(s: Services, raw: dict[str, Any]) -> list[tuple[str, str]]:
    async def go() -> list[tuple[str, str]]:
        return await check_graph(s, raw)

    return anyio.run(go)


def test_every_problem_is_refused_at_once_naming_its_field(s: Services, models: dict[str, Path]) -> None:
    missing = str(models["root"] / "gone.jsonl")
    with pytest.raises(ValidationError) as one:
        check(s, graph(str(models["good"]), missing))
    assert one.value.message == "the run cannot start: 1 problem"
    assert one.value.problems == [{"where": "nodes.train.inputs.data", "message": f"no such file or folder: {missing}"}]
    with pytest.raises(ValidationError) as three:
        check(s, graph("tinyllama", missing, size=5, hint="free text"))  # a literal of another type is skipped
    assert three.value.message == "the run cannot start: 3 problems"
    assert [p["where"] for p in three.value.problems] == [
        "nodes.train.inputs.data", "nodes.train.inputs.model", "nodes.train.params.size"]
    assert three.value.problems[2]["message"] == "too big"


def test_the_plugin_check_sees_the_resolved_model_the_machine_and_the_consumers(
        s: Services, models: dict[str, Path]) -> None:
    s.store.append("model-tiny", [ModelAdded(name="tiny", ref=str(models["good"]))])
    warnings = check(s, graph("tiny", "owner/data"))
    assert [w for w, _ in warnings] == ["nodes.train.inputs.model", "nodes.prep.rows"]
    seen = json.loads(warnings[0][1])
    assert seen == {"model": str(models["good"]),  # the registered name as the plugin will see it
                    "facts": {"cuda": True, "gpu_slots": 2, "consumers": []}}
    assert warnings[1][1] == "fed to ['train.hint']"


def test_consumers_name_the_nodes_fed_by_a_node(s: Services, models: dict[str, Path]) -> None:
    parsed = parse_graph(graph("owner/m", "owner/d", size=2), s.plugins)
    assert consumers(parsed, "prep") == [{"node": "train", "op": "toy.train", "port": "hint", "output": "rows",
                                          "params": {"size": 2}}]
    assert consumers(parsed, "train") == []


def test_a_broken_checks_module_refuses_each_of_its_nodes(s: Services) -> None:
    raw = {"nodes": {"a": {"op": "bad.op"}, "b": {"op": "bad.op"}, "t": {"op": "toy.prep"}}}
    with pytest.raises(ValidationError) as refused:
        check(s, raw)
    assert refused.value.message == "the run cannot start: 2 problems", refused.value.problems
    assert [p["where"] for p in refused.value.problems] == ["nodes.a", "nodes.b"]
    assert all(p["message"].startswith("plugin bad's checks failed: ") and "RuntimeError: boom" in p["message"]
               for p in refused.value.problems)


def test_a_checked_graph_is_submitted_with_its_settings_and_warnings(s: Services, models: dict[str, Path]) -> None:
    async def go() -> tuple[Any, list[tuple[str, str]]]:
        return await submit_checked(s, graph(str(models["good"]), "owner/data"), label="checked run")

    run, warnings = anyio.run(go)
    assert run.label == "checked run" and s.tables.runs.get(run.run_id) is not None
    assert [w for w, _ in warnings] == ["nodes.train.inputs.model", "nodes.prep.rows"]
