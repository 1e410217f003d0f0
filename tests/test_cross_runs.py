"""Cross-prompt runs (`sim.core.xrun`): the step that ends one prompt's prefill and starts the next one's, with the
next prompt's chunks after it, slept as one event, give the very same requests table, timeline (its KV gauge read
while runs are asleep), ITL sums, iteration counts and per-instance totals as stepping every iteration and as the
engine without them — with queues, tight KV (preemption by recompute or swap), clients giving up mid-run (nudges
cut runs anywhere), routers that read the KV gauge, and several instances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
import sim.core.xrun as xrun
from policies.continuous import Sarathi
from tests.helpers import same_result, scenario, write_csv

ROOFLINE = {"kind": "roofline", "iteration_overhead_s": 0.001}  # memoised: `MemoCost.chunk_steps` prices the chunks
LINEAR = {"kind": "linear", "base_s": 0.01, "per_prefill_token_s": 0.001, "per_decode_seq_s": 0.002}


def _workload(n: int, seed: int, rate: float, longest: int = 700) -> list[tuple[float, int, int]]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    p = rng.integers(1, longest, n)
    o = np.minimum(200, np.maximum(1, rng.lognormal(3.0, 1.0, n).astype(int)))
    return [(float(a), int(b), int(c)) for a, b, c in zip(t, p, o, strict=True)]


def _run(tmp_path: Any, reqs: list[tuple[float, int, int]], *, ff: bool, **kw: Any) -> sim.Result:
    budget, seqs, timeout = kw.pop("budget"), kw.pop("seqs", 8), kw.pop("timeout", None)
    sc = scenario(
        write_csv(tmp_path / "w.csv", sorted(reqs)),
        scheduler={"kind": "sarathi", "token_budget": budget, "max_num_seqs": seqs},
        fast_forward=ff,
        **kw,
    )
    sc["engine"]["timeline_interval_s"] = 0.01  # the KV gauge sampled inside runs
    if timeout is not None:
        sc["workload"]["timeout_s"] = timeout
    return sim.run(sc)


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The lengths of the cross-prompt runs taken (beyond their first step)."""
    got: list[int] = []
    real = xrun.cross_length

    def counting(*a: Any) -> tuple[int, bool]:
        k, tail = real(*a)
        if k:
            got.append(k)
        return k, tail

    monkeypatch.setattr(xrun, "cross_length", counting)
    return got


def test_cross_runs_skip_plans_and_events_and_change_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, taken: list[int]
) -> None:
    reqs = _workload(120, 3, rate=30.0)  # prompts queue behind each other: transitions are common
    kw = {"budget": 48, "kv_blocks": 400, "cost": ROOFLINE}
    runs = _run(tmp_path, reqs, ff=True, **kw)
    assert len(taken) >= 15 and max(taken) > 3  # the runs happened, several chunks long
    stepped = _run(tmp_path, reqs, ff=False, **kw)
    monkeypatch.delattr(Sarathi, "chunk_after")
    without = _run(tmp_path, reqs, ff=True, **kw)
    same_result(runs, stepped)
    same_result(runs, without, itl=True)
    # each run is one event and one plan in place of two of each (the joint step and the next chunk run)
    assert runs.summary["sim"]["events"] <= without.summary["sim"]["events"] - len(taken)
    assert runs.summary["counts"]["completed"] == len(reqs)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rate=st.sampled_from([5.0, 40.0, 400.0]),
    budget=st.integers(8, 96),
    kv=st.integers(40, 400),
    instances=st.integers(1, 2),
    router=st.sampled_from(["round_robin", "least_requests", "least_kv"]),
    preemption=st.sampled_from(["recompute", "swap"]),
    timeout=st.sampled_from([None, 0.3, 2.0]),
    linear=st.booleans(),
)
def test_cross_runs_equal_stepping_and_their_absence(
    tmp_path: Any,
    seed: int,
    rate: float,
    budget: int,
    kv: int,
    instances: int,
    router: str,
    preemption: str,
    timeout: float | None,
    linear: bool,
) -> None:
    reqs = _workload(30, seed, rate)
    kw = {"budget": budget, "kv_blocks": kv, "instances": instances, "router": router, "preemption": preemption}
    kw |= {"timeout": timeout, "cost": LINEAR if linear else ROOFLINE}
    runs = _run(tmp_path, reqs, ff=True, **kw)
    same_result(runs, _run(tmp_path, reqs, ff=False, **kw))
    with pytest.MonkeyPatch.context() as mp:
        mp.delattr(Sarathi, "chunk_after")
        same_result(runs, _run(tmp_path, reqs, ff=True, **kw), itl=True)


def test_joiner_blocks_is_the_cohort_phase_rule() -> None:
    """Hand-computed: a prompt of 16 tokens in blocks of 16 fills its block, so its first decode step takes one, then
    none until token 32; one of 15 takes its first new block at step 1 (token 16)."""
    from sim.core.cohort import Cohort, joiner_blocks
    from sim.core.recorder import LogHistogram
    from sim.core.request import Request

    assert [joiner_blocks(16, m, 16) for m in range(0, 19)] == [0] + [1] * 16 + [2] * 2
    assert [joiner_blocks(15, m, 16) for m in (1, 2, 17, 18)] == [0, 1, 1, 2]
    for kv in (1, 7, 15, 16, 17, 31, 32, 100):  # against the cohort's own count
        co = Cohort(16)
        req = Request(0, 0.0, kv, 500)
        req.kv_tokens, req.generated, req.last_token = kv, 1, 0.0
        co.join(req)
        for m in range(1, 40):
            assert joiner_blocks(kv, m, 16) == co.blocks(0, m), (kv, m)
        co.step(3, 1.0, 1.0, LogHistogram())  # (the rule counts from the join)
