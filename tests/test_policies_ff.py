"""Every scheduler, with fast-forward on and off, gives the same requests table as the per-request decode
oracle (`tests/oracle_decode.py`) — under KV pressure, with recompute and with swap preemption — and keeps
the engine's invariants."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.core.registry import SCHEDULERS
from tests.helpers import scenario, write_csv
from tests.oracle_decode import per_request_decoding
from tests.strategies import request_rows

# one or more configurations per registered kind; a new kind without an entry here fails the coverage test
CONFIGS: dict[str, list[dict[str, Any]]] = {
    "fcfs": [{"kind": "fcfs", "max_num_seqs": 6, "max_num_batched_tokens": 200}],
    "sarathi": [{"kind": "sarathi", "token_budget": 48, "max_num_seqs": 6}],
    "trtllm": [
        {"kind": "trtllm", "max_num_tokens": 48, "max_batch_size": 6},
        {"kind": "trtllm", "max_num_tokens": 48, "max_batch_size": 6, "enable_chunked_prefill": True},
    ],
    "sglang": [
        {"kind": "sglang", "chunked_prefill_size": 48, "max_running_requests": 6},
        {"kind": "sglang", "chunked_prefill_size": 48, "max_running_requests": 6, "enable_mixed_chunk": True},
    ],
    "vllm": [
        {"kind": "vllm", "max_num_batched_tokens": 48, "max_num_seqs": 6},
        {"kind": "vllm", "max_num_batched_tokens": 16, "max_num_seqs": 3, "enable_prefix_caching": False},
    ],
    "static": [
        {"kind": "static", "mode": "dynamic", "batch_size": 5},
        {"kind": "static", "mode": "fixed", "batch_size": 3},
        {"kind": "static", "mode": "fixed", "batch_size": 4, "max_wait_s": 0.05},
        {"kind": "static", "mode": "elastic", "batch_size": 6},
    ],
    "sjf": [{"kind": "sjf", "max_num_seqs": 5}, {"kind": "sjf", "lengths": "predicted", "max_num_batched_tokens": 64}],
    "srpt": [{"kind": "srpt", "max_num_seqs": 4}, {"kind": "srpt", "lengths": "predicted"}],
    "ltr": [
        {"kind": "ltr", "max_num_seqs": 3, "starvation_iters": 7, "promote_iters": 3},
        {"kind": "ltr", "preemptive": False, "starvation_iters": 4, "promote_iters": 2, "max_num_batched_tokens": 40},
    ],
    "mlfq": [
        {"kind": "mlfq", "max_num_seqs": 3, "base_quantum_s": 0.02},
        {"kind": "mlfq", "max_num_seqs": 4, "base_quantum_s": 0.01, "keep_kv": False, "max_num_batched_tokens": 48},
    ],
    "priority": [{"kind": "priority", "max_num_seqs": 3}, {"kind": "priority", "keep_kv": False}],
    "length_group": [
        {"kind": "length_group", "bucket_tokens": 10},
        {"kind": "length_group", "bucket_tokens": 5, "max_batch_size": 3, "order": "shortest"},
    ],
}
ALL = [c for kind in sorted(CONFIGS) for c in CONFIGS[kind]]
ROOFLINE = {"kind": "roofline", "iteration_overhead_s": 0.001}  # decode steps depend on the context length


def test_every_scheduler_is_covered_and_declares_a_horizon():
    assert set(CONFIGS) == set(SCHEDULERS.kinds())
    for kind in SCHEDULERS.kinds():
        sched = SCHEDULERS.build(SCHEDULERS.get(kind).config(), cost=None, rng=None)
        assert callable(getattr(sched, "decision_horizon", None)), kind


def _scenario(tmp_path, reqs, sched, *, kv: int, preemption: str, ff: bool, cost=None) -> dict[str, Any]:
    tr = write_csv(tmp_path / "w.csv", sorted(reqs))
    sc = scenario(tr, scheduler=sched, kv_blocks=kv, watermark=0.01, fast_forward=ff, cost=cost)
    sc["kv_cache"]["preemption"] = preemption
    sc["predictor"] = {"kind": "noisy", "sigma": 0.8}
    sc["workload"]["classes"] = [{"name": "ls", "share": 1, "priority": 0}, {"name": "be", "share": 2, "priority": 1}]
    return sc


def _check(res: sim.Result, n: int, kv: int) -> None:
    df, c = res.requests, res.summary["counts"]
    assert c["completed"] + c["rejected"] + c["in_flight"] == c["arrived"] == n
    assert c["in_flight"] == 0
    done = df[df["status"] == "completed"]
    assert (done["generated_tokens"] == done["output_tokens"]).all()
    assert (done["first_token_s"] >= done["arrival_s"]).all()
    assert (done["completion_s"] >= done["first_token_s"]).all()
    tl = res.timeline
    assert (tl["kv_used_blocks"] >= 0).all() and (tl["kv_used_blocks"] <= kv).all()


def _workload(n: int, seed: int) -> list[tuple[float, int, int]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(0.02, n))
    p = rng.integers(1, 90, n)
    o = np.maximum(1, rng.lognormal(2.5, 1.0, n).astype(int))
    o = np.minimum(o, 150)
    return [(float(a), int(b), int(c)) for a, b, c in zip(t, p, o, strict=True)]


@pytest.mark.parametrize("preemption", ["recompute", "swap"])
@pytest.mark.parametrize("sched", ALL, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_fast_forward_is_exact(tmp_path, sched, preemption):
    reqs = _workload(60, 7)
    kv = 24  # 384 tokens of KV: constant preemption pressure
    a = sim.run(_scenario(tmp_path, reqs, sched, kv=kv, preemption=preemption, ff=True, cost=ROOFLINE))
    b = sim.run(_scenario(tmp_path, reqs, sched, kv=kv, preemption=preemption, ff=False, cost=ROOFLINE))
    with per_request_decoding():
        ref = sim.run(_scenario(tmp_path, reqs, sched, kv=kv, preemption=preemption, ff=False, cost=ROOFLINE))
    pd.testing.assert_frame_equal(a.requests, ref.requests, check_exact=True)
    pd.testing.assert_frame_equal(b.requests, ref.requests, check_exact=True)
    assert a.summary["sim"]["iterations"] == b.summary["sim"]["iterations"] == ref.summary["sim"]["iterations"]
    assert a.summary["sim"]["events"] < b.summary["sim"]["events"]  # fast-forward did skip steps
    _check(a, len(reqs), kv)


request = request_rows(1.0, 100, 60)


@settings(max_examples=60)
@given(
    reqs=st.lists(request, min_size=1, max_size=20),
    sched=st.sampled_from(ALL),
    kv=st.integers(10, 80),
    preemption=st.sampled_from(["recompute", "swap"]),
)
def test_invariants_and_exactness_on_random_workloads(tmp_path, reqs, sched, kv, preemption):
    a = sim.run(_scenario(tmp_path, reqs, sched, kv=kv, preemption=preemption, ff=True))
    b = sim.run(_scenario(tmp_path, reqs, sched, kv=kv, preemption=preemption, ff=False))
    with per_request_decoding():
        ref = sim.run(_scenario(tmp_path, reqs, sched, kv=kv, preemption=preemption, ff=True))
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.requests, ref.requests, check_exact=True)
    _check(a, len(reqs), kv)
