"""The run, workflow, adapter, model, operation and preset routes (daemon/api/runs.py) in-process
over real parts (api_support.py): what each answer holds, what each command records in the log,
and each refusal naming its field. Each test makes its own runs, workflows and models, so the
tests run in any order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.daemon.api_support import app, error, ok, tagged
from tunelog.daemon.services import Services
from tunelog.events.runs import NodeCompleted, NodeFailed, NodeQueued, RunFinished
from tunelog.events.streams import run_stream

API = tuple[TestClient, Services]
GRAPH = {"nodes": {"a": {"op": "testops.sleep", "params": {"seconds": 0}}}}
TWO = {"nodes": {"a": {"op": "testops.sleep"}, "b": {"op": "testops.outputs", "params": {"text": "hi"}}}}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[API]:
    with app(tmp_path_factory.mktemp("home")) as pair:
        yield pair


def submit(client: TestClient, **body: Any) -> dict[str, Any]:
    return ok(client.post("/v1/runs", json=body), 201)  # type: ignore[no-any-return]


def logged(s: Services, run_id: str, tag: str) -> list[Any]:
    return [e.event for e in s.store.read(stream=run_stream(run_id), types=[tag])]


def test_a_submitted_run_is_answered_with_its_row_and_the_plugins_warnings(api: API) -> None:
    client, s = api
    body = submit(client, graph={"nodes": {"m": {"op": "tuned.make", "params": {"preset": "fast"}}}},
                  no_cache=True, force=["m"], label="first try")
    run = body["run"]
    assert body["warnings"] == [{"where": "nodes.m.params.lr", "message": "lr is 0.5"}]
    assert (run["state"], run["no_cache"], run["force"], run["label"]) == ("running", True, ["m"], "first try")
    assert run["graph"]["nodes"]["m"]["params"] == {"preset": "fast", "lr": 0.5}
    assert run == ok(client.get(f"/v1/runs/{run['run_id']}"))["run"]
    plain = submit(client, graph=GRAPH)
    assert plain["warnings"] == [] and (plain["run"]["no_cache"], plain["run"]["force"]) == (False, [])


def test_a_run_needs_exactly_one_of_a_graph_and_a_workflow(api: API) -> None:
    client, s = api
    head = s.store.head()
    for body in ({}, {"graph": GRAPH, "workflow": "w"}):
        assert error(client.post("/v1/runs", json=body), 422) == {
            "code": "invalid", "message": "give a graph or a workflow",
            "problems": [{"where": "graph", "message": "exactly one of graph, workflow"}]}
    assert s.store.head() == head


def test_a_retried_submit_is_the_same_run(api: API) -> None:
    client, _ = api
    first = submit(client, graph=GRAPH, command_id="run-retry")["run"]
    assert submit(client, graph=GRAPH, command_id="run-retry")["run"]["run_id"] == first["run_id"]


def test_workflows_are_saved_in_versions_and_run_by_name_or_version(api: API) -> None:
    client, s = api
    one = ok(client.post("/v1/workflows", json={"name": "flow-1_a.b", "graph": GRAPH}), 201)["workflow"]
    assert (one["name"], one["version"], one["graph"]) == ("flow-1_a.b", 1, GRAPH)
    two = ok(client.post("/v1/workflows", json={"name": "flow-1_a.b", "graph": TWO, "command_id": "wf-2"}), 201)
    assert two["workflow"]["version"] == 2
    assert ok(client.post("/v1/workflows", json={"name": "flow-1_a.b", "graph": TWO, "command_id": "wf-2"}), 201) == two
    assert ok(client.get("/v1/workflows/flow-1_a.b")) == {"workflow": {"name": "flow-1_a.b", "version": 2, "graph": TWO}}
    assert ok(client.get("/v1/workflows/flow-1_a.b", params={"version": "1"}))["workflow"] == {
        "name": "flow-1_a.b", "version": 1, "graph": GRAPH}
    listed = {w["name"]: w for w in ok(client.get("/v1/workflows"))["workflows"]}
    assert listed["flow-1_a.b"]["version"] == 2 and listed["flow-1_a.b"]["graph"] == TWO

    latest = submit(client, workflow="flow-1_a.b")["run"]
    assert (latest["workflow"], latest["workflow_version"], latest["order"]) == ("flow-1_a.b", 2, ["a", "b"])
    first = submit(client, workflow="flow-1_a.b@1")["run"]
    assert (first["workflow"], first["workflow_version"], first["order"]) == ("flow-1_a.b", 1, ["a"])
    assert first["graph"]["nodes"]["a"]["params"] == {"seconds": 0.0}
    assert [e.version for e in s.store.read(stream="workflow-flow-1_a.b")] == [1, 2]


@pytest.mark.parametrize("version", ["0", "3", "x", "-1", "1.0", "9" * 50])
def test_a_workflow_version_it_does_not_have_is_refused_naming_the_range(api: API, version: str) -> None:
    client, s = api
    if s.tables.workflows.get("ranged") is None:
        for graph in (GRAPH, TWO):
            ok(client.post("/v1/workflows", json={"name": "ranged", "graph": graph}), 201)
    want = {"code": "invalid", "message": "invalid workflow version",
            "problems": [{"where": "workflow", "message": f"ranged has versions 1..2, got {version[:40]!r}"}]}
    assert error(client.get("/v1/workflows/ranged", params={"version": version}), 422) == want
    assert error(client.post("/v1/runs", json={"workflow": f"ranged@{version}"}), 422) == want
    assert error(client.post("/v1/runs", json={"workflow": f"ranged@1@{version}"}), 422)["problems"] == [
        {"where": "workflow", "message": f"ranged has versions 1..2, got {f'1@{version}'[:40]!r}"}]


def test_an_unknown_workflow_is_a_404_with_a_hint(api: API) -> None:
    client, _ = api
    want = {"code": "not_found", "message": "no workflow named 'ghost'", "hint": "`tunectl workflow list` shows them"}
    assert error(client.get("/v1/workflows/ghost"), 404) == want
    assert error(client.post("/v1/runs", json={"workflow": "ghost@1"}), 404) == want


@pytest.mark.parametrize("name", ["", "a b", "a/b", "caf\u00e9!", "x:y"])
def test_a_workflow_name_outside_its_alphabet_is_refused_and_nothing_saved(api: API, name: str) -> None:
    client, s = api
    head = s.store.head()
    assert error(client.post("/v1/workflows", json={"name": name, "graph": GRAPH}), 422) == {
        "code": "invalid", "message": "invalid workflow name",
        "problems": [{"where": "name", "message": "letters, digits, '-', '_' and '.' only"}]}
    assert s.store.head() == head


def test_a_workflow_with_a_bad_graph_is_refused_and_nothing_saved(api: API) -> None:
    client, s = api
    head = s.store.head()
    err = error(client.post("/v1/workflows", json={"name": "badgraph", "graph": {"nodes": {"a": {"op": "testops.nope"}}}}),
                422)
    assert err["problems"][0]["where"].startswith("nodes.a")
    assert s.store.head() == head and s.tables.workflows.get("badgraph") is None


def test_validate_answers_the_order_and_the_resolved_graph_and_saves_nothing(api: API) -> None:
    client, s = api
    head = s.store.head()
    body = ok(client.post("/v1/workflows/validate", json={"graph": {"nodes": {
        "b": {"op": "testops.outputs", "inputs": {"data": {"node": "a", "output": "report"}}},
        "a": {"op": "testops.outputs"}}}}))
    assert body["ok"] is True and body["order"] == ["a", "b"]
    assert body["graph"]["nodes"]["a"]["params"] == {"text": "hello", "delay": 0.0}
    assert s.store.head() == head
    assert error(client.post("/v1/workflows/validate", json={"graph": {"nodes": {"a": {"op": "ghost.x"}}}}), 422)[
        "problems"] == [{"where": "nodes.a.op", "message": "unknown operation 'ghost.x': no plugin named 'ghost' "
                                                   "(known plugins: testops, tuned)"}]


def test_runs_page_in_submission_order(api: API) -> None:
    client, _ = api
    ids = [submit(client, graph=GRAPH, label=f"paged {i}")["run"]["run_id"] for i in range(3)]
    newest = ok(client.get("/v1/runs", params={"order": "desc", "limit": 2}))
    assert [r["run_id"] for r in newest["runs"]] == ids[:0:-1] and newest["next"] is not None
    after = ok(client.get("/v1/runs", params={"order": "desc", "limit": 2, "after": newest["next"]}))
    assert [r["run_id"] for r in after["runs"]][0] == ids[0]
    every = [r["run_id"] for r in ok(client.get("/v1/runs", params={"limit": 1000}))["runs"]]
    assert every[-3:] == ids
    err = error(client.get("/v1/runs", params={"limit": "0"}), 422)
    assert (err["message"], [p["where"] for p in err["problems"]]) == ("invalid run query", ["limit"])


def test_a_run_shows_the_jobs_its_nodes_ran(api: API) -> None:
    client, s = api
    run_id = submit(client, graph=TWO)["run"]["run_id"]
    job = ok(client.post("/v1/jobs", json={"plugin": "testops", "operation": "sleep"}), 201)["job"]
    s.store.append(run_stream(run_id), [
        NodeQueued(run_id=run_id, node="a", job_id=job["job_id"], cache_key="k", inputs={}),
        NodeQueued(run_id=run_id, node="b", job_id="jnotinthelog", cache_key="k2", inputs={})])
    body = ok(client.get(f"/v1/runs/{run_id[:12]}"))
    assert body["run"]["nodes"]["a"]["jobs"] == [job["job_id"]]
    assert body["jobs"] == {job["job_id"]: job}  # a job id the jobs table lacks is left out


def test_cancel_records_its_reason_and_resume_needs_an_ended_run(api: API) -> None:
    client, s = api
    run_id = submit(client, graph=TWO)["run"]["run_id"]
    assert "still running" in error(client.post(f"/v1/runs/{run_id}/resume", json={}), 409)["message"]
    cancelled = ok(client.post(f"/v1/runs/{run_id}/cancel", json={"reason": "wrong data"}), 202)["run"]
    assert cancelled["cancel_requested"] is True
    assert [e.reason for e in logged(s, run_id, "run-cancel-requested")] == ["wrong data"]
    other = submit(client, graph=GRAPH)["run"]["run_id"]
    ok(client.post(f"/v1/runs/{other}/cancel", json={}), 202)
    assert [e.reason for e in logged(s, other, "run-cancel-requested")] == ["cancelled by user"]

    s.store.append(run_stream(run_id), [NodeFailed(run_id=run_id, node="b", job_id="j", state="failed", error="x"),
                                        RunFinished(run_id=run_id, state="failed")])
    resumed = ok(client.post(f"/v1/runs/{run_id}/resume", json={"command_id": "resume-1"}), 202)["run"]
    assert resumed["state"] == "running" and resumed["nodes"]["b"]["state"] == "pending"
    assert [e.nodes for e in logged(s, run_id, "run-resumed")] == [["b"]]
    assert error(client.post(f"/v1/runs/{run_id}/cancel", json={"reason": "x", "command_id": "resume-1"}), 409)


def test_models_are_added_listed_and_removed(api: API) -> None:
    client, s = api
    added = ok(client.post("/v1/models", json={"name": "base-1.b_c", "ref": "org/base", "note": "the base"}), 201)
    assert {k: added["model"][k] for k in ("name", "ref", "note")} == {"name": "base-1.b_c", "ref": "org/base",
                                                                       "note": "the base"}
    assert added["model"] in ok(client.get("/v1/models"))["models"]
    assert ok(client.post("/v1/models/base-1.b_c/remove", json={})) == {"removed": "base-1.b_c"}
    assert s.tables.models.get("base-1.b_c") is None
    assert all(m["name"] != "base-1.b_c" for m in ok(client.get("/v1/models"))["models"])
    head = s.store.head()
    assert error(client.post("/v1/models/base-1.b_c/remove", json={}), 404) == {
        "code": "not_found", "message": "no model named 'base-1.b_c'"}
    assert s.store.head() == head


@pytest.mark.parametrize(("body", "where"), [
    ({"name": "", "ref": "x"}, ["name"]), ({"name": "a b", "ref": "x"}, ["name"]), ({"name": "a", "ref": " \t"}, ["ref"]),
    ({"name": "a", "ref": ""}, ["ref"]), ({"name": "a/b", "ref": ""}, ["name", "ref"]),
])
def test_a_model_with_a_bad_name_or_no_ref_is_refused_naming_each(api: API, body: dict[str, str], where: list[str]) -> None:
    client, s = api
    head = s.store.head()
    err = error(client.post("/v1/models", json=body), 422)
    text = {"name": "letters, digits, '-', '_' and '.' only", "ref": "a local folder, a .gguf file or a hub id"}
    assert err == {"code": "invalid", "message": "cannot add the model",
                   "problems": [{"where": w, "message": text[w]} for w in where]}
    assert s.store.head() == head


def test_adapters_name_the_run_that_made_them_its_base_model_and_their_folder(api: API, tmp_path: Any) -> None:
    client, s = api
    run_id = submit(client, graph={"nodes": {"t": {"op": "testops.fake_adapter", "inputs": {"model": "org/base"}}}})[
        "run"]["run_id"]
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 4}')
    stored = s.artifacts.put_dir(folder).sha256
    s.store.append(run_stream(run_id), [
        NodeQueued(run_id=run_id, node="t", job_id="jt", cache_key="kt", inputs={"model": "org/base"}),
        NodeCompleted(run_id=run_id, node="t", job_id="jt", cache_key="kt", outputs={"adapter": stored},
                      output_types={"adapter": "adapter"})])
    [row] = ok(client.get("/v1/adapters", params={"prefix": stored}))["adapters"]
    assert (row["sha256"], row["run_id"], row["node"]) == (stored, run_id, "t")
    assert row["path"] == str(s.artifacts.path(stored, verify=False)) and row["base_model"] == {"ref": "org/base"}
    listed = ok(client.get("/v1/adapters", params={"order": "desc", "limit": 1}))
    assert listed["adapters"] == [row]  # the newest


def test_an_adapter_of_a_run_not_in_the_log_has_no_run_and_no_base(api: API) -> None:
    client, s = api
    sha = "e" * 64
    s.store.append("run-gone", [NodeCompleted(run_id="gone", node="t", job_id="jg", cache_key="kg",
                                              outputs={"adapter": sha}, output_types={"adapter": "adapter"})])
    [row] = ok(client.get("/v1/adapters", params={"prefix": "eeee"}))["adapters"]
    assert (row["run_id"], row["path"], row["base_model"]) == ("gone", None, None)


def test_adapter_prefixes_are_lowercase_hex_and_exclude_a_cursor(api: API) -> None:
    client, _ = api
    for prefix in ("", "ABC", "0x1", "g"):
        err = error(client.get("/v1/adapters", params={"prefix": prefix}), 422)
        assert err == {"code": "invalid", "message": "invalid adapter query", "problems": [
            {"where": "prefix", "message": f"a lowercase hex prefix of an adapter's sha256, got {prefix!r}"}]}
    err = error(client.get("/v1/adapters", params={"prefix": "ab", "after": "1"}), 422)
    assert err["problems"] == [{"where": "after",
                                "message": "a prefix lists its matches in one answer: give either after or prefix"}]
    assert ok(client.get("/v1/adapters", params={"prefix": "0123456789abcdef"}))["adapters"] == []


def test_operations_of_loaded_plugins_and_presets_naming_their_plugin(api: API) -> None:
    client, _ = api
    ops = ok(client.get("/v1/operations"))["operations"]
    assert ops["tuned.make"] == {"plugin": "tuned", "version": "2.1", "description": "Make something.",
                                 "resource": "cpu", "outputs": {"thing": {"type": "json", "description": "The thing."}},
                                 "params": {"lr": {"type": "number", "description": "Rate.", "default": 0.1},
                                            "preset": {"type": "string", "description": "A preset.", "default": ""}}}
    assert ops["testops.sleep"]["plugin"] == "testops" and ops["testops.sleep"]["version"] == "0.1.0"
    assert {name.split(".")[0] for name in ops} == {"testops", "tuned"}  # the broken plugin has none
    assert ok(client.get("/v1/presets")) == {"presets": {"fast": {"description": "Quick.", "params": {"lr": 0.5},
                                                                  "plugin": "tuned"}}}



def test_run_cancel_resume_and_a_workflow_save_tag_their_events_with_the_command_id(api: API) -> None:
    """A daemon killed between the append and the answer answers the client's retry from the tag."""
    client, s = api
    run_id = submit(client, graph=GRAPH)["run"]["run_id"]
    ok(client.post(f"/v1/runs/{run_id}/cancel", json={"command_id": "tag-cancel"}), 202)
    assert tagged(s, "tag-cancel") == ["run-cancel-requested"]
    s.store.append(run_stream(run_id), [NodeFailed(run_id=run_id, node="a", job_id="ja", state="cancelled", error="x"),
                                        RunFinished(run_id=run_id, state="cancelled")])
    ok(client.post(f"/v1/runs/{run_id}/resume", json={"command_id": "tag-resume"}), 202)
    assert tagged(s, "tag-resume") == ["run-resumed"]
    ok(client.post("/v1/workflows", json={"name": "tagged-flow", "graph": GRAPH, "command_id": "tag-save"}), 201)
    assert tagged(s, "tag-save") == ["workflow-saved"]


