"""The decode pool's router under a slot cap (benchmarks/coverage_decode_router.py): servesim's default `least_kv`
strands a request on a full decode worker whose young requests hold little KV while another worker has a free slot;
the front ends the TensorRT-LLM disagg rows ran behind (Dynamo, `trtllm-serve disaggregated`) pick decode workers in
turn, and coverage.py now routes those rows' decode pools so."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import queueing  # noqa: F401  the package first: once benchmarks/ leads sys.path, its queueing.py would shadow it
import sim
from tests.helpers import write_csv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage as cov
import coverage_decode_router as cdr
import ttft_disagg_recipes as tdr

from policies.routers import FrontendsRoundRobin

WL = {"arrival": {"kind": "closed_loop", "concurrency": 1}, "num_requests": 1,
      "lengths": {"kind": "fixed", "prompt": 16, "output": 4}}  # fmt: skip

# (arrival s, prompt, output): A's long prompt fills one worker's KV; B and C then go to the other worker (least KV),
# and D arrives while B and C hold both of that worker's slots.
TRACE = [(0.0, 2000, 400), (3.0, 10, 300), (3.1, 10, 300), (3.5, 10, 50)]


def _scenario(trace: Path, router: str) -> dict[str, Any]:
    return {
        "name": "decode-router",
        "model": "llama-3.1-8b",
        "hardware": "h100-sxm",
        "workload": {"arrival": {"kind": "trace", "path": str(trace), "format": "csv"}},
        "cluster": {
            "prefill": {"instances": 1, "tp": 1},
            "decode": {
                "instances": 2,
                "tp": 1,
                "scheduler": {"kind": "fcfs", "max_num_seqs": 2},
                "router": {"kind": router},
            },
            "link": {"bandwidth_gbps": 1e6, "latency_s": 0.0},
            "kv_transfer": "serialized",
        },
        "scheduler": {"kind": "fcfs", "max_num_seqs": 256, "max_num_batched_tokens": 8192},
        "cost_model": {"kind": "linear", "per_prefill_token_s": 1e-3, "per_decode_seq_s": 0.01},
    }


def _run(tmp_path: Path, router: str) -> pd.DataFrame:
    path = write_csv(tmp_path / f"{router}.csv", TRACE)
    return sim.run(sim.load_scenario(_scenario(path, router))).requests.sort_values("request_id").reset_index(drop=True)


def test_least_kv_strands_a_request_that_round_robin_places_by_hand(tmp_path: Path) -> None:
    # A's 2,000-token prefill ends at 2.0 s; both decode workers are empty, so both routers send it to the first.
    # least_kv: B (prefilled at 3.01 s) and C (3.11 s) go to the second worker (its KV: none, then B's ~20 tokens,
    # against A's 2,000+); D (3.51 s) too (B + C ~110 tokens < A's ~2,150), where both slots are taken: D waits
    # until B finishes its 300 tokens (two sequences a step: ~3.01 + 299 x 0.02 s = ~9.0 s), ~5.4 s, with a free
    # slot next to A all along.
    # Round robin: A, B, C, D to workers 0, 1, 0, 1: every worker holds at most two; D joins B after one step.
    lkv, rr = _run(tmp_path, "least_kv"), _run(tmp_path, "round_robin")
    a, b, c, d = lkv["decode_instance"]
    assert a != b and b == c == d
    assert lkv["decode_wait_s"][3] == pytest.approx(lkv["completion_s"][1] - lkv["first_token_s"][3], abs=0.03)
    assert lkv["decode_wait_s"][3] == pytest.approx(5.4, abs=0.1)
    a, b, c, d = rr["decode_instance"]
    assert a == c and b == d and a != b
    assert rr["decode_wait_s"].max() <= 0.02 + 1e-9  # at most the step in flight (two sequences x 0.01 s)
    # D: prefilled at 3.51 s, one step's wait, 49 more tokens beside B at 0.02 s a step: 3.51 + 0.01 + 0.98 = 4.50 s
    assert rr["completion_s"][3] == pytest.approx(4.50, abs=1e-6)
    assert lkv["completion_s"][3] > lkv["completion_s"][1] > 8.8  # stranded: it starts only once B is done


@pytest.mark.parametrize("router", ["least_kv", "round_robin"])
def test_conservation(tmp_path: Path, router: str) -> None:
    # every request is prefilled once, decoded on exactly one decode worker to its full length, and no worker ever
    # runs more than its two slots
    rq = _run(tmp_path, router)
    assert len(rq) == len(TRACE) and rq["completion_s"].notna().all()
    assert rq["output_tokens"].tolist() == [o for _, _, o in TRACE]
    assert (rq["decode_instance"] >= 0).all() and (rq["completion_s"] > rq["first_token_s"]).all()
    for _, g in rq.groupby("decode_instance"):
        start = g["first_token_s"] + g["decode_wait_s"]
        for t in start:  # sequences on the worker at each admission
            assert ((start <= t + 1e-6) & (g["completion_s"] > t + 1e-6)).sum() <= 2  # freed at t: free


def test_trtllm_disagg_rows_route_decode_in_turn(silicon_rows: pd.DataFrame) -> None:
    r = silicon_rows.loc["dsr1_gb300_trtllm_fp4_disagg_1024x8192_c60_cfg421"]
    sc = cov.scenario(r, WL)
    assert sc["cluster"]["decode"]["router"] == {"kind": "round_robin"}
    assert sc["cluster"]["decode"]["scheduler"]["max_num_seqs"] == 4  # the recipe's slots (s13-dis), unchanged
    keep, cov.READ_DECODE_ROUTER = cov.READ_DECODE_ROUTER, False
    try:
        assert "router" not in cov.scenario(r, WL)["cluster"]["decode"]  # --no-decode-router: servesim's least_kv
    finally:
        cov.READ_DECODE_ROUTER = keep
    sglang = silicon_rows.loc["dsr1_gb200_sglang_fp4_disagg_1024x1024_c32_cfg486"]
    assert "router" not in cov.scenario(sglang, WL)["cluster"]["decode"]  # not read for SGLang
    agg = r.copy()
    agg["mode"] = "agg"
    assert cdr.decode_router(agg) is None


class _Draws:
    """A stand-in generator whose `integers` returns fixed phases (so the routing is computable by hand)."""

    def __init__(self, phases: list[int]) -> None:
        self.phases = phases

    def integers(self, high: int, size: int) -> list[int]:
        assert size == len(self.phases) and all(0 <= p < high for p in self.phases)
        return self.phases


def test_frontends_round_robin_by_hand() -> None:
    # two front ends with phases 2 and 0 over three instances; the balancer alternates front ends:
    # f0 -> 2, f1 -> 0, f0 -> 0 (2 + 1 wraps), f1 -> 1, f0 -> 1, f1 -> 2
    r = FrontendsRoundRobin(2, _Draws([2, 0]))  # type: ignore[arg-type]  # a stand-in for np.random.Generator
    got = [r.route(None, [None] * 3, 0.0) for _ in range(6)]  # type: ignore[arg-type, list-item]  # unread
    assert got == [2, 0, 0, 1, 1, 2]
    # one front end is round robin from its phase
    one = FrontendsRoundRobin(1, _Draws([1]))  # type: ignore[arg-type]  # as above
    again = [one.route(None, [None] * 3, 0.0) for _ in range(4)]  # type: ignore[arg-type, list-item]  # unread
    assert again == [1, 2, 0, 1]


def test_frontends_round_robin_strands_more_than_one_counter(tmp_path: Path) -> None:
    # four workers of one slot, four clients; with one counter the closed loop keeps one request per worker only
    # when requests end in the order they were routed; ten counters break that order more often. Conservation holds.
    rows = [(0.0, 10, 20 + (37 * i) % 41) for i in range(200)]  # outputs 20-60 tokens in a fixed scramble
    path = write_csv(tmp_path / "t.csv", rows)
    sc = _scenario(path, "round_robin")
    lengths = {"kind": "trace", "path": str(path), "format": "csv", "sample": "sequential"}
    sc["workload"] = {"arrival": {"kind": "closed_loop", "concurrency": 4}, "num_requests": 200, "lengths": lengths}
    sc["cluster"]["decode"] |= {"instances": 4, "scheduler": {"kind": "fcfs", "max_num_seqs": 1}}
    waits = {}
    for router in ({"kind": "round_robin"}, {"kind": "frontends_round_robin", "frontends": 10}):
        sc["cluster"]["decode"]["router"] = router
        rq = sim.run(sim.load_scenario(sc)).requests
        assert len(rq) == 200 and (rq["generated_tokens"] == rq["output_tokens"]).all()
        waits[router["kind"]] = float(rq["decode_wait_s"].mean())
    assert waits["frontends_round_robin"] > waits["round_robin"]


def test_multi_frontend_recipe_rows_get_their_frontends(silicon_rows: pd.DataFrame) -> None:
    # cfg374 ran GB200's ctx1_gen15_tep4_batch4 recipe, which leaves `enable_multiple_frontends` at its default:
    # 1 prefill + 15 decode nodes -> min(9 + 1, 16 - 1) = 10 frontends; cfg421's GB300 twin turns it off
    r = silicon_rows.loc["dsr1_gb200_trtllm_fp4_disagg_1024x8192_c60_cfg374"]
    assert cdr.decode_router(r) == {"kind": "frontends_round_robin", "frontends": 10}
    assert cdr.decode_router(silicon_rows.loc["dsr1_gb300_trtllm_fp4_disagg_1024x8192_c60_cfg421"]) == {
        "kind": "round_robin"
    }


def test_recipe_frontends_by_hand() -> None:
    res = {"prefill_nodes": 1, "decode_nodes": 15}
    assert tdr.frontends({"resources": res, "frontend": {"type": "dynamo"}}) == 10
    assert tdr.frontends({"resources": res, "frontend": {"enable_multiple_frontends": False}}) == 1
    assert tdr.frontends({"resources": {"prefill_nodes": 1, "decode_nodes": 3}}) == 3  # 4 nodes: nginx + 3
    assert tdr.frontends({"resources": res, "frontend": {"num_additional_frontends": 4}}) == 5
    assert tdr.frontends({"resources": {"prefill_nodes": 1, "decode_nodes": 0}}) == 1  # one node: no nginx
    assert tdr.frontends({"resources": res, "frontend": {"type": "sglang"}}) is None
