"""Expert-parallel all-to-all by hand: the copies a token sends (once per rank owning one of its experts), the
fixed dispatch / combine latencies, the bytes on the link."""

from __future__ import annotations

from math import comb

import pytest

from hwprofiles import catalog
from sim.costmodel.alltoall import (
    COMBINE_LATENCY_S,
    DISPATCH_LATENCY_S,
    alltoall_s,
    link_bandwidth,
    rank_hit,
    remote_copies,
)


def test_rank_hit_uniform_routing_by_hand() -> None:
    # 8 experts, 2 per rank, top-2: a rank is missed when both experts come from the other 6: C(6,2)/C(8,2) = 15/28
    assert rank_hit(2, 8, 4) == pytest.approx(13 / 28, rel=1e-12)
    # DeepSeek-V3 shape, uniform routing: 1 - C(224, 8) / C(256, 8)
    assert rank_hit(8, 256, 8) == pytest.approx(1 - comb(224, 8) / comb(256, 8), rel=1e-12)
    assert 0.66 < rank_hit(8, 256, 8) < 0.67


def test_a_token_travels_at_most_once_per_rank() -> None:
    # top-8 over 8 ranks: 7 x 0.662 = 4.6 remote copies, not the 8 x 7/8 = 7 of one copy per expert
    assert remote_copies(8, 256, 8) == pytest.approx(7 * (1 - comb(224, 8) / comb(256, 8)), rel=1e-12)
    assert remote_copies(8, 256, 8) < 8 * 7 / 8
    # group-limited routing with one group per rank: the token's experts lie in 4 of the 8 groups -> 7 x 4/8
    assert remote_copies(8, 256, 8, 8, 4) == pytest.approx(3.5, rel=1e-12)
    # every rank owns one of the token's experts when the other ranks cannot hold all k
    assert rank_hit(5, 8, 2) == 1.0  # top-5 of 8 experts, 4 per rank: both ranks always
    assert remote_copies(8, 256, 1) == 0.0


def test_latency_floor_then_bytes_on_the_link() -> None:
    gpu = catalog.gpu("b200")
    bw = link_bandwidth(gpu, 8, 0.8)
    assert bw == pytest.approx(gpu.intra_node_bw * 0.8)
    # 32 tokens per rank, 3.5 copies of 7168 bf16 values: the fixed latency dominates, as blog 18 measured it
    t = alltoall_s(32, 3.5, 7168, 2.0, 8, gpu, 0.8, DISPATCH_LATENCY_S)
    assert t == pytest.approx(18e-6 + 32 * 3.5 * 7168 * 2.0 / bw, rel=1e-12)
    assert t < 1.2 * DISPATCH_LATENCY_S
    assert alltoall_s(32, 3.5, 7168, 2.0, 8, gpu, 0.8, COMBINE_LATENCY_S) - t == pytest.approx(13e-6, rel=1e-9)
    assert alltoall_s(0, 3.5, 7168, 2.0, 8, gpu, 0.8, DISPATCH_LATENCY_S) == 0.0
