"""A node's cache key: equal for what gives equal results (key order aside), different when the
operation, its code, a parameter or an input differs."""

from __future__ import annotations

import hashlib
import json

from tunelog.daemon.runs.graph import cache_key

BASE = {"op": "testops.outputs", "code_hash": "c" * 64, "params": {"text": "hi", "n": 1},
        "inputs": {"data": "a" * 64, "model": "/models/m"}}


def test_the_key_is_the_sha256_of_what_decides_the_result_in_a_canonical_form() -> None:
    key = cache_key(**BASE)
    canonical = json.dumps({"code": BASE["code_hash"], "inputs": BASE["inputs"], "op": BASE["op"],
                            "params": BASE["params"]}, sort_keys=True, separators=(",", ":"))
    assert key == hashlib.sha256(canonical.encode()).hexdigest()
    reordered = {**BASE, "params": {"n": 1, "text": "hi"}, "inputs": {"model": "/models/m", "data": "a" * 64}}
    assert cache_key(**reordered) == key


def test_any_part_that_differs_changes_the_key() -> None:
    key = cache_key(**BASE)
    changed = [{**BASE, "op": "testops.other"}, {**BASE, "code_hash": "d" * 64},
               {**BASE, "params": {"text": "hi", "n": 2}}, {**BASE, "params": {"text": "hi"}},
               {**BASE, "inputs": {"data": "b" * 64, "model": "/models/m"}}, {**BASE, "inputs": {}}]
    keys = {cache_key(**c) for c in changed}
    assert key not in keys and len(keys) == len(changed)


def test_the_code_of_the_plugins_a_job_calls_joins_the_key_only_when_there_is_some() -> None:
    uses = {"rewards": "e" * 64}
    key = cache_key(**BASE, uses=uses)
    canonical = json.dumps({"code": BASE["code_hash"], "inputs": BASE["inputs"], "op": BASE["op"],
                            "params": BASE["params"], "uses": uses}, sort_keys=True, separators=(",", ":"))
    assert key == hashlib.sha256(canonical.encode()).hexdigest()
    assert cache_key(**BASE, uses={}) == cache_key(**BASE, uses=None) == cache_key(**BASE) != key
    assert cache_key(**BASE, uses={"rewards": "f" * 64}) != key
