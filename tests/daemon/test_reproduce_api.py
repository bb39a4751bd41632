"""The reproduce and time-travel routes in-process: bad input gets the one error envelope, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.daemon.daemon_proc import FIXTURES
from tunelog.daemon.app import create_app
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import build_services

GRAPH = {"nodes": {"train": {"op": "testops.curve", "params": {"steps": 4}}}}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """The app over real parts; no scheduler runs, so a submitted run stays `running`."""
    services = build_services(Paths.from_env(tmp_path_factory.mktemp("home")), version="test", plugin_dirs=[FIXTURES],
                       builtin_dir=Path("/nonexistent"), slots=["cpu0"])
    store = services.store
    anyio.run(services.plugins.scan)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        run_id = client.post("/v1/runs", json={"graph": GRAPH}).json()["run"]["run_id"]
        yield client, run_id
    store.close()


def error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def test_unknown_runs_are_404_and_a_running_run_cannot_be_verified(api: tuple[TestClient, str]) -> None:
    client, run_id = api
    for resp in (client.post("/v1/runs/nope/replay", json={}), client.get("/v1/runs/nope/verify"),
                 client.get("/v1/runs/nope/lineage"), client.get("/v1/runs/diff", params={"a": run_id, "b": "nope"}),
                 client.post("/v1/runs/nope/fork", json={"node": "train"})):
        assert error(resp, 404)["code"] == "not_found"
    replay = client.post(f"/v1/runs/{run_id}/replay", json={"command_id": "rp-1"}).json()["run"]
    assert client.post(f"/v1/runs/{run_id}/replay", json={"command_id": "rp-1"}).json()["run"]["run_id"] == replay["run_id"]
    assert (replay["replay_of"], replay["no_cache"], replay["code"]) == (run_id, True, client.get(
        f"/v1/runs/{run_id}").json()["run"]["code"])
    assert "still running" in error(client.get(f"/v1/runs/{replay['run_id']}/verify"), 409)["message"]
    bad = error(client.get(f"/v1/runs/{replay['run_id']}/verify", params={"rtol": "x", "atol": "-1"}), 422)
    assert [p["where"] for p in bad["problems"]] == ["rtol", "atol"]
    assert error(client.get("/v1/state", params={"at": "\u00b3"}), 422)["problems"][0]["where"] == "at"
    assert error(client.post(f"/v1/runs/{run_id}/fork", json={"node": "train", "step": 3}), 422)["problems"] == [
        {"where": "step", "message": "node 'train' has no checkpoints"}]


def test_a_fork_without_checkpoints_records_none_and_the_changed_params(api: tuple[TestClient, str]) -> None:
    client, run_id = api
    fork = client.post(f"/v1/runs/{run_id}/fork", json={"node": "train", "set": {"scale": 3}}).json()["run"]
    assert fork["forked_from"] == {"run": run_id, "node": "train", "step": None, "job": None, "checkpoint": None}
    assert fork["graph"]["nodes"]["train"]["params"]["scale"] == 3.0  # validated and coerced again
    assert fork["label"] == f"fork of {run_id} at train: scale=3"


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(max_size=10),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=8)
fork_bodies = st.fixed_dictionaries({"node": st.sampled_from(["train", "ghost"]) | json_values},
                                    optional={"step": json_values, "set": json_values, "command_id": json_values})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["replay", "fork", "verify", "diff", "state"]), body=st.one_of(json_values, fork_bodies),
       text=st.text(max_size=12))
def test_fuzzing_the_reproduce_routes_finds_no_500(api: tuple[TestClient, str], kind: str, body: Any, text: str) -> None:
    client, run_id = api
    if kind in ("replay", "fork"):
        resp = client.post(f"/v1/runs/{run_id}/{kind}", json=body)
    elif kind == "verify":
        resp = client.get(f"/v1/runs/{run_id}/verify", params={"against": text, "rtol": text})
    elif kind == "diff":
        resp = client.get("/v1/runs/diff", params={"a": run_id, "b": text})
    else:
        resp = client.get("/v1/state", params={"at": text, "tables": text})
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        assert "error" in resp.json()