def test_a_long_bad_adapter_prefix_is_quoted_to_70_characters(api: API) -> None:
    client, _ = api
    err = error(client.get("/v1/adapters", params={"prefix": "g" * 71 + "h"}), 422)
    assert err["problems"] == [{"where": "prefix",
                                "message": f"a lowercase hex prefix of an adapter's sha256, got {'g' * 70!r}"}]


def test_the_lineage_route_shows_a_runs_resumes_its_nodes_jobs_and_its_adapters(api: API) -> None:
    client, s = api
    run_id = submit(client, graph=TWO)["run"]["run_id"]
    first, second = (ok(client.post("/v1/jobs", json={"plugin": "testops", "operation": "sleep"}), 201)["job"]["job_id"]
                     for _ in range(2))
    sha = "d" * 64
    s.store.append(run_stream(run_id), [
        NodeQueued(run_id=run_id, node="a", job_id=first, cache_key="ka", inputs={}),
        NodeQueued(run_id=run_id, node="a", job_id=second, cache_key="ka", inputs={}),
        NodeCompleted(run_id=run_id, node="a", job_id=second, cache_key="ka", outputs={"adapter": sha},
                      output_types={"adapter": "adapter"}),
        NodeFailed(run_id=run_id, node="b", job_id="jb", state="failed", error="x"),
        RunFinished(run_id=run_id, state="failed")])
    ok(client.post(f"/v1/runs/{run_id}/resume", json={}), 202)
    tree = ok(client.get(f"/v1/runs/{run_id}/lineage"))["lineage"]
    kids = {c["kind"]: c for c in tree["children"]}
    assert kids["resume"]["label"] == "nodes run again: b"
    assert [(j["id"], j["state"], j["label"]) for j in kids["node"]["children"]] == [
        (first, "queued", "no checkpoint"), (second, "queued", "no checkpoint")]  # states from the jobs table
    assert (kids["adapter"]["id"], kids["adapter"]["label"]) == (sha, "node a")


