"""WebUiApi, the narrow API a plugin page gets, over real services (SQLite, artifact store, the
built-in plugins): reads, parameter checks as the daemon makes them, a checked submit that
refuses a bad graph whole, and uploads stored content-addressed and recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tests.web.test_editor_page import in_thread
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services, build_services
from tunelog.events.errors import ValidationError
from tunelog.frontends.web.plugin_api import WebUiApi, data_dirs
from tunelog.frontends.web.ui import Ui
from tunelog.plugins.api import Manifest


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    s = build_services(Paths.from_env(tmp_path_factory.mktemp("home")), version="test", slots=["cpu0"])
    in_thread(s.plugins.scan)
    yield s
    s.store.close()


@pytest.fixture
def api(services: Services) -> WebUiApi:
    row = services.store.get("plugins", "lora_trainer")
    return WebUiApi(Ui(services), msgspec.convert(row.manifest, Manifest), query={"data": "x"})


def test_reads_are_the_projections_and_the_plugins_own_manifest(api: WebUiApi) -> None:
    assert api.manifest.name == "lora_trainer" and "train" in api.manifest.operations
    assert {"datasets.prepare", "lora_trainer.train", "adapter_merge.combine"} <= set(api.operations())
    assert api.runs() == [] and api.adapters() == [] and api.models() == []
    assert api.run("r-none") is None and api.job("j-none") is None
    assert "demo-facts" in api.presets() and api.query == {"data": "x"}
    assert not hasattr(api, "services")


def test_check_names_each_bad_parameter_with_the_preset_applied(api: WebUiApi) -> None:
    graph = {"nodes": {"train": {"op": "lora_trainer.train", "inputs": {"model": "m", "dataset": "0" * 64},
                                 "params": {"lr": "fast", "nonsense": 1, "preset": "demo-facts"}}}}
    problems = dict(api.check(graph))
    assert "expected number" in problems["nodes.train.params.lr"]
    assert any("nonsense" in w or "nonsense" in m for w, m in problems.items())
    graph["nodes"]["train"]["params"] = {"lr": 0.01, "preset": "demo-facts"}
    assert api.check(graph) == []


def test_submit_refuses_a_graph_whole_and_appends_nothing(api: WebUiApi, services: Services,
                                                         tmp_path: Path) -> None:
    head = services.store.head()
    graph = {"nodes": {"data": {"op": "datasets.prepare", "inputs": {"source": str(tmp_path / "missing.jsonl")}}}}

    async def go() -> None:
        await api.submit(graph)

    with pytest.raises(ValidationError) as refused:
        in_thread(go)
    assert "no such file or folder" in str(refused.value.problems)
    assert services.store.head() == head


def test_an_upload_is_stored_content_addressed_and_recorded(api: WebUiApi, services: Services) -> None:
    sha = api.upload("../../etc/rows.jsonl", b'{"text": "hi"}\n')
    assert api.upload("rows.jsonl", b'{"text": "hi"}\n') == sha  # same content, same artifact
    listed = api.uploads()
    assert [u["name"] for u in listed] == ["rows.jsonl"] and listed[0]["sha256"] == sha
    assert Path(listed[0]["path"]).read_bytes() == b'{"text": "hi"}\n'
    assert Path(listed[0]["path"]).parent == services.artifacts.path(sha)
    assert len(services.store.read(stream="uploads", types=["file-uploaded"])) == 2
    head = services.store.head()
    for name, data in (("empty.jsonl", b""), (".hidden", b"x")):
        with pytest.raises(ValidationError):
            api.upload(name, data)
    assert services.store.head() == head


def test_data_dirs_come_from_the_environment_or_the_home(tmp_path: Path) -> None:
    assert data_dirs(tmp_path, {}) == [tmp_path / "data"]
    assert data_dirs(tmp_path, {"TUNELOG_DATA_DIRS": "/a:/b"}) == [Path("/a"), Path("/b")]


def test_runs_are_the_newest_first_up_to_the_limit(api: WebUiApi, tmp_path: Path) -> None:
    from tunelog.events.runs import RunSubmitted

    own = build_services(Paths.from_env(tmp_path / "home"), version="test", slots=["cpu0"])
    try:
        for i in range(4):
            own.store.append(f"run-r{i}", [RunSubmitted(run_id=f"r{i}", graph={"nodes": {}}, order=[], code={})])
        mine = WebUiApi(Ui(own), api.manifest, query={})
        assert [r.run_id for r in mine.runs(limit=3)] == ["r3", "r2", "r1"]
        assert [r.run_id for r in mine.runs()] == ["r3", "r2", "r1", "r0"]
    finally:
        own.store.close()
