"""A decode run's step end times (`sim.core.clock.step_times`) are exactly the clocks of stepping.

Stepping prices each decode step on its own (`cost.iteration([], n, context)`) and adds it to the clock; a run
prices its k steps at once — one step by two additions, short affine runs with `map`/`accumulate`, long ones
(and models that are not affine in context) with numpy — and every path must give the same floats, bit for bit,
or fast-forward would move every timestamp.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprofiles import catalog
from sim.core.clock import PLAIN_STEPS, step_times
from sim.costmodel.build import build_physical
from sim.costmodel.engine import ServingEngineConfig
from sim.costmodel.memo import memoised
from sim.costmodel.models import CostModel, LinearCost, LinearCostConfig, RooflineCostConfig, decode_coeffs


def _models() -> dict[str, CostModel]:
    llama, code = catalog.model("llama-3.1-8b"), catalog.model("codellama-34b")
    h100, a100 = catalog.gpu("h100-sxm"), catalog.gpu("a100-80g")
    return {
        "roofline-memo": memoised(build_physical(RooflineCostConfig(), llama, h100, 1)),
        "roofline-tp2": build_physical(RooflineCostConfig(efficiency="constant"), code, a100, 2),
        "linear": LinearCost(LinearCostConfig(base_s=0.011, per_prefill_token_s=2e-5, per_decode_seq_s=3e-4)),
        # launch-bound eager steps are not affine in context: numpy through `decode_run`
        "eager": build_physical(
            RooflineCostConfig(), llama, h100, 2, engine=ServingEngineConfig(cuda_graph_max_batch=0)
        ),
    }


MODELS = _models()


def test_the_paths_are_all_taken() -> None:
    assert decode_coeffs(MODELS["roofline-memo"], 8) is not None and decode_coeffs(MODELS["eager"], 8) is None


@pytest.mark.parametrize("name", list(MODELS))
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    per_seq=st.integers(1, 9000),
    k=st.one_of(st.integers(1, 4), st.integers(PLAIN_STEPS - 2, PLAIN_STEPS + 3), st.integers(1, 600)),
    t=st.floats(0.0, 1e5),
    extra=st.one_of(st.just(0.0), st.floats(1e-6, 0.5)),
)
def test_run_times_are_stepping_clocks(name: str, n: int, per_seq: int, k: int, t: float, extra: float) -> None:
    cost = MODELS[name]
    ctx0 = n * per_seq
    times, arr = step_times(cost, t, n, ctx0, k, extra)
    clock = t
    for j in range(k):
        dt = cost.iteration([], n, ctx0 + n * (j + 1))
        if j == 0 and extra:
            dt += extra
        clock = clock + dt
        assert times[j].hex() == clock.hex(), (j, times[j], clock)
    assert len(times) == k
    if arr is not None:  # the array (used for the run's gaps) holds the same floats
        assert np.array_equal(arr, np.array(times)) and len(arr) == k


@settings(max_examples=12, deadline=None)
@given(
    rows=st.lists(st.tuples(st.floats(0.0, 30.0), st.integers(1, 300), st.integers(40, 700)), min_size=1, max_size=6),
    sched=st.sampled_from([{"kind": "fcfs"}, {"kind": "sarathi", "token_budget": 64}]),
    cost=st.sampled_from(
        [None, {"kind": "linear", "base_s": 0.01, "per_prefill_token_s": 0.001, "per_decode_seq_s": 0.002}]
    ),
)
def test_long_runs_fast_forward_as_stepping(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[float, int, int]], sched: dict, cost: dict | None
) -> None:
    """Few requests with long outputs make decode runs longer than `PLAIN_STEPS` (numpy-priced, their gaps
    from the array): fast-forward gives stepping's requests, timeline and ITL sums bit for bit."""
    import sim
    from tests.helpers import same_result, scenario, write_csv

    trace = write_csv(tmp_path_factory.mktemp("long") / "t.csv", sorted(rows))
    cm = cost or {"kind": "roofline"}
    runs = [
        sim.run(sim.load_scenario(scenario(trace, scheduler=sched, cost=cm, fast_forward=ff))) for ff in (True, False)
    ]
    same_result(runs[0], runs[1], itl=True)
