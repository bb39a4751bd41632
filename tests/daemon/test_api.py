"""The API in-process over real parts (SQLite file, plugin manager, job runner): bad input is
refused in the one error envelope and appends nothing; a fuzz over the command endpoints finds no 500."""

from __future__ import annotations

import socket
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
from tunelog.daemon.peer import peer_allowed
from tunelog.daemon.services import Services, build_services


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    services = build_services(Paths.from_env(tmp_path_factory.mktemp("home")), version="test", plugin_dirs=[FIXTURES],
                       builtin_dir=Path("/nonexistent"), slots=["cpu0"])
    store = services.store
    anyio.run(services.plugins.scan)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield client, services
    store.close()


def assert_envelope(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def test_the_error_envelope_is_pinned(api: tuple[TestClient, Services]) -> None:
    client, s = api
    head = s.store.head()
    err = assert_envelope(client.post("/v1/jobs", json={"plugin": "testops", "operation": "sleep",
                                                        "params": {"seconds": "soon", "extra": 1}}), 422, "invalid")
    assert {p["where"] for p in err["problems"]} == {"params.seconds", "params.extra"}
    assert_envelope(client.post("/v1/jobs", content=b"{not json"), 422, "invalid")
    assert_envelope(client.post("/v1/jobs", json={"plugin": 3}), 422, "invalid")
    assert_envelope(client.post("/v1/jobs", json=[1, 2]), 422, "invalid")
    assert_envelope(client.post("/v1/jobs", json={"plugin": "testops", "operation": "nope"}), 422, "plugin_error")
    assert_envelope(client.post("/v1/jobs", json={"plugin": "ghost", "operation": "x"}), 404, "not_found")
    assert_envelope(client.get("/v1/no/such/route"), 404, "not_found")
    assert_envelope(client.delete("/v1/jobs"), 405, "method_not_allowed")
    assert_envelope(client.get("/v1/jobs/ffffffff"), 404, "not_found")
    assert_envelope(client.get("/v1/events?after=-1&type=bogus"), 422, "invalid")
    assert_envelope(client.post("/v1/jobs", content=b"x" * (2 << 20),
                                headers={"content-type": "application/json"}), 413, "too_large")
    assert s.store.head() == head


def test_a_valid_submit_then_a_cancel_of_a_finished_job_is_a_job_error(api: tuple[TestClient, Services]) -> None:
    client, s = api
    r = client.post("/v1/jobs", json={"plugin": "testops", "operation": "sleep", "command_id": "c-1"})
    assert r.status_code == 201 and r.json()["job"]["params"] == {"seconds": 1.0}
    job_id = r.json()["job"]["job_id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel", json={}).json()["job"]["state"] == "cancelled"
    assert_envelope(client.post(f"/v1/jobs/{job_id}/cancel", json={}), 409, "job_error")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=8)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"plugin": st.sampled_from(["testops", "ghost", ""]) | st.text(max_size=5),
                           "operation": st.sampled_from(["sleep", "fail", "outputs"]) | st.text(max_size=5)},
                          optional={"params": json_values, "inputs": json_values, "command_id": json_values,
                                    "extra": json_values}),
)
endpoints = st.sampled_from(["/v1/jobs", "/v1/jobs/0/cancel", "/v1/plugins/reload", "/v1/admin/rebuild", "/v1/runs",
                             "/v1/workflows", "/v1/workflows/validate", "/v1/models", "/v1/runs/r0/cancel"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=endpoints, body=bodies)
def test_fuzzing_the_command_endpoints_finds_no_500(api: tuple[TestClient, Services], endpoint: str, body: Any) -> None:
    client, s = api
    if endpoint == "/v1/jobs" and isinstance(body, dict) and body.get("plugin") == "testops":
        body = {**body, "operation": "fail"} if body.get("operation") == "sleep" else body
    resp = client.post(endpoint, json=body)
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        assert "error" in resp.json()


def test_a_peer_of_another_uid_is_refused() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        import os

        assert peer_allowed(a)
        assert not peer_allowed(a, own_uid=os.getuid() + 1)
