"""Disaggregation: the decode side's admission of a handed-off request (`decode_wait_s`), the client's first token
after it, and the KV link's bandwidth by where the pools sit (`sim.cluster.links.link_bandwidth`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from hwprofiles import catalog
from sim.cluster.links import link_bandwidth
from sim.config.cluster import Link
from tests.strategies import examples


def _scenario(decode_seqs: int, n: int = 2, prompt: int = 100, output: int = 11, **extra: Any) -> dict[str, Any]:
    return {
        "name": "decode-wait",
        "model": "llama-3.1-8b",
        "hardware": "h100-sxm",
        "workload": {
            "num_requests": n,
            "arrival": {"kind": "closed_loop", "concurrency": n},  # all sent at t = 0
            "lengths": {"kind": "fixed", "prompt": prompt, "output": output},
        },
        "cluster": {
            "prefill": {"instances": 1, "tp": 1},
            "decode": {"instances": 1, "tp": 1, "scheduler": {"kind": "fcfs", "max_num_seqs": decode_seqs}},
            "link": {"bandwidth_gbps": 1e6, "latency_s": 0.0},
            "kv_transfer": "serialized",
        },
        "scheduler": {"kind": "fcfs", "max_num_seqs": 256, "max_num_batched_tokens": 8192},
        "cost_model": {"kind": "linear", "per_prefill_token_s": 1e-3, "per_decode_seq_s": 0.01},
        **extra,
    }


def test_a_full_decode_batch_makes_the_second_request_wait_one_decode_by_hand():
    # Both prompts (100 tokens each) are prefilled in one step of 0.2 s; their KV lands on the one decode instance
    # at ~0.2 s (a near-infinite link). With one decode slot the first decodes its 10 remaining tokens alone
    # (10 x 0.01 s) while the second waits for the slot: decode_wait_s = 0 and 0.1 s.
    rq = sim.run(sim.load_scenario(_scenario(decode_seqs=1))).requests
    assert rq["first_token_s"].tolist() == pytest.approx([0.2, 0.2], abs=1e-9)
    assert sorted(rq["decode_wait_s"]) == pytest.approx([0.0, 0.1], abs=1e-6)
    assert sorted(rq["completion_s"]) == pytest.approx([0.3, 0.4], abs=1e-6)
    # with two slots the second still lands (a few ns after the first: one link, copies in turn) while the first's
    # first decode step is in flight, and joins at its end: one step (0.01 s) later
    free = sim.run(sim.load_scenario(_scenario(decode_seqs=2))).requests
    assert sorted(free["decode_wait_s"]) == pytest.approx([0.0, 0.01], abs=1e-6)
    # (a step costs 0.01 s per decoding sequence: 0.2 + 0.01 + 9 x 0.02 = 0.39, the second's last step alone 0.40)
    assert sorted(free["completion_s"]) == pytest.approx([0.39, 0.40], abs=1e-6)


def test_the_clients_first_token_follows_the_decode_admission():
    # the same two requests under an engine preset that streams from the decode worker (roofline pricing): the
    # waiting request's first token comes after its wait, not spread over its decode steps
    sc = _scenario(decode_seqs=1, cost_model={"kind": "roofline"}, serving_engine={"kind": "trtllm"})
    res = sim.run(sim.load_scenario(sc))
    rq = res.requests
    ready = rq["first_token_s"] + rq["kv_transfer_s"] + rq["decode_wait_s"]
    step = (rq["completion_s"] - ready) / (rq["output_tokens"] - 1)
    fe = res.scenario.serving_engine.frontend_s
    assert np.allclose(rq["ttft_s"], ready + step - rq["arrival_s"] + fe)
    late = rq["decode_wait_s"].idxmax()
    # the waiting request waited for the other's whole decode (10 steps): its TTFT carries that wait
    other = 1 - late
    assert rq.loc[late, "decode_wait_s"] == pytest.approx(
        rq.loc[other, "completion_s"] - (rq.loc[late, "first_token_s"] + rq.loc[late, "kv_transfer_s"]), abs=1e-9
    )
    assert rq.loc[late, "ttft_s"] > rq.loc[other, "e2el_s"]
    assert res.summary["disaggregation"]["decode_wait_s"]["mean"] > 0


@settings(max_examples=examples(15), deadline=None)
@given(
    seqs=st.integers(1, 6),
    n=st.integers(1, 14),
    prompt=st.integers(16, 600),
    output=st.integers(2, 40),
    rate=st.sampled_from([5.0, 50.0, 1e6]),
)
def test_every_handed_off_request_is_admitted_once_after_its_kv_lands(
    seqs: int, n: int, prompt: int, output: int, rate: float
) -> None:
    sc = _scenario(decode_seqs=seqs, n=n, prompt=prompt, output=output)
    sc["workload"]["arrival"] = {"kind": "poisson", "rate": rate}
    sc["cluster"]["link"] = {"bandwidth_gbps": 100, "latency_s": 1e-3}
    rq = sim.run(sim.load_scenario(sc)).requests
    done = rq["status"] == "completed"
    assert done.all()  # nothing is dropped on the way
    w, ready = rq["decode_wait_s"], rq["first_token_s"] + rq["kv_transfer_s"]
    assert w.notna().all() and (w >= -1e-12).all()
    # admitted before its first decode step, which ends no later than its completion
    assert ((ready + w) <= rq["completion_s"] + 1e-12).all()


@pytest.mark.parametrize(
    ("gpu", "gpus", "other", "want"),
    [
        ("h100-sxm", 4, None, "intra"),  # 2 + 2 GPUs on one HGX board
        ("h100-sxm", 8, None, "intra"),
        ("h100-sxm", 16, None, "inter"),  # two boards: the KV crosses the NICs
        ("gb200", 72, None, "intra"),  # one NVL72 rack
        ("gb200", 80, None, "inter"),
        ("h100-sxm", 2, "h200", "inter"),  # two GPU models are two nodes
    ],
)
def test_link_bandwidth_follows_the_nvlink_domain(gpu: str, gpus: int, other: str | None, want: str) -> None:
    a = catalog.gpu(gpu)
    b = catalog.gpu(other) if other else a
    got = link_bandwidth(Link(), a, b, gpus)
    if want == "intra":
        assert got == min(a.intra_node_bw, b.intra_node_bw)
    else:
        assert a.inter_node_bw is not None and b.inter_node_bw is not None
        assert got == min(a.inter_node_bw, b.inter_node_bw)
    assert link_bandwidth(Link(bandwidth_gbps=200), a, b, gpus) == 25e9  # a configured link is as written
