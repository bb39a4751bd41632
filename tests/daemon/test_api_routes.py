"""The job, plugin, status, rebuild, stop, event, time-travel and reproduce routes in-process over
real parts (api_support.py): what each answer holds, what each command records in the log, and
each refusal naming its field. Tests that count things get a data dir of their own."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.testclient import TestClient

from tests.daemon.api_support import app, error, ok, tagged
from tunelog.daemon.api import events as events_api
from tunelog.daemon.api.events import PAGE, Query, follow
from tunelog.daemon.services import Notifier, Services
from tunelog.events.base import event_types
from tunelog.events.jobs import JobCancelled, JobStarted
from tunelog.events.runs import ModelAdded, ModelRemoved, RunFinished
from tunelog.events.state import all_folds
from tunelog.events.streams import job_stream, run_stream

API = tuple[TestClient, Services]
STATES = "queued, running, succeeded, failed, cancelled, interrupted"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[API]:
    with app(tmp_path_factory.mktemp("home")) as pair:
        yield pair


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[API]:
    with app(tmp_path / "home") as pair:
        yield pair


def submit_job(client: TestClient, **body: Any) -> dict[str, Any]:
    return ok(client.post("/v1/jobs", json={"plugin": "testops", "operation": "sleep", **body}), 201)["job"]  # type: ignore[no-any-return]


# -- jobs -------------------------------------------------------------------------------------------

def test_a_submitted_job_carries_its_checked_params_its_plugin_code_and_its_devices(api: API) -> None:
    client, s = api
    job = submit_job(client, params={"seconds": 2}, command_id="job-1")
    plugin = s.tables.plugins.get("testops")
    assert plugin is not None
    assert (job["plugin"], job["operation"], job["params"], job["inputs"], job["state"]) == (
        "testops", "sleep", {"seconds": 2.0}, {}, "queued")
    assert (job["code_hash"], job["plugin_version"], job["resource"]) == (plugin.code_hash, "0.1.0", "cpu")
    assert submit_job(client, params={"seconds": 2}, command_id="job-1") == job
    wide = ok(client.post("/v1/jobs", json={"plugin": "tuned", "operation": "wide", "params": {"gpus": 2}}), 201)["job"]
    assert (wide["resource"], wide["devices"], wide["params"]) == ("gpu", 2, {"gpus": 2})
    fed = ok(client.post("/v1/jobs", json={"plugin": "testops", "operation": "read_file",
                                           "inputs": {"path": "/etc/hostname"}}), 201)["job"]
    assert fed["inputs"] == {"path": "/etc/hostname"}


def test_a_job_with_bad_params_and_inputs_is_refused_naming_every_one(api: API) -> None:
    client, s = api
    head = s.store.head()
    err = error(client.post("/v1/jobs", json={"plugin": "testops", "operation": "read_file",
                                              "params": {"nope": 1}, "inputs": {"other": 2}}), 422)
    assert err["message"] == "testops.read_file: the job was not submitted"
    assert [p["where"] for p in err["problems"]] == ["params.nope", "inputs.other", "inputs.path"]
    assert s.store.head() == head


def test_jobs_list_by_state_and_a_bad_state_is_refused_with_the_choices(api: API) -> None:
    client, s = api
    job, waiting = submit_job(client), submit_job(client)
    s.store.append(job_stream(job["job_id"]), [JobStarted(job_id=job["job_id"], pid=1, slot="cpu0", log_path="x")])
    running = ok(client.get("/v1/jobs", params={"state": "running", "limit": 1000}))["jobs"]
    assert job["job_id"] in [j["job_id"] for j in running] and {j["state"] for j in running} == {"running"}
    queued = ok(client.get("/v1/jobs", params={"state": "queued", "limit": 1000}))["jobs"]
    assert waiting["job_id"] in [j["job_id"] for j in queued] and {j["state"] for j in queued} == {"queued"}
    err = error(client.get("/v1/jobs", params={"state": "done", "limit": "0"}), 422)
    assert (err["message"], err["problems"]) == ("invalid job query", [
        {"where": "state", "message": f"must be one of {STATES}"},
        {"where": "limit", "message": "must be an integer from 1 to 1000, got '0'"}])


def test_a_job_is_shown_by_a_prefix_and_cancelled_with_its_reason(api: API) -> None:
    client, s = api
    job = submit_job(client)
    assert ok(client.get(f"/v1/jobs/{job['job_id'][:15]}"))["job"] == job
    cancelled = ok(client.post(f"/v1/jobs/{job['job_id'][:15]}/cancel", json={"reason": "not needed"}), 202)["job"]
    assert (cancelled["job_id"], cancelled["state"]) == (job["job_id"], "cancelled")
    reasons = [e.event.reason for e in s.store.read(stream=job_stream(job["job_id"]), types=["job-cancel-requested"])]
    assert reasons == ["not needed"]
    other = submit_job(client)
    ok(client.post(f"/v1/jobs/{other['job_id']}/cancel", json={"command_id": "cancel-1"}), 202)
    tagged = s.store.append("command-lookup", [], command_id="cancel-1")  # an empty append looks the id up
    assert [e.type for e in tagged] == ["job-cancel-requested", "job-cancelled"]
    assert [e.event.reason for e in s.store.read(stream=job_stream(other["job_id"]), types=["job-cancel-requested"])] == [
        "cancelled by user"]


# -- plugins ----------------------------------------------------------------------------------------

def test_plugins_are_listed_and_shown_and_an_unknown_one_names_the_known(api: API) -> None:
    client, s = api
    listed = ok(client.get("/v1/plugins"))["plugins"]
    assert [(p["name"], p["status"]) for p in listed] == [("broken", "failed"), ("testops", "loaded"),
                                                         ("tuned", "loaded")]
    assert ok(client.get("/v1/plugins/tuned")) == {"plugin": listed[2]}
    assert error(client.get("/v1/plugins/ghost"), 404) == {
        "code": "not_found", "message": "no plugin named 'ghost'", "hint": "known plugins: broken, testops, tuned"}


def test_an_unknown_plugin_with_none_loaded(tmp_path: Path) -> None:
    with app(tmp_path / "home", plugins=False) as (client, _):
        assert error(client.get("/v1/plugins/ghost"), 404)["hint"] == "known plugins: none"


def test_reload_checks_one_plugin_or_all_and_refuses_an_unknown_name(api: API) -> None:
    client, s = api
    assert [p["name"] for p in ok(client.post("/v1/plugins/reload", json={"name": "tuned"}))["plugins"]] == ["tuned"]
    assert [p["name"] for p in ok(client.post("/v1/plugins/reload", json={}))["plugins"]] == ["broken", "testops",
                                                                                             "tuned"]
    head = s.store.head()
    assert error(client.post("/v1/plugins/reload", json={"name": "ghost"}), 404) == {
        "code": "not_found", "message": "no plugin named 'ghost'"}
    assert s.store.head() == head


# -- status, rebuild, stop --------------------------------------------------------------------------

def test_status_names_this_daemon_its_projections_counts_and_busy_slots(fresh: API) -> None:
    client, s = fresh
    job = submit_job(client)
    submit_job(client)
    s.store.append(job_stream(job["job_id"]), [JobStarted(job_id=job["job_id"], pid=7, slot="gpu0", log_path="x")])
    ended = submit_job(client)["job_id"]  # ran on gpu1 and ended: the slot is free
    s.store.append(job_stream(ended), [JobStarted(job_id=ended, pid=8, slot="gpu1", log_path="y"),
                                       JobCancelled(job_id=ended)])
    body = ok(client.get("/v1/status"))
    head = s.store.head()
    assert {k: body[k] for k in ("version", "pid", "data_dir", "socket", "log_file", "head")} == {
        "version": "test-1.2", "pid": os.getpid(), "data_dir": str(s.paths.home), "socket": str(s.paths.socket),
        "log_file": str(s.paths.log_file), "head": head}
    assert body["projections"] == {f.table: head for f in all_folds()}
    assert body["jobs"] == {"queued": 1, "running": 1, "cancelled": 1} and body["plugins"] == {"failed": 1, "loaded": 2}
    assert body["slots"] == {"cpu0": None, "gpu0": job["job_id"], "gpu1": None}
    assert body["backend"] == {"kind": "local"}
    assert 0 <= body["uptime_s"] < 600 and round(body["uptime_s"], 3) == body["uptime_s"]


def test_rebuild_reports_identical_projections_and_names_one_that_differed(fresh: API) -> None:
    client, s = fresh
    ok(client.post("/v1/models", json={"name": "m1", "ref": "org/m1"}), 201)
    body = ok(client.post("/v1/admin/rebuild", json={}))
    assert (body["events_folded"], body["identical"], body["differs"]) == (s.store.head(), True, [])
    assert 0 <= body["seconds"] < 60 and round(body["seconds"], 4) == body["seconds"]
    with sqlite3.connect(s.store.path) as db:  # a projection drifted from its log
        db.execute("DELETE FROM models")
        db.execute("UPDATE jobs SET data = data")
    body = ok(client.post("/v1/admin/rebuild", json={"command_id": "rebuild-1"}))
    assert (body["identical"], body["differs"]) == (False, ["models"])
    assert s.tables.models.get("m1") is not None  # and is whole again


def test_stop_asks_the_daemon_to_stop_once(api: API) -> None:
    client, s = api
    stops = s.stops  # type: ignore[attr-defined]
    before = len(stops)
    assert ok(client.post("/v1/daemon/stop", json={"command_id": "stop-1"}), 202) == {"stopping": True,
                                                                                       "pid": os.getpid()}
    assert ok(client.post("/v1/daemon/stop", json={"command_id": "stop-1"}), 202)["stopping"] is True
    assert stops[before:] == ["stop requested over the API"]


# -- events -----------------------------------------------------------------------------------------

def model_events(s: Services, name: str) -> list[int]:
    """Three events on one model's stream; their positions."""
    envs = s.store.append(f"model-{name}", [ModelAdded(name=name, ref="a"), ModelRemoved(name=name),
                                            ModelAdded(name=name, ref="b")])
    return [e.position for e in envs]


