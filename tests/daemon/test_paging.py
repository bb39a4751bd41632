"""Lists page through the API (`?limit=&after=&order=`), and status counts jobs without reading them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.daemon.daemon_proc import FIXTURES
from tunelog.daemon.app import create_app
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services, build_services
from tunelog.events.jobs import JobCancelled, JobQueued


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    services = build_services(Paths.from_env(tmp_path_factory.mktemp("home")), version="test", plugin_dirs=[FIXTURES],
                              builtin_dir=Path("/nonexistent"), slots=["cpu0"])
    for i in range(7):  # history: jobs that ended before this daemon
        services.store.append(f"job-h{i}", [JobQueued(job_id=f"h{i}", plugin="p", operation="o", params={},
                                                      code_hash="h", plugin_version="1"),
                                            JobCancelled(job_id=f"h{i}", forced=False)])
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield client, services
    services.store.close()


def pages(client: TestClient, **query: Any) -> list[list[str]]:
    out, after = [], None
    while True:
        body = client.get("/v1/jobs", params={**query, **({"after": after} if after is not None else {})}).json()
        out.append([j["job_id"] for j in body["jobs"]])
        if (after := body["next"]) is None:
            return out


def test_jobs_page_in_queue_order_both_ways(api: tuple[TestClient, Services]) -> None:
    client, _ = api
    ids = [f"h{i}" for i in range(7)]
    assert pages(client, limit=3) == [ids[:3], ids[3:6], ids[6:]]
    assert pages(client, limit=3, order="desc") == [ids[:3:-1], ids[3:0:-1], ids[:1]]
    assert pages(client, limit=3, state="queued") == [[]]
    assert client.get("/v1/jobs").json() == {"jobs": client.get("/v1/jobs", params={"limit": 100}).json()["jobs"],
                                             "next": None}


def test_bad_paging_is_refused_naming_every_field(api: tuple[TestClient, Services]) -> None:
    client, s = api
    head = s.store.head()
    for path in ("/v1/jobs", "/v1/runs"):
        r = client.get(path, params={"limit": "0", "after": "-1", "order": "up"})
        assert r.status_code == 422, r.text
        fields = {p["where"] for p in r.json()["error"]["problems"]}
        assert fields == {"limit", "after", "order"}
        assert client.get(path, params={"limit": "1001"}).status_code == 422
    assert s.store.head() == head


def test_status_counts_jobs_by_state(api: tuple[TestClient, Services]) -> None:
    client, _ = api
    body = client.get("/v1/status").json()
    assert body["jobs"] == {"cancelled": 7}
    assert body["slots"] == {"cpu0": None}
