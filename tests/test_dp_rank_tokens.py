"""Attention DP: a step's dense layers run on its busiest rank's tokens, chunks placed whole (branch s15-dprank)."""

from __future__ import annotations

from typing import Any

import pytest

from sim.costmodel.engine import preset
from sim.costmodel.layout import Layout
from sim.costmodel.memo import memoised
from sim.costmodel.structured import StructuredCost
from tests.test_costmodel_structured import EXACT, GPU, TOY_MOE

DP4 = Layout(tp=1, attention_dp=4, ep=4, moe_tp=1)


def _dp4(**kw: Any) -> StructuredCost:
    return StructuredCost(EXACT, TOY_MOE, GPU, 1, layout=DP4, **kw)


@pytest.mark.parametrize(
    ("prefill", "decodes", "busiest"),
    [
        ([(2048, 0)], 8, 2048 + 2),  # one chunk on one rank, 8 decodes 2 per rank
        ([(2048, 0)] * 4, 8, 2048 + 2),  # one chunk per rank
        ([(3000, 0), (1000, 0), (1000, 0)], 8, 3000 + 2),  # 3,000 alone; the 1,000s on two other ranks
        ([(3000, 0), (1000, 0), (1000, 0), (1000, 0), (1000, 0)], 0, 3000),  # 1,000s: ranks 2, 3, 4, then 2
        ([(100, 0)] * 8, 5, 200 + 2),  # two chunks a rank, ceil(5 / 4) decodes
        ([(2048, 0)], 0, 2048),
        ([(1, 0)], 100, 1 + 25),
    ],
)
def test_busiest_rank_tokens_by_hand(prefill: list[tuple[int, int]], decodes: int, busiest: int) -> None:
    assert _dp4()._busiest_tokens(prefill, decodes) == busiest
    one = StructuredCost(EXACT, TOY_MOE, GPU, 1)
    assert one._busiest_tokens(prefill, decodes) == sum(q for q, _ in prefill) + decodes  # dp = 1: every token


def test_dense_layers_priced_at_the_busiest_rank() -> None:
    cost = _dp4()
    ops = cost.breakdown([(2048, 0)], 8, 8 * 100)
    # the busiest rank's 2,050 tokens, not ceil(2,056 / 4) = 514
    assert ops["qkv_proj"] == cost._proj(2050)["qkv_proj"]
    assert ops["qkv_proj"] > cost._proj(514)["qkv_proj"]
    assert ops["mlp_up"] == cost._mlp(2050, 2056)["mlp_up"]  # shared experts: the rank's tokens
    assert ops["moe_experts"] == cost._mlp(2050, 2056)["moe_experts"]  # the router on the rank's tokens, and
    assert cost._mlp(2050, 2056)["pairs"] == cost._mlp(514, 2056)["pairs"]  # routed experts on every rank's tokens
    # evenly spread (one chunk per rank), the per-rank count is ceil(tokens / dp), as before
    even = cost.breakdown([(512, 0)] * 4, 0, 0)
    assert even["qkv_proj"] == cost._proj(512)["qkv_proj"] == cost._dense(2048)["qkv_proj"]


def test_moe_exchange_sends_the_busiest_ranks_tokens() -> None:
    cost = _dp4(engine=preset("trtllm"))
    ops = cost.breakdown([(2048, 0)], 0, 0)
    assert ops["moe_comm"] == cost._mlp(2048, 2048)["moe_comm"]
    assert ops["moe_comm"] > cost._mlp(512, 2048)["moe_comm"]


def test_same_tokens_split_differently_price_differently_and_memo_agrees() -> None:
    cost = _dp4()
    one_chunk, four = [(2048, 0)], [(512, 0)] * 4
    a, b = cost.iteration(one_chunk, 8, 800), cost.iteration(four, 8, 800)
    assert a > b  # same 2,056 tokens: the single chunk's rank runs 2,050 of them, each rank 514 when split
    # the cached dense rows are keyed by (tokens, busiest rank's tokens): pricing one split first must not
    # leave its row for the other
    assert cost.iteration(four, 8, 800) == b and cost.iteration(one_chunk, 8, 800) == a
    memo = memoised(cost)
    # `MemoCost` wraps only classes that keep `RooflineCost.breakdown`: StructuredCost (every attention-DP layout)
    # is priced unmemoised, so no memo key can miss the busiest rank; wrapping it would need that key (memo.py)
    assert memo is cost
    for prefill in (one_chunk, four, one_chunk):
        assert memo.iteration(prefill, 8, 800) == cost.iteration(prefill, 8, 800)
    fresh = _dp4()
    assert memoised(fresh).iteration(four, 8, 800) == b and fresh.iteration(one_chunk, 8, 800) == a