def test_events_page_by_position_with_the_next_cursor(api: API) -> None:
    client, s = api
    mine = model_events(s, "paged")
    s.store.append("model-later", [ModelAdded(name="later", ref="x")])  # the head moves past the stream
    stream = {"stream": "model-paged"}
    two = ok(client.get("/v1/events", params={**stream, "limit": 2}))
    assert [e["position"] for e in two["events"]] == mine[:2] and two["next_after"] == mine[1]
    full = ok(client.get("/v1/events", params={**stream, "limit": 3}))
    assert full["next_after"] == mine[2] and full["head"] == s.store.head()
    rest = ok(client.get("/v1/events", params={**stream, "after": mine[0], "limit": 5}))
    assert [e["position"] for e in rest["events"]] == mine[1:] and rest["next_after"] == s.store.head()
    resumed = ok(client.get("/v1/events", params={**stream, "after": 0}, headers={"Last-Event-ID": str(mine[1])}))
    assert [e["position"] for e in resumed["events"]] == mine[2:]
    assert [e["type"] for e in two["events"]] == ["model-added", "model-removed"]
    assert two["events"][0]["event"] == {"type": "model-added", "name": "paged", "ref": "a", "note": ""}


def test_events_without_a_limit_come_a_page_at_a_time(api: API) -> None:
    client, s = api
    added = s.store.append("model-paged-default", [ModelAdded(name="p", ref=str(i)) for i in range(PAGE + 1)])
    page = ok(client.get("/v1/events", params={"stream": "model-paged-default"}))
    assert [e["position"] for e in page["events"]] == [e.position for e in added[:PAGE]]
    assert page["next_after"] == added[PAGE - 1].position  # not the head: one event is left


