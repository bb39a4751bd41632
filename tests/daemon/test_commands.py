"""Command ids in-process (the real app, services and SQLite file behind a TestClient): a retry gets
the first answer byte for byte, a reused id is a 409 naming what used it, a refused command frees
its id, an id the log already carries is never acted on twice, and a pending record left by a
killed daemon is carried out. test_api_idempotency.py walks every route through a real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.testclient import TestClient

from tests.daemon.daemon_proc import FIXTURES
from tunelog.daemon.api.commands import MAX_COMMAND_ID, PENDING, fingerprint
from tunelog.daemon.api.runs import AddModel
from tunelog.daemon.app import create_app
from tunelog.daemon.paths import Paths
from tunelog.daemon.services import Services, build_services
from tunelog.events.runs import ModelAdded
from tunelog.events.streams import model_stream
from tunelog.store.base import CommandRecord

ADD = "POST /v1/models"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Services]]:
    services = build_services(Paths.from_env(tmp_path_factory.mktemp("home")), version="test",
                              plugin_dirs=[FIXTURES], builtin_dir=Path("/nonexistent"), slots=["cpu0"])
    anyio.run(services.plugins.scan)
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield client, services
    services.store.close()


def add(client: TestClient, name: str, command_id: str | None, **body: Any) -> Any:
    return client.post("/v1/models", json={"name": name, "ref": "/models/x", **body,
                                           **({"command_id": command_id} if command_id is not None else {})})


def error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]  # type: ignore[no-any-return]


def test_a_retry_gets_the_first_answer_byte_for_byte_even_after_later_changes(
        api: tuple[TestClient, Services]) -> None:
    client, s = api
    first = add(client, "retried", "c-retry", note="first")
    assert first.status_code == 201 and first.json()["model"]["note"] == "first"
    head = s.store.head()
    again = add(client, "retried", "c-retry", note="first")
    assert (again.status_code, again.content) == (201, first.content)
    assert s.store.head() == head
    record = s.store.command("c-retry")
    assert record is not None and (record.kind, record.status, record.answer) == (ADD, 201, first.content)

    assert client.post("/v1/models/retried/remove", json={}).status_code == 200  # the precondition goes away
    head = s.store.head()
    late = add(client, "retried", "c-retry", note="first")
    assert (late.status_code, late.content) == (201, first.content) and s.store.head() == head
    assert s.tables.models.get("retried") is None


def test_the_id_reused_for_another_command_is_a_409_naming_it_and_appends_nothing(
        api: tuple[TestClient, Services]) -> None:
    client, s = api
    assert add(client, "reused", "c-reused").status_code == 201
    head = s.store.head()
    other = error(add(client, "reused", "c-reused", note="changed"), 409)
    assert other["code"] == "conflict" and other["message"] == "command id 'c-reused' was already used with other parameters"
    assert other["hint"] == "use a new command id for a new command"
    elsewhere = error(client.post("/v1/models/reused/remove", json={"command_id": "c-reused"}), 409)
    assert elsewhere["message"] == f"command id 'c-reused' was already used for {ADD}"
    assert s.store.head() == head and s.tables.models.get("reused") is not None


def test_without_an_id_every_post_is_carried_out(api: tuple[TestClient, Services]) -> None:
    client, s = api
    head = s.store.head()
    assert add(client, "plain", None).status_code == 201
    assert add(client, "plain", None).status_code == 201
    assert s.store.head() == head + 2 and s.store.command("") is None


def test_a_refused_command_frees_its_id_for_the_corrected_retry(api: tuple[TestClient, Services]) -> None:
    client, s = api
    head = s.store.head()
    bad = error(add(client, "not a name!", "c-fix"), 422)
    assert [p["where"] for p in bad["problems"]] == ["name"]
    assert s.store.command("c-fix") is None and s.store.head() == head
    fixed = add(client, "a-name", "c-fix")
    assert fixed.status_code == 201 and s.store.head() == head + 1


@pytest.mark.parametrize("command_id", ["", "x" * (MAX_COMMAND_ID + 1)])
def test_a_command_id_is_1_to_200_characters(api: tuple[TestClient, Services], command_id: str) -> None:
    client, s = api
    head = s.store.head()
    err = error(add(client, f"id-{len(command_id)}", command_id), 422)
    assert err["message"] == "invalid command id"
    assert err["problems"] == [{"where": "command_id",
                                "message": f"a non-empty string of at most {MAX_COMMAND_ID} characters"}]
    assert s.store.head() == head


@pytest.mark.parametrize("command_id", ["z", "y" * MAX_COMMAND_ID])
def test_a_command_id_of_1_or_200_characters_is_accepted(api: tuple[TestClient, Services], command_id: str) -> None:
    client, s = api
    assert add(client, f"ok-{len(command_id)}", command_id).status_code == 201
    assert s.store.command(command_id) is not None


def test_an_id_the_log_already_carries_is_refused_naming_its_stream(api: tuple[TestClient, Services]) -> None:
    client, s = api
    s.store.append(model_stream("foreign"), [ModelAdded(name="foreign", ref="/m", note="")], command_id="c-foreign")
    head = s.store.head()
    err = error(add(client, "mine", "c-foreign"), 409)
    assert err["message"] == f"command id 'c-foreign' was already used for the events of '{model_stream('foreign')}'"
    assert s.store.head() == head and s.store.command("c-foreign") is None and s.tables.models.get("mine") is None


def test_a_pending_record_left_by_a_killed_daemon_is_carried_out_on_retry(api: tuple[TestClient, Services]) -> None:
    client, s = api
    body = AddModel(name="pending", ref="/models/x", command_id="c-pending")
    s.store.record_command(CommandRecord(command_id="c-pending", kind=ADD, fingerprint=fingerprint(ADD, {}, body),
                                         status=PENDING, answer=b""))
    done = add(client, "pending", "c-pending")
    assert done.status_code == 201 and s.tables.models.get("pending") is not None
    record = s.store.command("c-pending")
    assert record is not None and (record.status, record.answer) == (201, done.content)

    s.store.record_command(CommandRecord(command_id="c-pending-other", kind=ADD, fingerprint="0" * 64,
                                         status=PENDING, answer=b""))
    head = s.store.head()
    assert error(add(client, "pending-other", "c-pending-other"), 409)["code"] == "conflict"
    assert s.store.head() == head


def test_the_fingerprint_covers_route_path_and_body_with_defaults_but_not_the_id() -> None:
    plain = AddModel(name="m", ref="/r")
    same = fingerprint(ADD, {}, plain)
    assert len(same) == 64 and int(same, 16) >= 0
    assert fingerprint(ADD, {}, AddModel(name="m", ref="/r", note="", command_id="any")) == same
    assert fingerprint(ADD, {}, AddModel(name="m", ref="/r", note="n")) != same
    assert fingerprint("POST /v1/other", {}, plain) != same
    assert fingerprint(ADD, {"name": "m"}, plain) != same
