"""The planner's shortcuts, each against the runs it saves: confirmations that are provably the seed-0 run, floor
curves computed in pieces on workers, and the search on a real worker pool against the serial search and the
exhaustive grid (same answer, same top-3, whatever order the runs finish in)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.config.scenario import load_scenario
from sim.core.engine import build_cost_model
from sim.tools.planner import floors
from sim.tools.planner.bounds import floor_jobs, one_instance
from sim.tools.planner.demand import Screen
from sim.tools.planner.evaluate import Evaluated, confirm
from sim.tools.planner.grid import exhaustive
from sim.tools.planner.pool import CandidatePool
from sim.tools.planner.request import PlanRequest, base_scenario
from sim.tools.planner.search import confirm as confirm_reusing
from sim.tools.planner.search import plan
from sim.tools.planner.slo import parse_slo
from sim.tools.planner.space import Config, Space, parse_schedulers
from sim.tools.planner.traffic import make_traffic
from sim.tools.sweep.execute import LocalBackend, SerialBackend

SLO = "ttft_p99=2,tpot_p99=0.1"
# what a verdict and the ranking read, and more; `events` is left out: a run that may stop early waits on one
# more (the any-of its end and its stop), so it counts one event more with the same requests
METRICS = (
    "ttft_p99_s",
    "ttft_mean_s",
    "tpot_p99_s",
    "e2el_p99_s",
    "queue_delay_p50_s",
    "slo_attainment",
    "completed",
    "simulated_s",
)


def trace_request(router: str = "least_requests", **kw: Any) -> PlanRequest:
    """A trace replay (the Azure conversation trace re-rated to 20 req/s, 300 requests) on L40S tp1."""
    args: dict[str, Any] = {
        "hardware": ["l40s"],
        "tps": [1],
        "shapes": ["colocated"],
        "schedulers": parse_schedulers("sarathi:512", [256]),
        "budget": 5,
        "top": 1,
        "replications": 3,
        "router": router,
        "base": {"cost_model": {"kind": "roofline", "efficiency": "constant"}},
    }
    args.update(kw)
    traffic = kw.pop("traffic", None) or make_traffic("azure-conv", 20.0, None, num_requests=300)
    args.pop("traffic", None)
    return PlanRequest("llama-3.1-8b", traffic, parse_slo(SLO), **args)


def _config(req: PlanRequest) -> Config:
    return Space.build(req.hardware, req.tps, req.shapes, req.schedulers).configs[0]


def _search_run(req: PlanRequest, size: tuple[int, ...], runs: Path) -> Evaluated:
    pool = CandidatePool(req, SerialBackend(), runs)
    pool.submit(_config(req), size)
    (ev,) = pool.take()
    return ev


def test_confirmations_reuse_only_runs_that_are_the_same(tmp_path: Path) -> None:
    """A trace replay with a deterministic router draws no random number: every replication is the seed-0 run,
    which the search already made. Checked against simulating them all (the grid's `confirm`): same rows."""
    req = trace_request()
    ev = _search_run(req, (4,), tmp_path / "search")
    assert ev.feasible and ev.row["engine_draws"] is False and not ev.row.get("stopped_early")
    pool = CandidatePool(req, SerialBackend(), tmp_path / "search")
    reps = confirm_reusing(req, ev, pool)
    assert [r.row.get("reused") is not None for r in reps] == [True, True, True] and pool.in_flight == 0
    full = confirm(req, ev, tmp_path / "full", SerialBackend())  # every seed simulated, none stopping early
    assert [r.seed for r in full] == [r.seed for r in reps] and len({r.seed for r in full}) == 3
    for got, want in zip(reps, full, strict=True):
        assert (got.feasible, got.headroom) == (want.feasible, want.headroom)
        assert {k: got.row[k] for k in METRICS} == {k: want.row[k] for k in METRICS}


def test_a_router_that_draws_is_replicated(tmp_path: Path) -> None:
    """The random router draws from the routing stream: replications differ and are simulated."""
    req = trace_request(router="random")
    ev = _search_run(req, (5,), tmp_path / "s")
    assert ev.row["engine_draws"] is True
    reps = confirm_reusing(req, ev, CandidatePool(req, SerialBackend(), tmp_path / "s"))
    assert [r.row.get("reused") for r in reps] == ["search run", None, None]
    assert not any(r.row["cached"] for r in reps[1:])
    assert len({r.row["ttft_p99_s"] for r in reps}) > 1  # other seeds, other runs: reusing would have been wrong


def test_a_sampled_workload_is_replicated(tmp_path: Path) -> None:
    """Poisson arrivals come from the seed: the engine draws nothing, but other seeds build other requests."""
    req = trace_request(traffic=make_traffic(None, 20, "fixed:512,128", num_requests=300))
    ev = _search_run(req, (2,), tmp_path / "s")
    assert ev.feasible and ev.row["engine_draws"] is False
    reps = confirm_reusing(req, ev, CandidatePool(req, SerialBackend(), tmp_path / "s"))
    assert [r.row.get("reused") for r in reps] == ["search run", None, None]
    assert len({(r.row["e2el_mean_s"], r.row["events"]) for r in reps}) > 1


def test_screening_on_fewer_requests_confirms_in_full(tmp_path: Path) -> None:
    """With --search-requests the search run is not the full-traffic run: nothing is reused."""
    req = trace_request(search_requests=100)
    ev = _search_run(req, (4,), tmp_path / "s")
    assert ev.row["completed"] == 100
    reps = confirm_reusing(req, ev, CandidatePool(req, SerialBackend(), tmp_path / "s"))
    assert not any(r.row.get("reused") for r in reps) and all(r.row["completed"] == 300 for r in reps)


def test_floor_curves_in_pieces_are_bit_identical() -> None:
    """`warm` cuts the curves into chunks for the workers; the cache then holds exactly the serial curves."""
    req = trace_request(hardware=["l40s", "a100-80g"], schedulers=parse_schedulers("fcfs,sarathi:512", [256]))
    base = base_scenario(req, req.traffic)
    space = Space.build(req.hardware, req.tps, req.shapes, req.schedulers)
    jobs = floor_jobs(space.configs, base, Screen.of(base))
    assert len(jobs) == 2  # one cost model per GPU, the longest iteration of its schedulers
    floors._FLOOR_CACHE.clear()
    floors.warm(jobs, lambda fn, args: [fn(*a) for a in args], pieces=7)
    warmed = dict(floors._FLOOR_CACHE)
    floors._FLOOR_CACHE.clear()
    for key, job in jobs.items():
        cm = build_cost_model(load_scenario(job.scenario))
        serial = floors.floor_curve(cm, key, job.m_max)
        assert len(warmed[key]) == job.m_max + 1 and math.isinf(warmed[key][0])
        np.testing.assert_array_equal(warmed[key], serial)
    assert one_instance(space.configs[0], base)["cluster"]["instances"] == 1


@pytest.mark.parametrize("shapes", [["colocated"], ["colocated", "disaggregated"]])
def test_plan_on_two_workers_matches_serial_and_grid(tmp_path: Path, shapes: list[str]) -> None:
    """The search on a real 2-process pool (runs finish in whatever order) gives the serial search's and the
    exhaustive grid's answer and top-3."""
    traffic = make_traffic(None, 20, "fixed:512,128", num_requests=400)
    req = PlanRequest(
        "llama-3.1-8b", traffic, parse_slo("ttft_p99=0.5,tpot_p99=0.03"), hardware=["a100-80g", "l40s"], tps=[1],
        shapes=shapes, schedulers=parse_schedulers("fcfs,sarathi:512", [256]), budget=4, top=3, replications=2,
        base={"cost_model": {"kind": "roofline", "efficiency": "constant"}},
    )  # fmt: skip
    backend = LocalBackend(2)
    ahead = exhaustive(req, tmp_path / "ahead", backend)  # joblib's Parallel before the plan's pool, and after
    par = plan(req, tmp_path / "par", backend)
    ser = plan(req, tmp_path / "ser")
    ref = exhaustive(req, tmp_path / "grid", backend)
    assert [(e.config, e.size) for e in ahead.ranked] == [(e.config, e.size) for e in ref.ranked]
    assert par.best is not None and ref.best is not None
    want = [(e.config, e.size) for e in ref.ranked]
    assert [(e.config, e.size) for e in par.ranked] == want == [(e.config, e.size) for e in ser.ranked]
    assert (par.best.config, par.best.size) == (ref.best.config, ref.best.size)
    assert len(par.evaluated) < len(ref.evaluated)