def test_events_filter_by_types_given_comma_separated_or_repeated(api: API) -> None:
    client, s = api
    mine = model_events(s, "typed")
    stream = {"stream": "model-typed"}
    for types in (["model-removed"], ["model-removed,"], ["model-removed", ""]):
        got = ok(client.get("/v1/events", params={**stream, "type": types}))["events"]
        assert [e["position"] for e in got] == [mine[1]]
    got = ok(client.get("/v1/events", params={**stream, "type": ["model-removed,model-added"]}))["events"]
    assert [e["position"] for e in got] == mine
    got = ok(client.get("/v1/events", params={**stream, "type": ["model-added", "model-removed"], "limit": 10_000}))
    assert [e["position"] for e in got["events"]] == mine


def test_a_bad_event_query_names_every_field_and_where_types_are_listed(api: API) -> None:
    client, _ = api
    err = error(client.get("/v1/events", params={"after": "x", "limit": "10001", "type": "a,bogus", "follow": "yes"},
                           headers={"Last-Event-ID": "-3"}), 422)
    assert err == {"code": "invalid", "message": "invalid event query", "hint": "types are listed by GET /v1/event-types",
                   "problems": [{"where": "after", "message": f"must be an integer from 0 to {(1 << 63) - 1}, got 'x'"},
                                {"where": "Last-Event-ID",
                                 "message": f"must be an integer from 0 to {(1 << 63) - 1}, got '-3'"},
                                {"where": "limit", "message": "must be an integer from 1 to 10000, got '10001'"},
                                {"where": "type", "message": "unknown event type 'a'"},
                                {"where": "type", "message": "unknown event type 'bogus'"},
                                {"where": "follow", "message": "must be 0 or 1, got 'yes'"}]}
    assert [e["position"] for e in ok(client.get("/v1/events", params={"limit": 1}))["events"]] == [1]  # from the start
    long = error(client.get("/v1/events", params={"type": "t" * 50, "follow": "f" * 50}), 422)["problems"]
    assert long == [{"where": "type", "message": f"unknown event type {'t' * 40!r}"},
                    {"where": "follow", "message": f"must be 0 or 1, got {'f' * 40!r}"}]
    for follow_value in ("0", "false"):
        assert ok(client.get("/v1/events", params={"limit": 1, "follow": follow_value}))["events"]
    assert error(client.get("/v1/events", params={"limit": "0"}), 422)["problems"][0]["where"] == "limit"


