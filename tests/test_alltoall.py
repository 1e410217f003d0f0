"""Expert-parallel all-to-all by hand: the copies a token sends (once per rank owning one of its experts), the
fixed dispatch / combine latencies, the bytes on the link."""

from __future__ import annotations

from math import comb

import pytest

from hwprofiles import catalog
from sim.costmodel.alltoall import (
    COMBINE_LATENCY_S,
    DISPATCH_LATENCY_S,
    MoeAll2All,
    MoeComm,
    alltoall_s,
    deepep_rates,
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


def test_group_limited_routing_at_every_ep_size_nests_and_stays_below_uniform() -> None:
    # DeepSeek-V3: 256 experts in 8 groups of 32, top-8 experts inside the top-4 groups
    # ep 4: two whole groups per rank, missed only when neither is chosen: 1 - C(6, 4) / C(8, 4) = 1 - 15/70
    assert rank_hit(8, 256, 4, 8, 4) == pytest.approx(1 - 15 / 70, rel=1e-12)
    assert rank_hit(8, 256, 8, 8, 4) == pytest.approx(4 / 8, rel=1e-12)  # one group per rank
    # ep 16: each group split over 2 ranks of 16 experts; the group chosen (4/8), then one of its 8/4 = 2 experts
    # in this rank's half: 1 - C(16, 2) / C(32, 2) = 1 - 120/496
    assert rank_hit(8, 256, 16, 8, 4) == pytest.approx(0.5 * (1 - 120 / 496), rel=1e-12)
    # no jump across ep sizes: remote copies grow with ep and never exceed uniform routing's
    copies = [remote_copies(8, 256, ep, 8, 4) for ep in (2, 4, 8, 16, 32, 64)]
    assert copies == sorted(copies)
    for ep in (2, 4, 8, 16, 32, 64):
        assert rank_hit(8, 256, ep, 8, 4) <= rank_hit(8, 256, ep)
    # layouts that do not nest (3 ranks over 8 groups) fall back to uniform routing
    assert rank_hit(8, 255, 3, 8, 4) == rank_hit(8, 255, 3)


def test_deepep_at_its_measured_rate_and_one_sided_beyond_the_nvlink_domain() -> None:
    assert deepep_rates(8) == pytest.approx((98e9, 127e9))
    assert deepep_rates(12) == pytest.approx((63e9, 74e9))  # the next measured size up
    assert deepep_rates(4) == pytest.approx((98e9, 127e9))
    # the README's own load reproduces its latency: 128 tokens x 8 copies x 7168 fp8 bytes at 98 GB/s ~ 77 us
    assert pytest.approx(77e-6, rel=0.03) == 128 * 8 * 7168 / 98e9
    gpu = catalog.gpu("h100-sxm")  # NVLink domain of 8

    def comm(method: MoeAll2All, ep: int = 8) -> MoeComm:  # ep ranks of tp 1 each, 3.5 copies of 7168 fp8 values
        return MoeComm(method, gpu, ep, ep, 1, 7168, 1.0, 3.5, 0.8, 3e-5)

    sent = 16 * 3.5 * 7168
    d_bw = min(98e9, link_bandwidth(gpu, 8, 0.8))
    c_bw = min(127e9, link_bandwidth(gpu, 8, 0.8))
    expected = DISPATCH_LATENCY_S + sent / d_bw + COMBINE_LATENCY_S + 2 * sent / c_bw
    assert comm("deepep").seconds(16) == pytest.approx(expected, rel=1e-12)
    assert comm("one_sided").seconds(16) < comm("deepep").seconds(16)  # NVLink is faster than DeepEP's RDMA rate
    # ep 16 over two 8-GPU nodes: the one-sided NVLink kernel does not apply; priced as DeepEP over the NIC
    assert comm("one_sided", 16).seconds(16) == comm("deepep", 16).seconds(16)
    assert comm("one_sided").seconds(0) == 0.0
