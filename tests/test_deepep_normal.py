"""DeepEP's kernel mode per step (sim.costmodel.alltoall, `deepep_normal_s`, `prompt_comm`): a step that carries
prompt tokens runs the normal kernels (SGLang `DeepEPMode.resolve`: `auto` -> normal on extend batches; the
disaggregated recipes' prefill workers pin `normal`), a decode-only step the low-latency ones. Normal kernels send a
token once per destination rank (NVLink, <= 8 peers) or once per destination group of 8 (RDMA beyond), at the
README's normal-kernel bottleneck rates; all by hand below."""

from __future__ import annotations

from math import comb
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwprofiles import catalog
from sim.costmodel.alltoall import (
    COMBINE_LATENCY_S,
    DISPATCH_LATENCY_S,
    MoeComm,
    deepep_ll_s,
    deepep_normal_s,
    rank_hit,
)
from sim.costmodel.build import build_physical
from sim.costmodel.engine import preset
from sim.costmodel.layout import Layout
from sim.costmodel.models import RooflineCostConfig
from sim.costmodel.quant import Quantization

FIXED = DISPATCH_LATENCY_S + COMBINE_LATENCY_S
FP8 = Quantization(weights="fp8", activations="fp8")


def test_intranode_normal_kernels_by_hand() -> None:
    """EP 8 on H100 (450 GB/s NVLink): DeepSeek-V3 routing, 8 groups of 32 experts, top-8 inside the top-4 groups:
    a rank holds one group and is hit with probability 4 / 8, so each rank receives 8 x 0.5 = 4 copies of a source
    rank's token count; FP8 dispatch at 153 / 160 and BF16 combine at 158 / 160 of the GPU's NVLink."""
    gpu = catalog.gpu("h100-sxm")
    t = deepep_normal_s(512, 8, 256, 8, 7168, 1.0, gpu, 8, 4)
    rows = 512 * 4 * 7168
    want = FIXED + rows * 1.0 / (153e9 * 450e9 / 160e9) + rows * 2.0 / (158e9 * 450e9 / 160e9)
    assert gpu.intra_node_bw == 450e9
    assert t == pytest.approx(want, rel=1e-12)
    # uniform routing (no groups): 1 - C(224, 8) / C(256, 8) of the ranks
    hit = 1 - comb(224, 8) / comb(256, 8)
    rows_u = 512 * 8 * hit * 7168
    want_u = FIXED + rows_u / (153e9 * 450e9 / 160e9) + rows_u * 2.0 / (158e9 * 450e9 / 160e9)
    assert deepep_normal_s(512, 8, 256, 8, 7168, 1.0, gpu) == pytest.approx(want_u, rel=1e-12)
    assert deepep_normal_s(0, 8, 256, 8, 7168, 1.0, gpu) == 0.0 and deepep_normal_s(9, 8, 256, 1, 7168, 1.0, gpu) == 0.0