def test_removing_a_model_tags_its_event_in_the_models_stream(api: API) -> None:
    client, s = api
    ok(client.post("/v1/models", json={"name": "tagged-model", "ref": "org/base"}), 201)
    ok(client.post("/v1/models/tagged-model/remove", json={"command_id": "tag-remove"}))
    assert tagged(s, "tag-remove") == ["model-removed"]
    assert [e.type for e in s.store.read(stream="model-tagged-model")] == ["model-added", "model-removed"]


def test_an_adapter_prefix_refuses_capitals_and_says_more_only_past_the_limit(api: API) -> None:
    client, s = api
    assert error(client.get("/v1/adapters", params={"prefix": "abX"}), 422)["problems"][0]["where"] == "prefix"
    shas = ["c1" + "0" * 62, "c1" + "1" * 62]
    s.store.append("run-prefixed", [NodeCompleted(run_id="prefixed", node=f"n{i}", job_id=f"jp{i}", cache_key=f"kp{i}",
                                                  outputs={"adapter": sha}, output_types={"adapter": "adapter"})
                                    for i, sha in enumerate(shas)])
    exact = ok(client.get("/v1/adapters", params={"prefix": "c1", "limit": 2}))
    assert [a["sha256"] for a in exact["adapters"]] == shas and exact["more"] is False
    cut = ok(client.get("/v1/adapters", params={"prefix": "c1", "limit": 1}))
    assert [a["sha256"] for a in cut["adapters"]] == shas[:1] and cut["more"] is True
