"""`engine.horizon_s`: fast-forward on and off agree on every request at any horizon (a decode run in flight
is credited with the steps that ended before the horizon), and requests due after the horizon never
arrived: they are not rows of the run nor counted as arrived or in flight (issue 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import sim

COLS = ["status", "generated_tokens", "first_token_s", "completion_s", "instance"]


def _run(horizon: float, sched: str, ff: bool, seed: int) -> sim.Result:
    return sim.run(
        sim.load_scenario(
            "scenarios/quickstart.yaml",
            [
                "workload.num_requests=60",
                "workload.arrival.rate=6",
                f"engine.horizon_s={horizon}",
                f"scheduler={sched}",
                f"engine.fast_forward={str(ff).lower()}",
                f"seed={seed}",
            ],
        )
    )


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    horizon=st.floats(0.3, 15.0),
    sched=st.sampled_from(["{kind: fcfs}", "{kind: sarathi, token_budget: 512}"]),
    seed=st.integers(0, 3),
)
def test_fast_forward_on_and_off_agree_at_any_horizon(horizon: float, sched: str, seed: int) -> None:
    a, b = _run(horizon, sched, True, seed), _run(horizon, sched, False, seed)
    cols = [c for c in COLS if c in a.requests.columns]
    pd.testing.assert_frame_equal(a.requests[cols], b.requests[cols])
    assert a.summary["counts"] == b.summary["counts"]
    # only requests that arrived before the horizon are in the run
    arr = a.requests["arrival_s"].to_numpy()
    assert (arr <= horizon).all()
    c = a.summary["counts"]
    assert c["arrived"] == len(arr)
    assert c["completed"] + c["rejected"] + c["in_flight"] == c["arrived"]
    full = sim.load_scenario(
        "scenarios/quickstart.yaml", ["workload.num_requests=60", "workload.arrival.rate=6", f"seed={seed}"]
    )
    due = sim.workload.generate.build_requests(full).arrival_s
    assert c["arrived"] == int(np.sum(due <= horizon))


def test_horizon_before_any_arrival_is_an_empty_run() -> None:
    res = _run(1e-6, "{kind: fcfs}", True, 0)
    assert res.summary["counts"]["arrived"] == 0 and len(res.requests) == 0
