"""benchmarks/validation_saturation.py: VALIDATION.md's closed-loop saturation proxy, by hand."""

from __future__ import annotations

import math

from benchmarks.validation_saturation import cause, side, summary


def _r(meas: float, simd: float) -> dict:
    return {"ttft": {"measured_s": meas, "simulated_s": simd}}


def test_the_proxy_needs_over_a_second_and_three_times_the_other_side() -> None:
    assert side(_r(0.4, 1.3)) == "servesim"  # 1.3 s > 1 s and > 3 x 0.4 s
    assert side(_r(0.5, 1.3)) is None  # 1.3 s < 3 x 0.5 s
    assert side(_r(0.2, 0.9)) is None  # 4.5 x, but under a second
    assert side(_r(5.5, 0.32)) == "measured"
    assert side(_r(2.0, 2.5)) is None  # both slow: neither alone


def test_summary_counts_each_side_once_per_row() -> None:
    res = {"silicon": {"groups": {"a": {"presets": {"x": _r(0.4, 1.3), "y": _r(5.5, 0.3), "z": _r(0.1, 0.1)}}}}}
    s = summary(res)
    assert (s["rows"], s["servesim_only"], s["measured_only"]) == (3, 1, 1)


def test_causes() -> None:
    rec = {"side": "servesim", "mode": "agg", "kv_room": 0.4, "source": "inferencex"}
    assert cause(rec) == "servesim: KV cannot hold the loop"
    assert cause(rec | {"kv_room": 2.0, "mode": "disagg"}) == "servesim: disagg prefill pool"
    unknown = rec | {"kv_room": 2.0, "mode": "disagg", "deployment": "unknown"}
    assert cause(unknown) == "servesim: disagg workers unknown (1 prefill + 1 decode simulated)"
    assert cause(unknown | {"kv_room": 0.7}) == "servesim: KV cannot hold the loop"
    assert cause(rec | {"kv_room": math.nan}) == "servesim: other"  # unknown room is not called KV-bound
    assert cause(rec | {"side": "measured", "mode": "disagg"}) == "measured: disagg"
    assert cause(rec | {"side": "measured", "source": "gap-analysis"}) == "measured: agg gap-analysis"
