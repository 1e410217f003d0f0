"""Decode runs that go on past completions (`sim.core.steps._onward`): when a lockstep decode run ends at a
completion and nobody waits or prefills, the survivors decode on without a new plan. The result must be what
stepping gives (one iteration per event) and what planning again after every completion gives — the same
requests table, timeline, per-instance counters, ITL histogram and event count — with every request accounted
for, KV within capacity and time running forward; and it must actually skip plans."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from policies.continuous import FCFS, Sarathi
from tests.helpers import same_result, scenario, write_csv

ROOFLINE = {"kind": "roofline", "iteration_overhead_s": 0.001}  # step prices depend on the batch and context
SCHEDULERS = {
    "fcfs": {"kind": "fcfs", "max_num_seqs": 8},
    "sarathi": {"kind": "sarathi", "token_budget": 64, "max_num_seqs": 8},
    "vllm": {"kind": "vllm", "max_num_batched_tokens": 64, "max_num_seqs": 8},
}


def _workload(n: int, seed: int, rate: float) -> list[tuple[float, int, int]]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    p = rng.integers(1, 300, n)
    o = np.minimum(300, np.maximum(1, rng.lognormal(3.0, 1.2, n).astype(int)))
    return [(float(a), int(b), int(c)) for a, b, c in zip(t, p, o, strict=True)]


def _run(tmp_path: Any, reqs: list[tuple[float, int, int]], *, ff: bool = True, **kw: Any) -> sim.Result:
    horizon, timeout = kw.pop("horizon", None), kw.pop("timeout", None)
    cost = kw.pop("cost", ROOFLINE)
    sc = scenario(write_csv(tmp_path / "w.csv", sorted(reqs)), fast_forward=ff, cost=cost, **kw)
    if horizon is not None:
        sc["engine"]["horizon_s"] = horizon
    if timeout is not None:
        sc["workload"]["timeout_s"] = timeout
    return sim.run(sc)


def _sound(r: sim.Result, reqs: list[tuple[float, int, int]], horizon: float | None, kv_blocks: int) -> None:
    """Every request that arrived is in the table with one end (or in flight at the horizon), each one's times
    in order, KV never past capacity, each instance's clock forward."""
    c = r.summary["counts"]
    t0 = min(a for a, _, _ in reqs)  # a trace's clock starts at its first arrival
    arrived = sum(1 for a, _, _ in reqs if horizon is None or a - t0 < horizon)
    assert c["arrived"] == arrived
    df = r.requests
    done = df["completion_s"].notna()
    assert int(done.sum()) == c["completed"]
    if horizon is None:
        assert c["in_flight"] == 0
    assert (df.loc[done, "first_token_s"] >= df.loc[done, "arrival_s"]).all()
    assert (df.loc[done, "completion_s"] >= df.loc[done, "first_token_s"]).all()
    assert (r.timeline["kv_used_blocks"] <= kv_blocks).all()
    assert all(t.is_monotonic_increasing for _, t in r.timeline.groupby("instance")["time_s"])


def _no_onward(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FCFS, "steady_decode", False)
    monkeypatch.setattr(Sarathi, "steady_decode", False)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(list(SCHEDULERS)),
    rate=st.sampled_from([2.0, 50.0, 500.0]),  # 50 and 500 queue behind full KV at completions
    kv=st.integers(40, 160),
    instances=st.integers(1, 3),
    router=st.sampled_from(["round_robin", "least_requests", "least_kv"]),
    preemption=st.sampled_from(["recompute", "swap"]),
    horizon=st.one_of(st.none(), st.floats(0.5, 20.0)),
    timeout=st.one_of(st.none(), st.floats(0.2, 5.0)),
    system_prompt=st.sampled_from([None, 32]),  # prefix caching: completions return shared blocks to the cache
)
def test_onward_runs_equal_stepping_and_replanning(
    tmp_path: Any,
    seed: int,
    kind: str,
    rate: float,
    kv: int,
    instances: int,
    router: str,
    preemption: str,
    horizon: float | None,
    timeout: float | None,
    system_prompt: int | None,
) -> None:
    reqs = _workload(30, seed, rate)
    kw: dict[str, Any] = {"scheduler": SCHEDULERS[kind], "kv_blocks": kv, "instances": instances, "router": router}
    kw |= {"preemption": preemption, "horizon": horizon, "timeout": timeout, "system_prompt": system_prompt}
    onward = _run(tmp_path, reqs, **kw)
    same_result(onward, _run(tmp_path, reqs, ff=False, **kw), itl=False)
    with pytest.MonkeyPatch.context() as mp:
        _no_onward(mp)
        replanned = _run(tmp_path, reqs, **kw)
    same_result(onward, replanned, itl=True)
    assert onward.summary["sim"]["events"] == replanned.summary["sim"]["events"]
    _sound(onward, reqs, horizon, kv)


