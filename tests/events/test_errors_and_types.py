"""The error tree's envelope and text, and the event registry's guards: what the API, the CLI and
every decode of the log rely on."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tunelog.events import base
from tunelog.events.base import encode_payload, event_types
from tunelog.events.errors import (
    ConflictError,
    JobError,
    NotFoundError,
    PluginError,
    TunelogError,
    ValidationError,
)
from tunelog.events.jobs import JobCancelled


def test_the_envelope_and_the_text_of_an_error() -> None:
    plain = TunelogError("it broke")
    assert plain.to_dict() == {"code": "error", "message": "it broke"}
    assert str(plain) == "it broke" and plain.args == ("it broke",) and plain.hint is None and plain.problems == []
    hinted = NotFoundError("no job 'x'", hint="tunectl jobs list shows them")
    assert hinted.to_dict() == {"code": "not_found", "message": "no job 'x'", "hint": "tunectl jobs list shows them"}
    assert str(hinted) == "no job 'x'\nHint: tunectl jobs list shows them"
    err = ValidationError.collect("2 problems", [("params.lr", "must be a number"), ("", "no place")], hint="see --help")
    assert err.problems == [{"where": "params.lr", "message": "must be a number"}, {"where": "", "message": "no place"}]
    assert err.hint == "see --help" and err.message == "2 problems"
    assert str(err) == "2 problems\n  - params.lr: must be a number\n  - no place\nHint: see --help"
    assert err.to_dict() == {"code": "invalid", "message": "2 problems", "hint": "see --help",
                             "problems": err.problems}
    odd = TunelogError("x", problems=[{"message": "only a message"}, {"where": "w"}])
    assert str(odd) == "x\n  - only a message\n  - w: "


@pytest.mark.parametrize("cls,code,status,exit_code", [
    (TunelogError, "error", 500, 1), (ValidationError, "invalid", 422, 2), (ConflictError, "conflict", 409, 3),
    (NotFoundError, "not_found", 404, 4), (PluginError, "plugin_error", 422, 5), (JobError, "job_error", 409, 6)])
def test_each_error_class_has_its_code_status_and_exit_code(cls: type[TunelogError], code: str, status: int,
                                                            exit_code: int) -> None:
    assert (cls.code, cls.status, cls.exit_code) == (code, status, exit_code)
    assert issubclass(cls, TunelogError) and cls("m").to_dict()["code"] == code


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Event classes register themselves for good: define the bad ones in a process of their own."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_an_event_without_an_explicit_string_tag_is_refused() -> None:
    out = run_python("""
        from tunelog.events.base import Event, event_types
        class Untagged(Event, frozen=True, tag=True):
            pass
        event_types()
    """)
    assert out.returncode == 1 and "TypeError: event Untagged needs an explicit string tag" in out.stderr


def test_two_events_with_one_tag_are_refused_naming_both() -> None:
    out = run_python("""
        from tunelog.events.base import Event, event_types
        class First(Event, frozen=True, tag="same-tag"):
            pass
        class Second(Event, frozen=True, tag="same-tag"):
            pass
        event_types()
    """)
    assert out.returncode == 1
    assert "TypeError: event tag 'same-tag' is used by both" in out.stderr
    assert "First" in out.stderr and "Second" in out.stderr


def test_an_upcaster_is_registered_under_its_tag_and_version() -> None:
    out = run_python("""
        from typing import ClassVar
        from tunelog.events.base import Event, decode_payload, upcaster
        class Moved(Event, frozen=True, tag="test-moved"):
            schema_version: ClassVar[int] = 3
            where: str
        @upcaster("test-moved", 1)
        def one(d):
            return {**d, "place": d.pop("at")}
        @upcaster("test-moved", 2)
        def two(d):
            return {**d, "where": d.pop("place")}
        print(decode_payload("test-moved", 1, b'{"type": "test-moved", "at": "home"}').where)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "home"


def test_a_fresh_registry_is_rebuilt_with_every_event_and_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry and its decoders are built on first use (and again when new event types appear)."""
    every = event_types()
    monkeypatch.setattr(base, "_registry", {})
    monkeypatch.setattr(base, "_decoder", None)
    assert event_types() == every and base._registry == every
    assert all(isinstance(cls, type) and issubclass(cls, base.Event) for cls in base._registry.values())
    cancelled = JobCancelled(job_id="a", forced=False)
    assert base.decode_payload("job-cancelled", 1, encode_payload(cancelled)) == cancelled