def test_event_types_are_listed_sorted_with_the_first_line_of_their_docs(api: API) -> None:
    client, _ = api
    types = ok(client.get("/v1/event-types"))["types"]
    assert list(types) == sorted(event_types())
    assert types["model-added"] == "A base model was registered under a short name."
    assert all(text and "\n" not in text for text in types.values())


def following(s: Services) -> Services:
    """The services with a notifier of their own: its wake-up belongs to the event loop that waits on it."""
    return replace(s, notifier=Notifier())


def frames(s: Services, after: int, *, stream: str | None = None, count: int) -> list[bytes]:
    """The first `count` chunks `GET /v1/events?follow=1` sends."""
    got: list[bytes] = []
    s = following(s)

    async def read() -> None:
        gen = follow(s, Query(after=after, limit=PAGE, stream=stream, types=(), follow=True))
        async for chunk in gen:
            got.append(chunk)
            if len(got) == count:
                break
        await gen.aclose()

    anyio.run(read)
    return got


def positions(chunks: list[bytes]) -> list[int]:
    return [int(line[4:]) for chunk in chunks for line in chunk.split(b"\n") if line.startswith(b"id: ")]


def test_following_sends_history_in_pages_then_keepalives(api: API, monkeypatch: pytest.MonkeyPatch) -> None:
    _, s = api
    monkeypatch.setattr(events_api, "KEEPALIVE_S", 0.01)
    start = s.store.head()
    added = s.store.append("model-many", [ModelAdded(name="many", ref=str(i)) for i in range(PAGE + 1)])
    chunks = frames(s, start, stream="model-many", count=4)
    assert chunks[0] == b": following\n\n" and chunks[3] == b": keepalive\n\n"
    assert positions(chunks[1:2]) == [e.position for e in added[:PAGE]]
    assert positions(chunks[2:3]) == [added[-1].position]
    first = chunks[1].split(b"\n\n")[0].split(b"\n")
    assert first[:2] == [b"id: %d" % added[0].position, b"event: model-added"]
    assert first[2].startswith(b"data: {") and b'"ref":"0"' in first[2]