def _closed(tmp_path: Any, n: int, concurrency: int, think: float, seed: int, **kw: Any) -> dict[str, Any]:
    """A closed loop of `concurrency` clients: each completion sends the client's next request (after `think`),
    so arrivals land exactly at completions, where onward runs decide whether to go on."""
    timeout = kw.pop("timeout", None)
    sc = scenario(write_csv(tmp_path / "unused.csv", [(0.0, 1, 1)]), cost=ROOFLINE, seed=seed, **kw)
    arrival = {"kind": "closed_loop", "concurrency": concurrency, "think_time_s": think, "think_time": "exponential"}
    sc["workload"] = {
        "num_requests": n,
        "arrival": arrival,
        "lengths": {"kind": "lognormal", "prompt_median": 60, "output_median": 25},
        **({"timeout_s": timeout} if timeout is not None else {}),
    }
    return sc


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(list(SCHEDULERS)),
    concurrency=st.integers(1, 12),
    think=st.sampled_from([0.0, 0.05, 1.0]),  # 0: the next request arrives at the very completion
    kv=st.integers(40, 160),
    instances=st.integers(1, 2),
    preemption=st.sampled_from(["recompute", "swap"]),
    timeout=st.one_of(st.none(), st.floats(0.2, 5.0)),
)
def test_onward_runs_equal_stepping_and_replanning_in_closed_loop(
    tmp_path: Any,
    seed: int,
    kind: str,
    concurrency: int,
    think: float,
    kv: int,
    instances: int,
    preemption: str,
    timeout: float | None,
) -> None:
    kw: dict[str, Any] = {"scheduler": SCHEDULERS[kind], "kv_blocks": kv, "instances": instances}
    kw |= {"preemption": preemption, "timeout": timeout}
    onward = sim.run(_closed(tmp_path, 40, concurrency, think, seed, **kw))
    same_result(onward, sim.run(_closed(tmp_path, 40, concurrency, think, seed, fast_forward=False, **kw)), itl=False)
    with pytest.MonkeyPatch.context() as mp:
        _no_onward(mp)
        replanned = sim.run(_closed(tmp_path, 40, concurrency, think, seed, **kw))
    same_result(onward, replanned, itl=True)
    assert onward.summary["sim"]["events"] == replanned.summary["sim"]["events"]
    assert onward.summary["counts"]["arrived"] == 40


