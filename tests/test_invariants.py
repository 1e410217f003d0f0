"""Properties that hold for every workload: conservation, token accounting, KV bounds, monotone time,
fast-forward exactness and determinism."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.costmodel.models import LinearCost, LinearCostConfig
from tests.helpers import scenario, write_csv
from tests.oracle_decode import per_request_decoding
from tests.strategies import examples, linear_costs, request_rows

request = request_rows(2.0, 120, 60)
schedulers = st.sampled_from(
    [
        {"kind": "fcfs"},
        {"kind": "fcfs", "max_num_seqs": 3, "max_num_batched_tokens": 64},
        {"kind": "sarathi", "token_budget": 32},
        {"kind": "sarathi", "token_budget": 256, "max_num_seqs": 4},
    ]
)
costs = linear_costs

SETTINGS = settings(max_examples=examples(40))  # deadline and health checks: the profile (tests/conftest.py)


def _run(tmp_path, reqs, **kw) -> sim.Result:
    reqs = sorted(reqs)
    return sim.run(scenario(write_csv(tmp_path / "w.csv", reqs), **kw))


@SETTINGS
@given(
    reqs=st.lists(request, min_size=1, max_size=25),
    sched=schedulers,
    cost=costs,
    kv=st.integers(12, 200),
    instances=st.integers(1, 3),
    router=st.sampled_from(["round_robin", "least_requests"]),
    prefix=st.sampled_from([None, 32]),
)
def test_accounting_and_bounds(tmp_path, reqs, sched, cost, kv, instances, router, prefix):
    res = _run(
        tmp_path,
        reqs,
        scheduler=sched,
        cost=cost,
        kv_blocks=kv,
        instances=instances,
        router=router,
        watermark=0.01,
        system_prompt=prefix,
    )
    df = res.requests
    c = res.summary["counts"]
    # conservation: everything that arrived ended somewhere
    assert c["completed"] + c["rejected"] + c["in_flight"] == c["arrived"] == len(reqs)
    assert c["in_flight"] == 0
    done = df[df["status"] == "completed"]
    # every token of every completed request generated exactly once
    assert (done["generated_tokens"] == done["output_tokens"]).all()
    # time never runs backwards along a request's life
    assert (done["first_scheduled_s"] >= done["arrival_s"]).all()
    assert (done["first_token_s"] >= done["first_scheduled_s"]).all()
    assert (done["completion_s"] >= done["first_token_s"]).all()
    # KV blocks within [0, capacity] at every sample; sample times monotone per instance
    tl = res.timeline
    assert (tl["kv_used_blocks"] >= 0).all() and (tl["kv_used_blocks"] <= kv).all()
    for _, g in tl.groupby("instance"):
        assert g["time_s"].is_monotonic_increasing
    # TTFT is at least the prompt's prefill alone on an empty instance (less what a prefix hit can skip)
    lin = LinearCost(LinearCostConfig(**{k: v for k, v in cost.items() if k != "kind"}))
    for r in done.itertuples():
        hit = min(prefix or 0, r.prompt_tokens - 1) // 16 * 16
        assert 0 <= (r.prefix_hit_tokens if prefix else 0) <= hit
        todo = r.prompt_tokens - hit
        if sched["kind"] == "sarathi":
            b = sched["token_budget"]
            chunks = [min(b, todo - i) for i in range(0, todo, b)]
            alone = sum(lin.iteration([(q, 0)], 0, 0) for q in chunks)
        else:
            alone = lin.iteration([(todo, 0)], 0, 0)
        assert r.ttft_s >= alone - 1e-12


@SETTINGS
@given(
    reqs=st.lists(request, min_size=1, max_size=25),
    sched=schedulers,
    cost=costs,
    kv=st.integers(12, 200),
    instances=st.integers(1, 2),
    preemption=st.sampled_from(["recompute", "swap"]),
    prefix=st.sampled_from([None, 32]),
)
def test_fast_forward_is_exact(tmp_path, reqs, sched, cost, kv, instances, preemption, prefix):
    kw = dict(
        scheduler=sched, cost=cost, kv_blocks=kv, instances=instances, preemption=preemption, system_prompt=prefix
    )
    # the reference: one iteration at a time, per-request bookkeeping (the oracle in tests/oracle_decode.py)
    with per_request_decoding():
        ref = _run(tmp_path, reqs, engine={"fast_forward": False}, **kw)
    for ff in (True, False):
        for oracle in (True, False):
            with per_request_decoding() if oracle else contextlib.nullcontext():
                got = _run(tmp_path, reqs, engine={"fast_forward": ff}, **kw)
            pd.testing.assert_frame_equal(got.requests, ref.requests, check_exact=True)
            assert got.summary["sim"]["iterations"] == ref.summary["sim"]["iterations"]
            itl, ref_itl = got.summary["metrics"]["itl_s"], ref.summary["metrics"]["itl_s"]
            assert itl["mean"] == pytest.approx(ref_itl["mean"], rel=1e-12, nan_ok=True)  # summation order differs
            for key in ("p50", "p90", "p95", "p99", "count"):
                assert itl[key] == pytest.approx(ref_itl[key], rel=0, abs=0, nan_ok=True), key


def _shipped(tmp_path, name, extra):
    res = sim.run(sim.load_scenario(f"scenarios/{name}.yaml", extra))
    res.save(tmp_path / name)
    return res


def test_fast_forward_exact_on_shipped_scenarios(tmp_path):
    """Both schedulers on real trace slices, with preemption pressure: byte-identical requests.parquet."""
    for sched in ("{kind: fcfs}", "{kind: sarathi, token_budget: 512}"):
        name = sched.split()[1].rstrip(",}")
        for ff in ("true", "false"):
            over = [
                f"scheduler={sched}",
                f"engine.fast_forward={ff}",
                "workload.num_requests=600",
                "kv_cache.gpu_memory_utilization=0.24",
                "workload.arrival.time_scale=0.25",
                "cluster.instances=1",
            ]
            res = sim.run(sim.load_scenario("scenarios/azure-conv.yaml", over))
            assert res.summary["counts"]["preemptions"] > 0  # the fast-forward must survive preemption
            res.requests.to_parquet(tmp_path / f"{name}-{ff}.parquet", index=False)
        on = (tmp_path / f"{name}-true.parquet").read_bytes()
        off = (tmp_path / f"{name}-false.parquet").read_bytes()
        assert on == off, name


def test_fast_forward_saves_events():
    over = ["workload.num_requests=2000"]
    on = sim.run(sim.load_scenario("scenarios/azure-conv.yaml", over)).summary["sim"]
    off = sim.run(sim.load_scenario("scenarios/azure-conv.yaml", [*over, "engine.fast_forward=false"])).summary["sim"]
    assert on["iterations"] == off["iterations"]
    assert off["events"] >= 5 * on["events"]


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    outs = []
    for seed in (3, 3, 4):
        res = sim.run(sim.load_scenario("scenarios/quickstart.yaml", [f"seed={seed}", "workload.num_requests=300"]))
        p = tmp_path / f"r{len(outs)}.parquet"
        res.requests.to_parquet(p, index=False)
        outs.append(p.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def test_poisson_rate_and_gamma_cv():
    from sim.workload.generate import build_requests

    base = {
        "model": "llama-3.1-8b",
        "hardware": "h100-sxm",
        "workload": {"num_requests": 20000, "lengths": {"kind": "fixed", "prompt": 1, "output": 1}},
    }
    for arrival, cv in (({"kind": "poisson", "rate": 10.0}, 1.0), ({"kind": "gamma", "rate": 10.0, "cv": 3.0}, 3.0)):
        sc = sim.load_scenario({**base, "workload": {**base["workload"], "arrival": arrival}})
        gaps = np.diff(build_requests(sc).arrival_s)
        assert abs(gaps.mean() - 0.1) < 0.1 * 0.05
        assert abs(gaps.std() / gaps.mean() - cv) < 0.1 * cv