def test_internode_normal_kernels_by_hand() -> None:
    """EP 16 = two groups of 8 (`NUM_MAX_NVL_PEERS`), even inside a 72-GPU NVLink domain: one RDMA copy per
    destination group holding one of the token's experts (own group counted, as the README's tests count
    `num_rdma_token_sent`), at the README's EP-16 43 / 43 GB/s; EP 24 takes EP 32's 58 / 57 GB/s (next size up);
    a NIC half as fast as its CX7 doubles the bytes' share."""
    gb200 = catalog.gpu("gb200")
    assert gb200.nvlink_domain == 72
    hit2 = 1 - comb(4, 4) / comb(8, 4)  # 2 groups of 4 expert groups each, the token's experts in 4 of 8
    assert rank_hit(8, 256, 2, 8, 4) == pytest.approx(hit2, rel=1e-12)
    rows = 100 * 2 * hit2 * 7168
    slow = max(1.0, 50e9 / (gb200.inter_node_bw or gb200.host_link_bw))
    want = FIXED + (rows * 1.0 / 43e9 + rows * 2.0 / 43e9) * slow
    assert deepep_normal_s(100, 8, 256, 16, 7168, 1.0, gb200, 8, 4) == pytest.approx(want, rel=1e-12)
    rows3 = 100 * 3 * rank_hit(8, 256, 3) * 7168  # 24 ranks: 3 groups of 8, uniform routing
    want3 = FIXED + (rows3 / 58e9 + rows3 * 2.0 / 57e9) * slow
    assert deepep_normal_s(100, 8, 256, 24, 7168, 1.0, gb200) == pytest.approx(want3, rel=1e-12)
    h100 = catalog.gpu("h100-sxm").model_copy(update={"inter_node_bw": 50e9})
    half = h100.model_copy(update={"inter_node_bw": 25e9})
    full = deepep_normal_s(100, 8, 256, 16, 7168, 1.0, h100) - FIXED
    assert deepep_normal_s(100, 8, 256, 16, 7168, 1.0, half) - FIXED == pytest.approx(2 * full, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(tokens=st.integers(1, 8192), ep=st.sampled_from([2, 4, 8, 16, 32, 48, 64]), prompt=st.booleans())
def test_moe_comm_picks_the_kernel_mode_by_step(tokens: int, ep: int, prompt: bool) -> None:
    """`deepep`: a prompt-carrying step is the normal kernels' price, a decode step the low-latency one's;
    the other methods price both alike."""
    gb200 = catalog.gpu("gb200")
    c = MoeComm("deepep", gb200, ep, ep, 1, 7168, 1.0, 3.0, 0.8, 3e-5, 8, 256, 8, 4)
    normal = deepep_normal_s(tokens, 8, 256, ep, 7168, 1.0, gb200, 8, 4)
    ll = deepep_ll_s(tokens, 8, ep, 7168, 1.0, gb200, ep, 0.8)
    assert c.seconds(tokens, prompt=prompt) == (normal if prompt else ll)
    for method in ("one_sided", "allgather_reducescatter"):
        o = MoeComm(method, gb200, ep, ep, 1, 7168, 1.0, 3.0, 0.8, 3e-5, 8, 256, 8, 4)
        assert o.seconds(tokens, prompt=True) == o.seconds(tokens)


def _r1(engine_name: str, layout: Layout) -> Any:  # a StructuredCost (its operators read below)
    engine = preset(engine_name, moe_all2all="deepep") if engine_name == "sglang" else preset(engine_name)
    gpus = layout.tp * layout.attention_dp
    return build_physical(
        RooflineCostConfig(), catalog.model("deepseek-r1"), catalog.gpu("gb200"), gpus, engine=engine, layout=layout,
        quant=FP8,
    )  # fmt: skip


def test_sglang_prefill_steps_price_deepep_normal_and_decode_steps_low_latency() -> None:
    """DeepSeek-R1 on an 8-GPU GB200 prefill worker (dp 8, ep 8, `--moe-a2a-backend deepep`): a step of 8 x 1,024
    prompt tokens charges 58 MoE layers x the normal kernels at 1,024 tokens a rank; a decode-only step keeps the
    low-latency kernels; the prompt step's other operators are the same as without the mode split."""
    lay = Layout(tp=1, attention_dp=8, ep=8, moe_tp=1)
    cost = _r1("sglang", lay)
    gb200, model = catalog.gpu("gb200"), cost.model
    assert model.num_moe_layers == 58
    normal = deepep_normal_s(1024, 8, 256, 8, model.hidden_size, 1.0, gb200, model.n_group, model.topk_group)
    got = cost.breakdown([(1024, 0)] * 8, 0, 0)["moe_comm"]
    assert got == pytest.approx(58 * normal, rel=1e-12)
    ll = deepep_ll_s(1024, 8, 8, model.hidden_size, 1.0, gb200, 8, cost.cfg.link_efficiency)
    assert cost._dense(8192)["moe_comm"] == pytest.approx(58 * ll, rel=1e-12)  # what every step was charged before
    assert got < cost._dense(8192)["moe_comm"]  # normal kernels send a token once per rank, LL once per expert
    dec = cost.breakdown([], 64, 64 * 2000)["moe_comm"]
    assert dec == pytest.approx(58 * deepep_ll_s(8, 8, 8, model.hidden_size, 1.0, gb200, 8, 0.8), rel=1e-12)
    # vLLM's all-gather / reduce-scatter has no kernel mode: a prompt step is `_dense`'s exchange
    v = _r1("vllm-v1", lay)
    assert v.breakdown([(1024, 0)] * 8, 0, 0)["moe_comm"] == v._dense(8192)["moe_comm"]
