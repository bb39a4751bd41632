"""Event types: stable tags, documented fields, envelopes, upcasting old payloads on read."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from typing import Any, ClassVar

import msgspec
import pytest

from tunelog.events.base import (
    Event,
    decode_payload,
    decode_stored,
    encode_payload,
    event_types,
    upcaster,
)
from tunelog.events.errors import ValidationError
from tunelog.events.jobs import JobQueued


class Renamed(Event, frozen=True, tag="test-renamed"):
    """An event whose schema changed: v1 had `title`, v2 has `name` and `size`."""

    schema_version: ClassVar[int] = 2
    name: str
    """New field name."""
    size: int = 0
    """Added in v2."""


@upcaster("test-renamed", 1)
def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    data["name"] = data.pop("title")
    return data


def test_every_event_has_a_stable_kebab_tag_and_a_docstring_per_field() -> None:
    for tag, cls in event_types().items():
        assert tag == tag.lower() and " " not in tag and "." not in tag, tag
        assert cls.__doc__, f"{cls.__name__} has no docstring"
        if cls.__module__.startswith("tunelog.events"):
            src = inspect.getsource(cls)
            tree = ast.parse(src)
            body = tree.body[0].body  # type: ignore[attr-defined]
            for i, node in enumerate(body):
                if isinstance(node, ast.AnnAssign) and not str(ast.unparse(node.annotation)).startswith("ClassVar"):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), \
                        f"{cls.__name__}.{ast.unparse(node.target)} has no docstring"


def test_payload_round_trip_keeps_the_tag_inside() -> None:
    ev = JobQueued(job_id="a", plugin="p", operation="o", params={"lr": 1e-4}, code_hash="h", plugin_version="1")
    raw = encode_payload(ev)
    assert msgspec.json.decode(raw)["type"] == "job-queued"
    assert decode_payload("job-queued", 1, raw) == ev


def test_old_payloads_are_upcast_on_read_and_never_rewritten() -> None:
    old = b'{"type": "test-renamed", "title": "x"}'
    assert decode_payload("test-renamed", 1, old) == Renamed(name="x")
    assert decode_payload("test-renamed", 2, encode_payload(Renamed(name="y", size=3))) == Renamed(name="y", size=3)


def test_decode_stored_upcasts_old_rows_even_when_they_would_decode_as_the_current_schema() -> None:
    new = encode_payload(Renamed(name="y", size=3)).decode()
    fits_v2 = '{"type": "test-renamed", "title": "x", "name": "ignored"}'  # a v1 row a v2 decoder accepts
    assert decode_stored([2, 1, 2], [new, '{"type": "test-renamed", "title": "x"}', new]) == [
        Renamed(name="y", size=3), Renamed(name="x"), Renamed(name="y", size=3)]
    assert decode_stored([1], [fits_v2]) == [Renamed(name="x")]
    assert decode_stored([2, 2], [new, new]) == [Renamed(name="y", size=3)] * 2
    assert decode_stored([], []) == []


def test_unknown_tag_or_missing_upcaster_is_an_error() -> None:
    with pytest.raises(KeyError, match="unknown event type"):
        decode_payload("no-such-event", 1, b"{}")
    with pytest.raises(KeyError, match="no upcaster"):
        decode_payload("test-renamed", 0, b'{"type": "test-renamed"}')


def test_validation_error_lists_every_problem() -> None:
    err = ValidationError.collect("bad", [("params.lr", "must be a number"), ("inputs.model", "is required")])
    assert err.to_dict() == {"code": "invalid", "message": "bad", "problems": [
        {"where": "params.lr", "message": "must be a number"}, {"where": "inputs.model", "message": "is required"}]}
    assert "params.lr: must be a number" in str(err)


def test_base_imports_no_event_module_yet_every_event_type_is_known() -> None:
    """`base` is below the modules that define events (no cycle through `domain`); importing it
    alone still registers every event type, because the package imports them all."""
    tree = ast.parse(inspect.getsource(importlib.import_module("tunelog.events.base")))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith("tunelog.")}, imported
    code = ("from tunelog.events.base import event_types\n"
            "print(sorted({cls.__module__ for cls in event_types().values()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted(f"tunelog.events.{m}" for m in ("jobs", "merges", "plugins", "runs", "serving",
                                                                     "system", "uploads")))
