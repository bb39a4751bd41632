"""Lists page through the API (`?limit=&after=&order=`; adapters also by `?prefix=`), and status counts jobs
without reading them."""

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
from tunelog.events.runs import NodeCompleted


def sha(i: int) -> str:
    return f"{i:03d}".ljust(64, "a")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    services = build_services(Paths.from_env(tmp_path_factory.mktemp("home")), version="test", plugin_dirs=[FIXTURES],
                              builtin_dir=Path("/nonexistent"), slots=["cpu0"])
    for i in range(7):  # history: jobs that ended before this daemon
        services.store.append(f"job-h{i}", [JobQueued(job_id=f"h{i}", plugin="p", operation="o", params={},
                                                      code_hash="h", plugin_version="1"),
                                            JobCancelled(job_id=f"h{i}", forced=False)])
    for i in (4, 0, 3, 1, 2):  # adapters produced out of sha order: their list follows the log, not the key
        services.store.append(f"run-r{i}", [NodeCompleted(run_id=f"r{i}", node="train", job_id=f"j{i}",
                                                          cache_key=f"c{i}", outputs={"adapter": sha(i)},
                                                          output_types={"adapter": "adapter"})])
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


def adapter_pages(client: TestClient, **query: Any) -> list[list[str]]:
    out, after = [], None
    while True:
        r = client.get("/v1/adapters", params={**query, **({"after": after} if after is not None else {})})
        assert r.status_code == 200, r.text
        out.append([a["sha256"][:3] for a in r.json()["adapters"]])
        if (after := r.json()["next"]) is None:
            return out


def test_adapters_page_in_the_order_they_were_produced_both_ways(api: tuple[TestClient, Services]) -> None:
    client, _ = api
    assert adapter_pages(client, limit=2) == [["004", "000"], ["003", "001"], ["002"]]
    assert adapter_pages(client, limit=2, order="desc") == [["002", "001"], ["003", "000"], ["004"]]
    whole = client.get("/v1/adapters").json()
    assert whole["next"] is None and [a["sha256"][:3] for a in whole["adapters"]] == ["004", "000", "003", "001", "002"]
    assert whole["adapters"][0]["run_id"] == "r4" and whole["adapters"][0]["path"] is None  # folder not stored


def test_a_prefix_lists_its_matches_by_sha_and_says_when_more_match(api: tuple[TestClient, Services]) -> None:
    client, _ = api
    assert [a["sha256"] for a in client.get("/v1/adapters", params={"prefix": "003"}).json()["adapters"]] == [sha(3)]
    two = client.get("/v1/adapters", params={"prefix": "00", "limit": 2}).json()
    assert [a["sha256"][:3] for a in two["adapters"]] == ["000", "001"] and two["more"] is True
    assert client.get("/v1/adapters", params={"prefix": "9"}).json() == {"adapters": [], "next": None, "more": False}


def test_a_bad_cursor_or_prefix_is_refused_naming_each_field(api: tuple[TestClient, Services]) -> None:
    client, s = api
    head = s.store.head()
    r = client.get("/v1/adapters", params={"limit": "0", "after": "x", "order": "up"})
    assert r.status_code == 422, r.text
    assert {p["where"] for p in r.json()["error"]["problems"]} == {"limit", "after", "order"}
    r = client.get("/v1/adapters", params={"prefix": "XYZ", "after": "3"})
    assert r.status_code == 422, r.text
    problems = {p["where"]: p["message"] for p in r.json()["error"]["problems"]}
    assert set(problems) == {"prefix", "after"} and "'XYZ'" in problems["prefix"]
    assert s.store.head() == head


def test_pages_at_their_edges(api: tuple[TestClient, Services]) -> None:
    client, _ = api
    ids = [f"h{i}" for i in range(7)]
    assert pages(client, limit=1) == [[i] for i in ids]  # the smallest page; no empty page after the last
    assert pages(client, limit=7) == [ids]  # exactly one full page: no cursor to a next one
    assert pages(client, limit=6) == [ids[:6], ids[6:]]
    long = "sideways" * 6
    r = client.get("/v1/jobs", params={"order": long})
    assert r.json()["error"]["problems"] == [
        {"where": "order", "message": f"must be asc (oldest first) or desc (newest first), got {long[:40]!r}"}]
