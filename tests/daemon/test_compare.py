"""The comparison primitives under verify and diff (daemon/runs/compare.py), at their edges: the
tolerance bound, what counts as a hash, a number or a timing, and the parts of a curve report."""

from __future__ import annotations

from tunelog.daemon.runs.compare import (
    Tolerance,
    compare_curves,
    compare_outputs,
    is_number,
    is_sha256,
    is_timing,
    key_diffs,
    prefixed,
    worst,
)

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_the_tolerance_bound_is_atol_plus_rtol_times_the_baseline() -> None:
    tol = Tolerance(rtol=0.5, atol=0.25)
    assert tol.close(2.0, 3.25) and tol.close(2.0, 0.75)  # exactly on the bound, both ways
    assert not tol.close(2.0, 3.2501) and not tol.close(2.0, 0.7499)
    assert tol.close(-2.0, -3.25) and not tol.close(-2.0, -3.2501)  # |a|, not a
    assert not tol.close(1.0, 2.0) and tol.close(2.0, 1.0)  # rtol scales the baseline a, not b
    assert Tolerance().close(1.0, 1.001) and not Tolerance().close(1.0, 1.0011)
    assert Tolerance().close(0.0, 1e-8) and not Tolerance().close(0.0, 2e-8)
    assert Tolerance(rtol=0.5, atol=0.25).to_dict() == {"rtol": 0.5, "atol": 0.25}
    assert Tolerance().to_dict() == {"rtol": 1e-3, "atol": 1e-8}


def test_hashes_numbers_and_timings() -> None:
    assert is_sha256(A) and is_sha256("0123456789abcdef" * 4)
    assert not is_sha256("A" * 64) and not is_sha256("a" * 63) and not is_sha256("a" * 65)
    assert not is_sha256("g" * 64) and not is_sha256(A + "\n") and not is_sha256(None) and not is_sha256(1)
    assert is_number(1) and is_number(0.5) and not is_number(True) and not is_number("1") and not is_number(None)
    for path in ("elapsed_s", "train.tokens_per_s", "eta_s", "duration_s", "seconds", "samples_per_s", "wall_s",
                 "steps_per_s", "eval.load_seconds", "timings[2].wall_s", "a.b.elapsed_s[0]",
                 "x.elapsed_s[0][1]"):
        assert is_timing(path), path
    for path in ("loss", "per_s.loss", "elapsed_s.count", "seconds_left", "tokens", "s"):
        assert not is_timing(path), path


def test_key_diffs_and_prefixed_paths() -> None:
    assert key_diffs({"k": 1, "gone": 2}, {"k": 1}) == [{"path": "gone", "a": 2, "only_in": "a"}]
    assert key_diffs({"x": {"y": {"z": 1}}}, {"x": {"y": {"z": 2}}}) == [{"path": "x.y.z", "a": 1, "b": 2}]
    assert key_diffs([{"n": 1}], [{"n": 2}], "top") == [{"path": "top[0].n", "a": 1, "b": 2}]
    assert key_diffs(1, 2) == [{"path": "value", "a": 1, "b": 2}]
    assert key_diffs({"k": 1}, 5, "p") == [{"path": "p", "a": {"k": 1}, "b": 5}]  # a mapping against a scalar
    assert key_diffs(5, {"k": 1}) == [{"path": "value", "a": 5, "b": {"k": 1}}]
    assert key_diffs(1, True) == [{"path": "value", "a": 1, "b": True}]
    assert key_diffs(False, 0) == [{"path": "value", "a": False, "b": 0}] and key_diffs(True, True) == []
    assert key_diffs({2: "a", 10: "b"}, {2: "x", 10: "y"}) == [  # keys ordered as text
        {"path": "10", "a": "b", "b": "y"}, {"path": "2", "a": "a", "b": "x"}]
    assert prefixed("p", [{"path": "q", "a": 1}]) == [{"path": "p.q", "a": 1}]


def test_outputs_split_into_artifacts_values_and_drift_within_tolerance() -> None:
    a = {"adapter": A, "same": C, "loss": 1.0, "acc": 0.5, "flag": True, "name": "x", "elapsed_s": 3.0,
         "nested": {"tokens_per_s": 9.0}, "report": A, "n": 1}
    b = {"adapter": B, "same": C, "loss": 1.0005, "acc": 0.6, "flag": 1, "name": "y", "elapsed_s": 7.0,
         "nested": {"tokens_per_s": 1.0}, "report": "not a hash", "n": True}
    got = compare_outputs(a, b, Tolerance())
    assert got["artifacts_equal"] == ["same"]
    assert [d["path"] for d in got["artifacts_differ"]] == ["adapter", "report"]
    assert [d["path"] for d in got["values_within_tolerance"]] == ["loss"]
    assert [d["path"] for d in got["values_differ"]] == ["acc", "flag", "n", "name"]
    now_a_hash = compare_outputs({"x": "old"}, {"x": A}, Tolerance())
    assert [d["path"] for d in now_a_hash["artifacts_differ"]] == ["x"] and now_a_hash["values_differ"] == []
    assert compare_outputs({"z": A, "y": B}, {"z": A, "y": B}, Tolerance())["artifacts_equal"] == ["y", "z"]


def test_a_curve_report_counts_steps_and_names_the_first_difference() -> None:
    a = {1: 2.0, 2: 1.0, 3: 0.5, 4: 0.25}
    b = {1: 2.0, 2: 1.0005, 3: 0.5, 5: 0.1}
    got = compare_curves(a, b, Tolerance())
    assert got is not None and abs(got.pop("max_abs_diff") - 0.0005) < 1e-12
    assert got == {"verdict": "differs", "steps": {"a": 4, "b": 4, "compared": 3}, "only_in_a": [4],
                   "only_in_b": [5], "first_differing_step": 2, "last": {"a": 0.25, "b": 0.1}}
    same_steps = compare_curves(a, {**a, 2: 1.0005}, Tolerance())
    assert same_steps is not None and same_steps["verdict"] == "within-tolerance"
    one_sided = compare_curves({1: 1.0}, {}, Tolerance())
    assert one_sided is not None and one_sided["verdict"] == "differs"
    assert one_sided["max_abs_diff"] is None and one_sided["first_differing_step"] is None
    assert one_sided["last"] == {"a": 1.0, "b": None}
    assert compare_curves({}, {2: 1.0}, Tolerance())["last"] == {"a": None, "b": 1.0}  # type: ignore[index]
    many = compare_curves({s: 1.0 for s in range(30)}, {s: 1.0 for s in range(100, 130)}, Tolerance())
    assert many is not None and many["only_in_a"] == list(range(20)) and many["only_in_b"] == list(range(100, 120))
    assert compare_curves(a, dict(a), Tolerance())["verdict"] == "bit-identical"  # type: ignore[index]


def test_the_worst_verdict_wins() -> None:
    assert worst([]) == "bit-identical"
    assert worst(["bit-identical", "within-tolerance"]) == "within-tolerance"
    assert worst(["differs", "within-tolerance", "bit-identical"]) == "differs"