def test_following_ends_after_the_last_events_once_the_daemon_stops(api: API) -> None:
    """A stopping daemon closes its notifier: a follower waiting for news sends what was appended
    and ends, with no keepalive (the server then has no stream to cut)."""
    _, s = api
    s = following(s)
    start = model_events(s, "closing")[-1]
    got: list[bytes] = []

    async def read() -> None:
        gen = follow(s, Query(after=start, limit=PAGE, stream="model-closing", types=(), follow=True))
        got.append(await gen.__anext__())  # ": following"
        async with anyio.create_task_group() as tg:
            async def stop() -> None:
                await anyio.sleep(0.05)  # the follower waits for news
                s.store.append("model-closing", [ModelAdded(name="closing", ref="last")])
                s.notifier.close()

            tg.start_soon(stop)
            with anyio.fail_after(10):
                got.extend([chunk async for chunk in gen])

    anyio.run(read)
    assert got[0] == b": following\n\n" and len(got) == 2
    assert positions(got[1:]) == [s.store.head()]

    async def waited() -> float:  # a later wait waits as before: a loop that does not look must not spin
        t0 = anyio.current_time()
        await s.notifier.wait(0.2)
        return anyio.current_time() - t0

    assert anyio.run(waited) >= 0.2


def test_following_a_stream_wakes_on_a_commit_and_sends_only_what_is_new(api: API) -> None:
    _, s = api
    s = following(s)
    start = model_events(s, "woken")[-1]
    got: list[bytes] = []

    async def read() -> None:
        gen = follow(s, Query(after=start, limit=PAGE, stream="model-woken", types=(), follow=True))
        got.append(await gen.__anext__())  # ": following"
        async with anyio.create_task_group() as tg:
            async def commit() -> None:
                await anyio.sleep(0.05)
                s.store.append("model-other", [ModelAdded(name="other", ref="x")])
                s.notifier.notify(s.store.head())
                await anyio.sleep(0.05)
                s.store.append("model-woken", [ModelRemoved(name="woken")])
                s.notifier.notify(s.store.head())
            tg.start_soon(commit)
            with anyio.fail_after(10):
                got.append(await gen.__anext__())
        await gen.aclose()

    anyio.run(read)
    assert got[0] == b": following\n\n"
    assert positions(got[1:]) == [s.store.head()] and b"event: model-removed" in got[1]


# -- time travel ------------------------------------------------------------------------------------

def test_state_at_a_position_shows_the_projections_then(api: API) -> None:
    client, s = api
    added, removed, _ = model_events(s, "travel")
    then = ok(client.get("/v1/state", params={"at": added, "tables": "models,,runs"}))
    assert set(then["tables"]) == {"models", "runs"} and then["at"] == added and then["head"] == s.store.head()
    assert "travel" in [m["name"] for m in then["tables"]["models"]]
    [env] = s.store.read(after=added - 1, limit=1)
    assert then["time"] == env.time
    later = ok(client.get("/v1/state", params={"at": removed}))
    assert set(later["tables"]) == {f.table for f in all_folds()}
    assert "travel" not in [m["name"] for m in later["tables"]["models"]]
    start = ok(client.get("/v1/state", params={"at": "0", "tables": "models"}))
    assert start == {"at": 0, "head": s.store.head(), "time": None, "tables": {"models": []}}
    assert ok(client.get("/v1/state", params={"at": s.store.head()}))["at"] == s.store.head()
    # the time is that of the event at the position, not of one after it (one append each: times differ)
    first, *_ = [s.store.append(f"model-timed-{i}", [ModelAdded(name=f"timed{i}", ref="x")])[0] for i in range(3)]
    assert ok(client.get("/v1/state", params={"at": first.position, "tables": "models"}))["time"] == first.time


