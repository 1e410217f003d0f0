"""Early stop of a run whose SLO miss is certain (`sim.core.verdict`): sound, and silent otherwise.

Soundness is a property: whatever the requests not yet finished do, a stopped run's full counterpart misses
the same SLO. Feeding values to the watch one by one and checking numpy's percentile / the attainment over
the *whole* sequence each time it fires tests exactly that (the watch sees a prefix; the verdict is about
the end). The engine tests check that a run which stops is infeasible in full, and that a run which does not
stop is the same run, byte for byte.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.core.request import Request
from sim.core.verdict import SLOWatch
from sim.output.result import run
from sim.tools.planner.slo import parse_slo


def _req(i: int, ttft: float, e2el: float, output: int) -> Request:
    r = Request(i, 0.0, 10, output)
    r.first_token, r.completion = ttft, e2el
    return r


def test_percentile_threshold_by_hand() -> None:
    """n = 100, p99 <= 1 s: numpy's p99 sits at sorted index 98.01, so 2 violators decide it; the watch waits
    for 3 (one spare index against float rounding), and 2 must not stop it."""
    env = simpy.Environment()
    w = SLOWatch({"attainment": None, "targets": [["ttft", 99, 1.0]]}, 100, {"ttft_s": 1.0}, env.event())
    for i in range(2):
        w.completed(_req(i, 5.0, 6.0, 1))
    assert not w.stop.triggered
    w.completed(_req(2, 5.0, 6.0, 1))
    assert w.stop.triggered and "ttft_p99" in w.reason


def test_attainment_threshold_by_hand() -> None:
    """n = 20, attainment 0.9: 2 misses leave 18/20 = 0.9 possible; the third miss makes it certain."""
    env = simpy.Environment()
    w = SLOWatch({"attainment": 0.9, "targets": []}, 20, {"ttft_s": 1.0, "tpot_s": 0.1}, env.event())
    w.completed(_req(0, 2.0, 3.0, 5))  # TTFT miss
    w.rejected()
    w.completed(_req(2, 0.5, 0.5 + 4 * 0.05, 5))  # meets both
    assert not w.stop.triggered
    w.completed(_req(3, 0.5, 0.5 + 4 * 0.2, 5))  # TPOT 0.2 > 0.1
    assert w.stop.triggered and "attainment" in w.reason


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 4.0, allow_nan=False), min_size=1, max_size=300),
    pct=st.sampled_from([50, 90, 95, 99]),
    limit=st.floats(0.1, 3.9),
)
def test_percentile_stop_is_certain(values: list[float], pct: int, limit: float) -> None:
    env = simpy.Environment()
    w = SLOWatch({"attainment": None, "targets": [["e2el", pct, limit]]}, len(values), {}, env.event())
    for i, v in enumerate(values):
        w.completed(_req(i, v / 2, v, 1))
        if w.stop.triggered:
            assert float(np.percentile(np.array(values), pct)) > limit
            return


@settings(max_examples=300, deadline=None)
@given(
    ttfts=st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=1, max_size=200),
    att=st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_attainment_stop_is_certain(ttfts: list[float], att: float) -> None:
    env = simpy.Environment()
    w = SLOWatch({"attainment": att, "targets": []}, len(ttfts), {"ttft_s": 1.0}, env.event())
    for i, t in enumerate(ttfts):
        w.completed(_req(i, t, t + 1.0, 1))
        if w.stop.triggered:
            assert sum(x <= 1.0 for x in ttfts) / len(ttfts) < att
            return


def test_engine_stops_only_certain_misses() -> None:
    slo = parse_slo("ttft_p99=2,tpot_p99=0.1", 0.9)
    spec = slo.stop_spec()
    base = "scenarios/regression/sarathi-4x-least-requests.yaml"
    for over in (["cluster.instances=1", "workload.num_requests=300"], ["workload.num_requests=300"]):
        sc = sim.load_scenario(base, over)
        full, part = run(sc), run(sc, stop_on_miss=spec)
        row = {"status": "ok", **full.summary["counts"], "slo_attainment": full.summary["throughput"]["slo_attainment"]}
        for m in ("ttft", "tpot"):
            row[f"{m}_p99_s"] = full.summary["metrics"][f"{m}_s"]["p99"]
        feasible, _, _ = slo.check(row)
        stopped = part.summary["sim"].get("stopped_early", "")
        if stopped:
            assert not feasible and part.summary["counts"]["in_flight"] > 0
        else:
            assert full.requests.equals(part.requests)
    # the overloaded single instance must have stopped, else the test above proves nothing
    one = run(sim.load_scenario(base, ["cluster.instances=1", "workload.num_requests=300"]), stop_on_miss=spec)
    assert one.summary["sim"].get("stopped_early") and not math.isnan(one.summary["sim"]["simulated_s"])


def test_planner_answer_unchanged_by_early_stop(tmp_path: Path) -> None:
    """Same winner, same verdict for every candidate run, with and without early stop — and some runs did
    stop (the infeasible ones of a small space), with fewer simulated seconds."""
    from sim.tools.planner.request import PlanRequest
    from sim.tools.planner.search import plan
    from sim.tools.planner.space import parse_schedulers
    from sim.tools.planner.traffic import make_traffic

    def request(early: bool) -> PlanRequest:
        traffic = make_traffic(None, 20, "fixed:512,128", num_requests=600)
        slo = parse_slo("ttft_p99=0.5,tpot_p99=0.03")
        return PlanRequest(
            "llama-3.1-8b", traffic, slo, hardware=["l40s"], tps=[1], shapes=["colocated"],
            schedulers=parse_schedulers("sarathi:512", [256]), budget=8, top=1, replications=1, early_stop=early,
        )  # fmt: skip

    fast, full = plan(request(True), tmp_path / "fast"), plan(request(False), tmp_path / "full")
    assert fast.best is not None and full.best is not None
    assert (fast.best.config, fast.best.size) == (full.best.config, full.best.size)
    verdicts = {(e.config, e.size): e.feasible for e in full.evaluated}
    assert {(e.config, e.size): e.feasible for e in fast.evaluated} == verdicts
    stopped = [e for e in fast.evaluated if e.row.get("stopped_early")]
    assert stopped and all(not e.feasible for e in stopped)
    assert all(len(c.row) and not c.row.get("stopped_early") for c in fast.confirmations)
