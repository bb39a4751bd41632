"""What the event modules declare, as stored rows depend on it: tags, schema versions and the
defaults a row written without a field decodes with, plus the two helpers they define.

`stored_rows.json` holds, for every event type, a row with only its required fields, as a tunelog
that had not added the optional fields yet wrote it, and the value each optional field decodes to.
A renamed tag, a renamed or newly required field, or a changed default changes what every such
stored row replays as; such a change needs a new schema version and an upcaster (the old row then
stays here and a row of the new version is added)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tunelog.events.base import decode_payload, decode_stored, event_types
from tunelog.events.jobs import progress_note
from tunelog.events.merges import AdapterMerged, MergeInput, merge_stream
from tunelog.store.sqlite import SqliteStore

ROWS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "stored_rows.json").read_text())


def ours() -> dict[str, int]:
    """Tag -> current schema version of every event type tunelog declares (tests declare their own)."""
    return {tag: cls.schema_version for tag, cls in event_types().items() if cls.__module__.startswith("tunelog.")}


def test_every_event_type_has_a_stored_row_at_its_current_schema_version() -> None:
    pinned = {(row["payload"]["type"], row["schema_version"]) for row in ROWS}
    assert set(ours().items()) <= pinned, "add a row to stored_rows.json for each new type or schema version"
    assert {tag for tag, _ in pinned} == set(ours()), "a tag in stored_rows.json is no longer declared"


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['payload']['type']}-v{r['schema_version']}" for r in ROWS])
def test_a_row_with_only_the_required_fields_decodes_with_the_pinned_defaults(row: dict[str, Any]) -> None:
    event = decode_payload(row["payload"]["type"], row["schema_version"], json.dumps(row["payload"]))
    assert event.tag == row["payload"]["type"]
    assert msgspec.to_builtins(event) == {**row["payload"], **row["defaults"]}


def test_a_batch_of_such_rows_decodes_in_one_call_to_the_same_events() -> None:
    payloads = [json.dumps(row["payload"]) for row in ROWS]
    versions = [row["schema_version"] for row in ROWS]
    assert decode_stored(versions, payloads) == [decode_payload(r["payload"]["type"], v, p)
                                                   for r, v, p in zip(ROWS, versions, payloads, strict=True)]


def test_rows_an_older_tunelog_stored_read_back_from_the_log_with_the_pinned_defaults(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "log.sqlite", folds=())
    conn = sqlite3.connect(tmp_path / "log.sqlite", isolation_level=None)
    conn.executemany("INSERT INTO events (position, stream, version, type, schema_version, time, payload) "
                     "VALUES (?, ?, 1, ?, ?, 1.0, ?)",
                     [(i, f"s{i}", row["payload"]["type"], row["schema_version"], json.dumps(row["payload"]))
                      for i, row in enumerate(ROWS, start=1)])
    conn.close()
    read = store.read()
    store.close()
    assert [msgspec.to_builtins(env.event) for env in read] == [{**r["payload"], **r["defaults"]} for r in ROWS]


def test_a_merge_input_stored_without_a_weight_had_weight_one() -> None:
    """`merge_and_unload` rows recorded no weight: each adapter went in whole."""
    row = next(r for r in ROWS if r["payload"]["type"] == "adapter-merged")
    payload = {**row["payload"], "inputs": [{"sha256": "x"}]}
    event = decode_payload("adapter-merged", row["schema_version"], json.dumps(payload))
    assert isinstance(event, AdapterMerged) and event.inputs == [MergeInput(sha256="x", weight=1.0)]


def test_a_merge_stream_is_named_by_the_first_16_characters_of_its_output_hash() -> None:
    sha = "0123456789abcdef" + "f" * 48
    assert merge_stream(sha) == "merge-0123456789abcdef"


def test_a_progress_note_is_the_first_line_of_the_message() -> None:
    assert progress_note("loading model") == "loading model"
    assert progress_note("step 3\nanswers so far: 2\nmore detail") == "step 3"
    assert progress_note("\nonly details") == ""
    assert progress_note("") == ""