@pytest.mark.parametrize("at", ["", "x", "-1", "HEAD+1"])
def test_a_position_outside_the_log_is_refused_naming_the_range(api: API, at: str) -> None:
    client, s = api
    head = s.store.head()
    raw = str(head + 1) if at == "HEAD+1" else at
    params = {"at": raw} if at else {}
    assert error(client.get("/v1/state", params=params), 422) == {
        "code": "invalid", "message": "invalid position",
        "problems": [{"where": "at", "message": f"a log position 0..{head}, got {raw!r}"}]}


# -- reproduce --------------------------------------------------------------------------------------

GRAPH = {"nodes": {"a": {"op": "testops.sleep", "params": {"seconds": 0}}}}


def finished_replay(client: TestClient, s: Services) -> tuple[str, str]:
    """A run and its replay, both ended."""
    run_id = ok(client.post("/v1/runs", json={"graph": GRAPH, "label": "orig"}), 201)["run"]["run_id"]
    replay = ok(client.post(f"/v1/runs/{run_id}/replay", json={"verify": True}), 201)
    replay_id = replay["run"]["run_id"]
    assert replay["verify"] == f"/v1/runs/{replay_id}/verify"
    for r in (run_id, replay_id):
        s.store.append(run_stream(r), [RunFinished(run_id=r, state="succeeded")])
    return run_id, replay_id


def test_a_replay_and_a_fork_tag_their_events_with_the_command_id(api: API) -> None:
    client, s = api
    run_id, _ = finished_replay(client, s)
    ok(client.post(f"/v1/runs/{run_id}/replay", json={"command_id": "tag-replay"}), 201)
    assert tagged(s, "tag-replay") == ["run-submitted"]
    ok(client.post(f"/v1/runs/{run_id}/fork", json={"node": "a", "set": {"seconds": 1}, "command_id": "tag-fork"}), 201)
    assert tagged(s, "tag-fork") == ["run-submitted"]


def test_a_replay_is_verified_against_its_original_with_the_tolerance_asked_for(api: API) -> None:
    client, s = api
    run_id, replay_id = finished_replay(client, s)
    report = ok(client.get(f"/v1/runs/{replay_id}/verify"))["verify"]
    assert (report["tolerance"]["rtol"], report["tolerance"]["atol"]) == (1e-3, 1e-8)
    assert report["baseline"] == run_id and report["run"] == replay_id
    tuned = ok(client.get(f"/v1/runs/{replay_id}/verify", params={"atol": "0.5"}))["verify"]["tolerance"]
    assert (tuned["rtol"], tuned["atol"]) == (1e-3, 0.5)
    tuned = ok(client.get(f"/v1/runs/{replay_id}/verify", params={"rtol": "0", "atol": "1e3"}))["verify"]["tolerance"]
    assert (tuned["rtol"], tuned["atol"]) == (0.0, 1000.0)
    other = ok(client.get(f"/v1/runs/{run_id}/verify", params={"against": replay_id}))["verify"]
    assert (other["baseline"], other["run"]) == (replay_id, run_id)