def test_a_continued_run_plans_afresh_after_an_unstable_plan(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan that preempted (`preempted > 0`) runs one step. When that step ends at a completion and the run goes
    on, what goes on is the plan stepping would make then — a fresh one, which fast-forwards — not the old one
    again (k = 1 at every step to the next completion: more events than replanning). A real preemption leaves its
    victim waiting, which stops a run going on by itself; so the plan after an abandonment (the engine plans as
    the client gives up, with nobody waiting) is marked as having preempted, in both runs the same plan."""
    lin = {"kind": "linear", "base_s": 0.01}  # every step 10 ms: A gives up in the step 1.00-1.01 s
    # A gives up at 1.005 s; B's last token comes at 1.02 s, in the step the abandonment's plan runs; C and D
    # decode on to 1.3 s and 1.4 s (each arrival cuts the run in flight and prefills in a step of its own)
    reqs = [(0.0, 10, 1000), (0.1, 10, 90), (0.503, 10, 79), (0.503, 10, 89)]
    real = FCFS.schedule
    marked: list[float] = []

    def unstable_after_give_up(self: FCFS, inst: Any, now: float) -> Any:
        plan = real(self, inst, now)
        if plan.cohort and not plan.prefill and now > 1.005 and not marked:
            marked.append(now)
            plan.preempted = 1
        return plan

    monkeypatch.setattr(FCFS, "schedule", unstable_after_give_up)
    kw: dict[str, Any] = {"scheduler": SCHEDULERS["fcfs"], "cost": lin, "timeout": 1.005}
    onward = _run(tmp_path, reqs, **kw)
    first = list(marked)
    marked.clear()
    with pytest.MonkeyPatch.context() as mp:
        _no_onward(mp)
        replanned = _run(tmp_path, reqs, **kw)
    assert marked == first and len(first) == 1  # the same plan was marked in both
    df = onward.requests.sort_values("arrival_s", kind="stable")
    assert df["completion_s"].isna().tolist() == [True, False, False, False]  # A gave up; B, C, D completed
    b_done = df["completion_s"].iloc[1]
    assert first[0] < b_done < first[0] + 0.011  # B completes at the marked plan's step: the run goes on there
    same_result(onward, replanned, itl=True)
    assert onward.summary["sim"]["events"] == replanned.summary["sim"]["events"]
    marked.clear()
    same_result(onward, _run(tmp_path, reqs, ff=False, **kw), itl=False)


def test_onward_runs_skip_plans(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst then silence: after the prompts, the batch decodes to the end, one completion after another;
    the scheduler is asked once per completion without onward runs and hardly at all with them."""
    reqs = [(0.001 * i, 20 + i, 10 + 7 * i) for i in range(8)]  # distinct lengths: 8 separate completions
    plans: list[int] = []
    real = Sarathi.schedule

    def counted(self: Sarathi, inst: Any, now: float) -> Any:
        plans.append(1)
        return real(self, inst, now)

    monkeypatch.setattr(Sarathi, "schedule", counted)
    kw: dict[str, Any] = {"scheduler": SCHEDULERS["sarathi"]}
    onward = _run(tmp_path, reqs, **kw)
    with_onward = len(plans)
    plans.clear()
    _no_onward(monkeypatch)
    replanned = _run(tmp_path, reqs, **kw)
    same_result(onward, replanned, itl=True)
    assert onward.summary["counts"]["completed"] == 8
    assert with_onward <= len(plans) - 7  # the 7 completions before the last each cost a plan before


@pytest.mark.parametrize("kind", ["fcfs", "sarathi"])
def test_a_prompt_goes_straight_into_its_decode_run(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Requests far apart, each done before the next arrives: one plan per request (its prompt), whose step
    continues into the decode run to its last token; without onward runs, two (the prompt, then the decodes)."""
    reqs = [(10.0 * i, 40 + i, 30 + i) for i in range(6)]
    plans: list[int] = []
    cls = FCFS if kind == "fcfs" else Sarathi
    real = cls.schedule

    def counted(self: Any, inst: Any, now: float) -> Any:
        plans.append(1)
        return real(self, inst, now)

    monkeypatch.setattr(cls, "schedule", counted)
    kw: dict[str, Any] = {"scheduler": SCHEDULERS[kind]}
    onward = _run(tmp_path, reqs, **kw)
    assert len(plans) == len(reqs)
    plans.clear()
    _no_onward(monkeypatch)
    replanned = _run(tmp_path, reqs, **kw)
    assert len(plans) == 2 * len(reqs)
    same_result(onward, replanned, itl=True)
    same_result(onward, _run(tmp_path, reqs, ff=False, **kw), itl=False)
