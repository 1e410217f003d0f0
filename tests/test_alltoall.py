"""Expert-parallel all-to-all by hand: the copies a token sends (once per rank owning one of its experts), the
fixed dispatch / combine latencies, the bytes on the link."""

from __future__ import annotations

from math import comb

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprofiles import catalog
from sim.costmodel.alltoall import (
    COMBINE_LATENCY_S,
    DISPATCH_LATENCY_S,
    MoeAll2All,
    MoeComm,
    alltoall_s,
    deepep_ll_s,
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
    gpu = catalog.gpu("h100-sxm")  # NVLink domain of 8, ConnectX-7 50 GB/s

    def comm(method: MoeAll2All, ep: int = 8) -> MoeComm:  # ep ranks of tp 1 each, 3.5 copies of 7168 fp8 values
        return MoeComm(method, gpu, ep, ep, 1, 7168, 1.0, 3.5, 0.8, 3e-5, 8)

    # ep 8 inside the node: DeepEP's low-latency kernels store over NVLink, 8 x 7/8 = 7 messages a token
    nvl = gpu.intra_node_bw * 0.8
    expected = DISPATCH_LATENCY_S + COMBINE_LATENCY_S + 16 * 7 * 7168 * (1.0 + 2.0) / nvl
    assert comm("deepep").seconds(16) == pytest.approx(expected, rel=1e-12)
    # ep 16 over two 8-GPU nodes (CX7, the README's NIC): a line from blog 18's fixed parts to the README's ep-16
    # latencies (118 / 195 us) at its load of 128 x 8 x 7168 values; here 16 tokens a rank, all 8 messages a token
    share = 16 * 8 * 7168 / (128 * 8 * 7168)
    rdma = 18e-6 + (118e-6 - 18e-6) * share + 31e-6 + (195e-6 - 31e-6) * share
    assert comm("deepep", 16).seconds(16) == pytest.approx(rdma, rel=1e-12)
    # the one-sided NVLink kernel does not apply beyond the domain, so TensorRT-LLM's is priced the same
    assert comm("one_sided", 16).seconds(16) == comm("deepep", 16).seconds(16)
    assert comm("one_sided").seconds(0) == 0.0 and comm("deepep").seconds(0) == 0.0


def test_deepep_over_rdma_line_and_its_bandwidth_cross_check() -> None:
    """The README's low-latency rows (H800 + CX7, 128 tokens a rank, hidden 7168, top-8, FP8 dispatch / BF16
    combine): ep 8 77 / 114 us, ep 16 118 / 195 us, ep 256 194 / 360 us. The line of `deepep_ll_s` is built
    through those latencies (`DEEPEP_LL_US`), so getting them back at the README's load only checks the
    arithmetic of the line (which EP row is taken, the zero-byte intercept); what checks a fact is the
    cross-check below it: the README's separately published bandwidths carry the same load in the same times,
    within the FP8 scales' 3 % (the README's bytes carry hidden / 128 fp32 scales and a 16-byte header)."""
    gpu = catalog.gpu("h100-sxm").model_copy(update={"nvlink_domain": 1})  # CX7, the README's NIC
    for ep, d_us, c_us in ((8, 77, 114), (16, 118, 195), (12, 118, 195), (256, 194, 360)):  # 12: the next size up
        combine = deepep_ll_s(128, 8, ep, 7168, 0.0, gpu, ep, 0.8) - DISPATCH_LATENCY_S  # a zero-byte dispatch
        assert combine == pytest.approx(c_us * 1e-6, rel=1e-12)
        assert deepep_ll_s(128, 8, ep, 7168, 1.0, gpu, ep, 0.8) - combine == pytest.approx(d_us * 1e-6, rel=1e-12)
        # the README's bandwidths are the same load at its latencies (the FP8 scales are the 3 % between them)
        d_bw, c_bw = deepep_rates(ep)
        assert 128 * 8 * 7168 / d_bw == pytest.approx(d_us * 1e-6, rel=0.04)
        assert 128 * 8 * 7168 * 2 / c_bw == pytest.approx(c_us * 1e-6, rel=0.04)
    # a NIC half as fast (200 Gb/s) doubles the bytes' share, not the fixed parts
    slow = gpu.model_copy(update={"inter_node_bw": 25e9})
    fixed = DISPATCH_LATENCY_S + COMBINE_LATENCY_S
    bytes_part = deepep_ll_s(64, 8, 16, 7168, 1.0, gpu, 16, 0.8) - fixed
    assert deepep_ll_s(64, 8, 16, 7168, 1.0, slow, 16, 0.8) - fixed == pytest.approx(2 * bytes_part, rel=1e-12)
    # a faster one (ConnectX-8) is not assumed to beat the README's measurement
    fast = gpu.model_copy(update={"inter_node_bw": 100e9})
    assert deepep_ll_s(64, 8, 16, 7168, 1.0, fast, 16, 0.8) == deepep_ll_s(64, 8, 16, 7168, 1.0, gpu, 16, 0.8)
    # one token: 1/128 of the README's bytes share on top of blog 18's fixed parts
    one = DISPATCH_LATENCY_S + COMBINE_LATENCY_S + (77e-6 - 18e-6 + 114e-6 - 31e-6) / 128
    assert deepep_ll_s(1, 8, 8, 7168, 1.0, gpu, 8, 1.0) == pytest.approx(one, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    gpu_name=st.sampled_from(
        [n for n in catalog.gpu_names() if catalog.gpu(n).intra_node_bw > 2 * catalog.gpu(n).host_link_bw]
    ),
    log_ep=st.integers(1, 6),
    tokens=st.floats(1.0, 4096.0),
    topk=st.integers(1, 16),
    act_bytes=st.sampled_from([0.5, 1.0, 2.0]),
    efficiency=st.floats(0.6, 1.0),
)
def test_an_ep_group_inside_one_nvlink_domain_is_never_slower_than_over_rdma(
    gpu_name: str, log_ep: int, tokens: float, topk: int, act_bytes: float, efficiency: float
) -> None:
    """The same exchange priced inside the domain (NVLink) and as if the group spanned domains (RDMA on the README's
    line, slowed for a slower NIC): NVLink is never the slower, on every catalogue GPU with NVLink (DeepEP's
    intranode buffers require it) at link efficiencies from 0.6 (servesim's default is 0.8)."""
    ep = 2**log_ep
    gpu = catalog.gpu(gpu_name).model_copy(update={"nvlink_domain": max(ep, 2)})
    inside = deepep_ll_s(tokens, topk, ep, 4096, act_bytes, gpu, ep, efficiency)
    spans = gpu.model_copy(update={"nvlink_domain": 1})
    assert inside <= deepep_ll_s(tokens, topk, ep, 4096, act_bytes, spans, ep, efficiency) * (1 + 1e-12)


def test_deepep_on_nvlink_against_pr173s_measurement() -> None:
    """An independent check of the in-domain formula: DeepEP PR #173 ("LL nvlink p2p") measured the low-latency
    kernels over NVLink P2P on 8 H20s (450 GB/s NVLink a direction, as H100's) at the README's load, 128 tokens,
    hidden 7168, top-8, FP8 dispatch / BF16 combine: dispatch 37 + combine 59 = 96 us. On H100 at servesim's link
    efficiency 0.8: 49 us fixed + 128 x 8 x 7/8 x 7168 x 3 B / 360 GB/s = 102.5 us, 7 % above the measurement
    (the README's RDMA line would give 77 + 114 = 191 us)."""
    gpu = catalog.gpu("h100-sxm")
    t = deepep_ll_s(128, 8, 8, 7168, 1.0, gpu, 8, 0.8)
    assert t == pytest.approx(102.52e-6, rel=1e-3)
    assert t == pytest.approx(96e-6, rel=0.10)


def test_gb200_nvl72_decode_pool_prices_deepep_on_nvlink() -> None:
    """An SGLang GB200 decode worker of 48 GPUs (tp 48 = dp 48, ep 48, the gb200-fp8 mid-curve recipe) sits inside
    the 72-GPU NVLink domain: its DeepEP exchange is priced at NVLink, not at the README's RDMA rate."""
    gb200 = catalog.gpu("gb200")
    assert gb200.nvlink_domain == 72
    c = MoeComm("deepep", gb200, 48, 48, 1, 7168, 1.0, 6.0, 0.8, 3e-5, 8)
    m = 64  # tokens on the busiest DP rank
    nvl = DISPATCH_LATENCY_S + COMBINE_LATENCY_S + m * 8 * 47 / 48 * 7168 * 3.0 / (gb200.intra_node_bw * 0.8)
    assert c.seconds(m) == pytest.approx(nvl, rel=1e-12)
    # what the README's RDMA line would charge the same load at ep 64 (173 / 314 us at 128 tokens of 8 messages)
    share = m * 8 / (128 * 8)
    rdma = 18e-6 + (173e-6 - 18e-6) * share + 31e-6 + (314e-6 - 31e-6) * share
    assert c.seconds(m) == pytest.approx(nvl, rel=1e-12) and nvl < rdma / 2