def test_a_bad_tolerance_is_refused_naming_each(api: API) -> None:
    client, s = api
    _, replay_id = finished_replay(client, s)
    err = error(client.get(f"/v1/runs/{replay_id}/verify", params={"rtol": "nan", "atol": "a lot"}), 422)
    assert err == {"code": "invalid", "message": "invalid tolerance", "problems": [
        {"where": "rtol", "message": "must be zero or more"}, {"where": "atol", "message": "must be a number, got 'a lot'"}]}
    assert error(client.get(f"/v1/runs/{replay_id}/verify", params={"atol": "-0.1"}), 422)["problems"] == [
        {"where": "atol", "message": "must be zero or more"}]


def test_a_run_that_is_no_replay_needs_a_run_to_compare_with(api: API) -> None:
    client, s = api
    run_id, _ = finished_replay(client, s)
    assert error(client.get(f"/v1/runs/{run_id}/verify"), 422) == {
        "code": "invalid", "message": f"run {run_id} is not a replay",
        "problems": [{"where": "against", "message": "give the run to compare with: ?against=RUN"}]}


def test_a_running_baseline_cannot_be_compared(api: API) -> None:
    client, s = api
    running = ok(client.post("/v1/runs", json={"graph": GRAPH}), 201)["run"]["run_id"]
    _, replay_id = finished_replay(client, s)
    assert error(client.get(f"/v1/runs/{replay_id}/verify", params={"against": running}), 409) == {
        "code": "job_error", "message": f"run {running} is still running; it can be compared once it has finished",
        "hint": f"wait for it: tunectl runs show {running}"}


def test_two_runs_are_diffed_in_the_order_given_and_both_are_required(api: API) -> None:
    client, s = api
    run_id, replay_id = finished_replay(client, s)
    body = ok(client.get("/v1/runs/diff", params={"a": run_id[:12], "b": replay_id}))["diff"]
    assert (body["a"]["run_id"], body["b"]["run_id"]) == (run_id, replay_id)
    assert error(client.get("/v1/runs/diff"), 422) == {
        "code": "invalid", "message": "give two runs to compare",
        "problems": [{"where": "a", "message": "required: a run id or prefix"},
                     {"where": "b", "message": "required: a run id or prefix"}]}
    assert [p["where"] for p in error(client.get("/v1/runs/diff", params={"a": run_id, "b": ""}), 422)["problems"]] == [
        "b"]


def test_lineage_goes_from_the_original_down_to_its_replay(api: API) -> None:
    client, s = api
    run_id, replay_id = finished_replay(client, s)
    for asked in (replay_id, run_id):
        tree = ok(client.get(f"/v1/runs/{asked}/lineage"))["lineage"]
        assert (tree["id"], tree["label"], tree["state"]) == (run_id, "orig", "succeeded")
        assert [(c["id"], c["relation"]) for c in tree["children"]] == [(replay_id, "replay")]


def test_a_fork_takes_its_node_step_and_changes(api: API) -> None:
    client, s = api
    run_id, _ = finished_replay(client, s)
    fork = ok(client.post(f"/v1/runs/{run_id}/fork", json={"node": "a", "set": {"seconds": 3}, "command_id": "f-1"}),
              201)["run"]
    assert fork["graph"]["nodes"]["a"]["params"]["seconds"] == 3.0
    assert fork["forked_from"]["node"] == "a" and fork["label"] == f"fork of {run_id} at a: seconds=3"
    assert ok(client.post(f"/v1/runs/{run_id}/fork", json={"node": "a", "set": {"seconds": 3}, "command_id": "f-1"}),
              201)["run"]["run_id"] == fork["run_id"]
    assert error(client.post(f"/v1/runs/{run_id}/fork", json={"node": "zz"}), 422)["problems"][0]["where"] == "node"
    assert error(client.post(f"/v1/runs/{run_id}/fork", json={"node": "a", "step": 2}), 422)["problems"] == [
        {"where": "step", "message": "node 'a' has no checkpoints"}]
    plain = ok(client.post(f"/v1/runs/{run_id}/replay", json={}), 201)
    assert set(plain) == {"run"}
