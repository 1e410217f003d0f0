"""The serving-engine model: hand-computed engine terms, the all-reduce regimes, presets and the front end."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.costmodel.comm import AllReduce, one_shot_s, ring_s, two_shot_s
from sim.costmodel.engine import ServingEngineConfig, fit_fields, preset
from sim.costmodel.models import RooflineCost, RooflineCostConfig
from tests.helpers import PAPER_GPU, PAPER_MODEL, scenario, write_csv

GPU, MODEL = PAPER_GPU, PAPER_MODEL
CFG = RooflineCostConfig()
# launch cost so large that an eager step of the paper model is launch-bound (10 layers x 1 ms = 10 ms); the CPU
# terms in series with the GPU (no async scheduling) and no GPU sampler, so only the terms under test move
EAGER = dict(
    scheduler_s=1e-3,
    sample_per_seq_s=1e-5,
    launch_per_layer_s=1e-3,
    cuda_graph_max_batch=8,
    async_scheduling=False,
    sampler_bytes_per_logit=0.0,
)


def test_decode_inside_graph_size_has_no_launch_term_outside_pays_the_launches():
    eng = preset("vllm-v0", **EAGER)
    cm, kernels_only = RooflineCost(CFG, MODEL, GPU, 1, engine=eng), RooflineCost(CFG, MODEL, GPU, 1)
    ctx = np.array([8000.0, 16000.0])
    # n = 8 is captured: kernels + scheduler + 8 sequences' sampling, nothing per layer
    inside = cm.decode_run(8, ctx)
    assert inside == pytest.approx(kernels_only.decode_run(8, ctx) + 1e-3 + 8 * 1e-5, rel=1e-12)
    # n = 9 runs eagerly; its kernels (~3.8 ms of weights) finish before 10 layers x 1 ms of launches
    kern9 = kernels_only.decode_run(9, ctx)
    assert (kern9 < 10e-3).all()
    assert cm.decode_run(9, ctx) == pytest.approx(np.full(2, 10e-3 + 1e-3 + 9 * 1e-5), rel=1e-12)
    # and fast-forward's affine shortcut is offered only where the step is affine in the context
    assert cm.decode_coeffs(8) is not None and cm.decode_coeffs(9) is None


def test_kernel_bound_eager_step_pays_no_launch_excess():
    eng = preset(
        "vllm-v0",
        scheduler_s=0.0,
        sample_per_seq_s=0.0,
        launch_per_layer_s=1e-5,
        cuda_graph_max_batch=0,
        sampler_bytes_per_logit=0.0,
    )
    cm, kernels_only = RooflineCost(CFG, MODEL, GPU, 1, engine=eng), RooflineCost(CFG, MODEL, GPU, 1)
    ctx = np.array([4000.0])
    assert cm.decode_run(4, ctx)[0] == pytest.approx(kernels_only.decode_run(4, ctx)[0], rel=1e-12)


def test_piecewise_graphs_cover_small_mixed_batches_only():
    pw = RooflineCost(CFG, MODEL, GPU, 1, engine=preset("vllm-v1", **EAGER, piecewise_graphs=True))
    assert pw.breakdown([(4, 0)], 2, 100)["launch"] == 0.0  # 6 tokens <= 8: piecewise graph
    big = pw.breakdown([(6, 0)], 3, 100)  # 9 tokens: eager, launch-bound
    kernels = sum(v for k, v in big.items() if k not in ("launch", "engine_cpu", "overhead"))
    assert big["launch"] == pytest.approx(10e-3 - kernels, rel=1e-12)
    assert big["engine_cpu"] == pytest.approx(1e-3 + 4 * 1e-5, rel=1e-12)  # 4 sequences sample
    v0 = RooflineCost(CFG, MODEL, GPU, 1, engine=preset("vllm-v0", **EAGER))
    assert v0.breakdown([(4, 0)], 2, 100)["launch"] > 0.0  # no piecewise graphs: mixed batches are eager


def test_allreduce_regimes_switch_by_size_world_and_link():
    bw = 1e11
    ar4 = AllReduce(4, bw, "custom", True, 8 * 2**20, 5e-6, 2.5e-5)
    assert ar4.regime(100 * 1024) == "one_shot"
    assert ar4.seconds(100 * 1024) == pytest.approx(5e-6 + 3 * 102400 / bw, rel=1e-12)
    assert ar4.regime(2**20) == "two_shot"
    assert ar4.seconds(2**20) == pytest.approx(2 * 5e-6 + 2 * 3 / 4 * 2**20 / bw, rel=1e-12)
    assert ar4.regime(16 * 2**20) == "nccl"
    assert ar4.seconds(16 * 2**20) == pytest.approx(2.5e-5 + 2 * 3 / 4 * 16 * 2**20 / bw, rel=1e-12)
    ar8 = AllReduce(8, bw, "custom", True)
    assert ar8.regime(300 * 1024) == "two_shot" and ar8.regime(200 * 1024) == "one_shot"
    assert AllReduce(2, bw, "custom", False).regime(4 * 2**20) == "one_shot"  # 2 GPUs: PCIe peers too
    assert AllReduce(4, bw, "custom", False).regime(1024) == "nccl"  # 4 PCIe GPUs: not fully connected
    assert AllReduce(4, bw, "nccl", True).regime(1024) == "nccl"
    assert AllReduce(3, bw, "custom", True).regime(1024) == "nccl"  # unsupported world size
    assert AllReduce(1, bw, "custom").seconds(1e6) == 0.0
    # the formulas themselves
    assert ring_s(1e6, 4, bw, 0.0) == pytest.approx(1.5e6 / bw)
    assert one_shot_s(1e6, 4, bw, 0.0) == pytest.approx(3e6 / bw)
    assert two_shot_s(1e6, 2, bw, 1e-6) == pytest.approx(2e-6 + 1e6 / bw)


def test_measured_nccl_curve_sets_the_time_and_the_ring_scales_beyond_it():
    sizes, secs = np.array([1e3, 1e6]), np.array([2e-5, 8e-5])
    ar = AllReduce(2, 1e11, "nccl", True, nccl_latency_s=1e-5, measured=(sizes, secs))
    assert ar.seconds(1e3) == pytest.approx(2e-5)
    assert ar.seconds(10**4.5) == pytest.approx(4e-5, rel=1e-9)  # log-log midpoint
    beyond = 4e6  # scaled by the formula's ratio at the edge
    assert ar.seconds(beyond) == pytest.approx(8e-5 * ring_s(beyond, 2, 1e11, 1e-5) / ring_s(1e6, 2, 1e11, 1e-5))


def test_tensor_parallel_step_uses_the_engines_allreduce():
    eng = preset("vllm-v1")
    cm = RooflineCost(CFG, MODEL, GPU, 4, engine=eng)
    msg = 16 * 4096 * 2  # 16 decode tokens' activations: 128 KiB -> custom one-shot on NVLink
    one = eng.custom_allreduce_latency_s + 3 * msg / (1e11 * CFG.link_efficiency)
    assert cm.breakdown([], 16, 16000)["allreduce"] == pytest.approx(2 * 10 * one, rel=1e-12)
    slow = RooflineCost(CFG, MODEL, GPU, 4, engine=preset("vllm-v1", allreduce_bw_scale=0.25))
    one = eng.custom_allreduce_latency_s + 3 * msg / (1e11 * CFG.link_efficiency * 0.25)
    assert slow.breakdown([], 16, 16000)["allreduce"] == pytest.approx(2 * 10 * one, rel=1e-12)


def test_presets_overrides_and_fit_contract():
    v0 = ServingEngineConfig.model_validate({"kind": "vllm-v0", "scheduler_s": 0.01})
    assert v0.scheduler_s == 0.01 and v0.cuda_graph_max_batch == 256 and not v0.piecewise_graphs
    assert preset().kind == "vllm-v1" and preset().cuda_graph_max_batch == 512
    # a dump loads back to the same terms (the preset fills only what is unset)
    assert ServingEngineConfig.model_validate(v0.model_dump()) == v0
    fit = fit_fields()
    assert {
        "scheduler_s",
        "launch_per_layer_s",
        "sample_per_seq_s",
        "custom_allreduce_latency_s",
        "nccl_latency_s",
        "frontend_s",
    } <= set(fit)
    for kind in ("vllm-v1", "vllm-v0", "sglang", "trtllm"):
        p = preset(kind)
        for name, (lo, hi) in fit.items():
            assert lo <= getattr(p, name) <= hi, (kind, name)


def test_unknown_engine_is_a_user_error(tmp_path):
    tr = write_csv(tmp_path / "w.csv", [(0.0, 8, 2)])
    sc = scenario(tr, cost={"kind": "roofline"}, serving_engine={"kind": "vllm-v9"})
    with pytest.raises(sim.ServesimError, match="vllm-v9"):
        sim.load_scenario(sc)


def test_frontend_time_enters_ttft_and_e2e_not_tpot(tmp_path):
    tr = write_csv(tmp_path / "w.csv", [(0.0, 40, 5), (0.01, 30, 4)])
    runs = []
    for fe in (0.0, 0.05):
        sc = scenario(tr, cost={"kind": "roofline"}, serving_engine={"kind": "vllm-v1", "frontend_s": fe})
        runs.append(sim.run(sc).requests)
    a, b = runs
    assert np.allclose(b["ttft_s"] - a["ttft_s"], 0.05, rtol=0, atol=1e-12)
    assert np.allclose(b["e2el_s"] - a["e2el_s"], 0.05, rtol=0, atol=1e-12)
    assert np.allclose(b["tpot_s"], a["tpot_s"], rtol=1e-9)
    assert (b["first_token_s"] == a["first_token_s"]).all()  # engine-side timestamps unchanged


def test_engine_choice_changes_a_scenarios_steps(tmp_path):
    tr = write_csv(tmp_path / "w.csv", [(0.0, 40, 20)])
    e2e = {}
    no_cpu = {"scheduler_s": 0.0, "sample_per_seq_s": 0.0}
    for name, kind, extra in (("v1", "vllm-v1", {}), ("v0", "vllm-v0", {}), ("v1-free", "vllm-v1", no_cpu)):
        sc = scenario(tr, cost={"kind": "roofline"}, serving_engine={"kind": kind, "frontend_s": 0.0, **extra})
        e2e[name] = float(sim.run(sc).requests["e2el_s"][0])
    # V0 pays 1.5 ms of scheduling + 20 us of sampling per step in series: 20 steps (1 prefill, 19 decodes)
    assert e2e["v0"] - e2e["v1-free"] == pytest.approx(20 * 1.52e-3, rel=0.05)
    # V1 schedules asynchronously: of its 0.305 ms per step only what outlasts the step's kernels shows
    assert 0.0 <= e2e["v1"] - e2e["v1-free"] <= 20 * 0.305e-3 + 1e-12


def test_kernel_efficiency_scales_divide_the_kernel_time_they_govern():
    """memory_efficiency_scale s divides a weight-streaming (decode) GEMM's time by s; compute_efficiency_scale
    divides a compute-bound (long prefill) GEMM's; attention_efficiency_scale only attention; and the engine's
    CPU terms stay as they are. With constant efficiencies every GEMM is max(FLOPs/F, bytes/B) by hand."""
    cfg = RooflineCostConfig(efficiency="constant")
    base = RooflineCost(cfg, MODEL, GPU, 1, engine=preset())
    mem = RooflineCost(cfg, MODEL, GPU, 1, engine=preset(memory_efficiency_scale=0.5))
    comp = RooflineCost(cfg, MODEL, GPU, 1, engine=preset(compute_efficiency_scale=1.25))
    attn = RooflineCost(cfg, MODEL, GPU, 1, engine=preset(attention_efficiency_scale=0.8))
    h, k, n = MODEL.hidden_size, MODEL.hidden_size, 2 * MODEL.intermediate_size
    one = (k * n + k + n) * 2 / (GPU.mem_bw * cfg.memory_efficiency)  # M = 1: the weights, streamed
    assert base.breakdown([], 1, 100)["mlp_up"] == pytest.approx(MODEL.num_layers * one, rel=1e-12)
    assert mem.breakdown([], 1, 100)["mlp_up"] == pytest.approx(2 * MODEL.num_layers * one, rel=1e-12)
    m = 4096  # compute-bound: 2·M·K·N FLOPs at 0.7 × peak
    big = 2.0 * m * h * n / (GPU.bf16_flops * cfg.compute_efficiency)
    assert base.breakdown([(m, 0)], 0, 0)["mlp_up"] == pytest.approx(MODEL.num_layers * big, rel=1e-12)
    assert comp.breakdown([(m, 0)], 0, 0)["mlp_up"] == pytest.approx(MODEL.num_layers * big / 1.25, rel=1e-12)
    b, a = base.breakdown([(m, 0)], 8, 8000), attn.breakdown([(m, 0)], 8, 8000)
    assert a["attn_prefill"] == pytest.approx(b["attn_prefill"] / 0.8, rel=1e-12)
    assert a["attn_decode"] == pytest.approx(b["attn_decode"] / 0.8, rel=1e-12)
    assert a["mlp_up"] == b["mlp_up"] and a["engine_cpu"] == b["engine_cpu"]


def test_fit_run_fits_only_the_default_terms_unless_named():
    from calibrate.fit_run import fittable_paths
    from sim.config.scenario import load_scenario

    sc = load_scenario("benchmarks/ground_truth/qwen3-32b-rtxpro6000.yaml")
    default = {p.rsplit(".", 1)[-1] for p, _, _ in fittable_paths(sc, defaults_only=True)}
    assert default == {
        "scheduler_s",
        "allreduce_bw_scale",
        "compute_efficiency_scale",
        "memory_efficiency_scale",
        "attention_efficiency_scale",
        "frontend_s",
    }
    every = {p.rsplit(".", 1)[-1] for p, _, _ in fittable_paths(sc)}
    assert {"launch_per_layer_s", "sample_per_seq_s", "nccl_latency_s"} <= every - default


def test_pcie_all_reduce_by_hand() -> None:
    # two PCIe Gen5 GPUs, link 64 GB/s x 0.8: the custom kernel's peer loads at 0.3 of the raw link (19.2 GB/s) would
    # exceed what an SM's peer loads reach through a root complex, so they run at 12 GB/s; NCCL at 0.6 of it
    # (38.4 GB/s) would exceed what untuned NCCL reaches through a root complex, so it runs at 22.2 GB/s
    bw, m = 64e9 * 0.8, 1.3e6
    ar = AllReduce(2, bw, "custom", False, 8 * 2**20, 5e-6, 3e-5, pcie=True)
    assert ar.seconds(m) == pytest.approx(5e-6 + m / 12e9)
    # behind PCIe switches the peer loads keep the link share (0.3 x 64 GB/s)
    sw = AllReduce(2, bw, "custom", False, 8 * 2**20, 5e-6, 3e-5, pcie=True, topology="switch")
    assert sw.seconds(m) == pytest.approx(5e-6 + m / (64e9 * 0.3))
    # Gen4 (32 GB/s): 0.3 x 32 = 9.6 GB/s, under the root-complex rate: unchanged
    gen4 = AllReduce(2, 32e9 * 0.8, "custom", False, 8 * 2**20, 5e-6, 3e-5, pcie=True)
    assert gen4.seconds(m) == pytest.approx(5e-6 + m / 9.6e9)
    big = 16 * 2**20  # above custom_max_bytes: NCCL ring
    assert ar.seconds(big) == pytest.approx(3e-5 + 2 * (2 - 1) / 2 * big / 22.2e9)
    nvl = AllReduce(2, bw, "custom", True, 8 * 2**20, 5e-6, 3e-5)
    assert nvl.seconds(m) == pytest.approx(5e-6 + m / bw)


def test_pcie_nccl_ceiling_binds_on_gen5_only_and_scales_with_the_engine() -> None:
    """Untuned NCCL on PCIe through a root complex: min(0.6 of the raw link, 22.2 GB/s). Gen4 (32 GB/s): 19.2 GB/s,
    below the ceiling; Gen5 (64 GB/s): 22.2 GB/s, not 38.4. `allreduce_bw_scale` 0.5 halves the link share and the
    ceiling."""
    big = 64 * 2**20
    gen4 = AllReduce(2, 32e9 * 0.8, "nccl", False, nccl_latency_s=0.0, pcie=True)
    gen5 = AllReduce(2, 64e9 * 0.8, "nccl", False, nccl_latency_s=0.0, pcie=True)
    assert gen4.bw == pytest.approx(19.2e9) and gen4.seconds(big) == pytest.approx(big / 19.2e9)
    assert gen5.bw == pytest.approx(22.2e9) and gen5.seconds(big) == pytest.approx(big / 22.2e9)
    half = AllReduce(2, 64e9 * 0.8 * 0.5, "nccl", False, nccl_latency_s=0.0, pcie=True, bw_scale=0.5)
    assert half.bw == pytest.approx(11.1e9)
    # the custom kernel's peer loads: min(0.3 x 64 x 0.5 = 9.6, 12 x 0.5 = 6) GB/s through the root complex
    assert half.p2p_bw == pytest.approx(6e9)
    # NVLink: no PCIe ceiling
    assert AllReduce(2, 450e9 * 0.8, "nccl", True).bw == pytest.approx(360e9)
    # through comm.build with the vLLM preset: Qwen3-32B TP2 on the RTX PRO 6000, a 2,048-token prefill message
    # (21 MB, above the 8 MiB custom limit) goes to NCCL at 22.2 GB/s: 32 us + 20.97 MB / 22.2 GB/s = 977 us
    from hwprofiles import catalog

    m, g = catalog.model("qwen3-32b"), catalog.gpu("rtx-pro-6000")
    cost = RooflineCost(RooflineCostConfig(), m, g, 2, engine=preset("vllm-v1"))
    msg = 2048 * 5120 * 2
    assert cost.ar.regime(msg) == "nccl"
    assert cost.ar.seconds(msg) == pytest.approx(preset("vllm-v1").nccl_latency_s + msg / 22.2e9)
    assert cost.ar.seconds(msg) == pytest.approx(32e-6 + 2048 * 5120 * 2 / 22.2e9) == pytest.approx(976.7e-6, rel=1e-4)


def test_pcie_gpus_share_the_link_without_an_engine() -> None:
    # a fitted profile (no serving engine) still prices PCIe all-reduce below the link rate
    from hwprofiles import catalog

    m, g = catalog.model("qwen3-32b"), catalog.gpu("rtx-pro-6000")
    cost = RooflineCost(RooflineCostConfig(), m, g, 2)
    # 64 GB/s x 0.8 x 0.75 = 38.4 GB/s exceeds untuned NCCL's root-complex PCIe ceiling: 22.2 GB/s
    assert cost.ar.pcie and cost.ar.bw == pytest.approx(min(g.intra_node_bw * 0.8 * 0.75, 22.2e9))
    assert cost.ar.bw == pytest.approx(22.2e9)


def test_kernel_scales_never_lift_a_rate_past_the_spec_peak() -> None:
    # fitted scales at their upper bound: decode attention still streams the KV cache no faster than the
    # memory bandwidth, and no effective FLOP/s or byte/s exceeds the GPU's peak
    from hwprofiles import catalog

    m, g = catalog.model("llama-3.1-8b"), catalog.gpu("rtx-pro-6000")
    top = {"compute_efficiency_scale": 1.5, "memory_efficiency_scale": 1.5, "attention_efficiency_scale": 1.5}
    cost = RooflineCost(RooflineCostConfig(), m, g, 1, engine=preset("vllm-v1", **top))
    assert cost.flops <= g.bf16_flops and cost.bw <= g.mem_bw
    assert cost.attn_flops <= g.bf16_flops and cost.attn_bw <= g.mem_bw
    kv_bytes_per_token = 2 * m.num_kv_heads * m.head_dim * m.dtype_bytes * m.num_layers
    assert cost._attn_coef >= kv_bytes_per_token / g.mem_bw * (1 - 1e-12)
    plain = RooflineCost(RooflineCostConfig(), m, g, 1, engine=preset("vllm-v1"))
    assert plain.attn_peak_bw == g.mem_bw  # scale 1: untouched


def test_async_scheduling_charges_only_the_cpu_that_outlasts_the_kernels():
    """vLLM V1's async scheduling: the step takes max(kernels, CPU), not their sum, by hand on both sides."""
    quiet = dict(sampler_bytes_per_logit=0.0, launch_per_layer_s=0.0)
    kernels_only = RooflineCost(CFG, MODEL, GPU, 1)
    ctx = np.array([1000.0, 64000.0])
    k = kernels_only.decode_run(8, ctx)
    short = RooflineCost(CFG, MODEL, GPU, 1, engine=preset("vllm-v1", scheduler_s=1e-5, sample_per_seq_s=0.0, **quiet))
    assert (k > 1e-5).all()
    assert short.decode_run(8, ctx) == pytest.approx(k, rel=1e-12)  # hidden entirely
    cpu = float(k[0] + k[1]) / 2  # between the two steps' kernel times: hidden at long context only
    mid = RooflineCost(CFG, MODEL, GPU, 1, engine=preset("vllm-v1", scheduler_s=cpu, sample_per_seq_s=0.0, **quiet))
    assert mid.decode_run(8, ctx) == pytest.approx([cpu, k[1]], rel=1e-12)
    assert mid.decode_coeffs(8) is None and short.decode_coeffs(8) is not None  # affine only when always hidden
    # the operator breakdown (decode-only and mixed) charges the same excess
    assert sum(mid.breakdown([], 8, 1000).values()) == pytest.approx(cpu, rel=1e-12)
    mixed = mid.breakdown([(16, 0)], 8, 64000)
    kernels = sum(v for key, v in mixed.items() if key not in ("engine_cpu", "launch", "overhead"))
    assert mixed["engine_cpu"] == pytest.approx(max(0.0, cpu - kernels), abs=1e-15)
    # V0 (no async scheduling) pays its CPU step in series
    v0 = RooflineCost(CFG, MODEL, GPU, 1, engine=preset("vllm-v0", scheduler_s=cpu, sample_per_seq_s=0.0, **quiet))
    assert v0.decode_run(8, ctx) == pytest.approx(k + cpu, rel=1e-12)


def test_logits_gather_and_sampler_by_hand():
    """After the LM head: every rank all-gathers the vocabulary-parallel logits (NCCL ring: latency + (n-1)/n of
    seqs × vocab × 2 bytes at NCCL's rate) and samples the full vocabulary greedily (cast to float32 and argmax:
    10 bytes per entry at the memory rate)."""
    vocab, a = MODEL.vocab_size, 2.0
    for tp in (1, 2):
        bare = RooflineCost(CFG, MODEL, GPU, tp)
        cm = RooflineCost(CFG, MODEL, GPU, tp, engine=preset("vllm-v1", allreduce="nccl"))
        sample = 32 * vocab * 10.0 / cm.bw
        gather = 0.0 if tp == 1 else 3.2e-5 + (tp - 1) / tp * 32 * vocab * a / cm.ar.bw
        assert cm._lm_head(32) - bare._lm_head(32) == pytest.approx(sample + gather, rel=1e-9)
        assert cm._lm_head(0) == 0.0
    # NVLink GPU: NCCL's rate is the link's (intra_node_bw × link_efficiency)
    assert RooflineCost(CFG, MODEL, GPU, 2, engine=preset()).ar.bw == pytest.approx(1e11 * CFG.link_efficiency)


def test_gpus_without_peer_access_take_nccl_for_every_all_reduce():
    """vLLM's `_can_p2p` gate: without PCIe peer access the custom all-reduce is off at start-up (any size, any
    world size); with it, 2 PCIe GPUs take the one-shot kernel below 8 MiB."""
    pcie = GPU.model_copy(update={"intra_node_link": "pcie"})
    no_p2p = GPU.model_copy(update={"intra_node_link": "pcie", "pcie_p2p": False})
    eng = preset("vllm-v1")
    assert RooflineCost(CFG, MODEL, pcie, 2, engine=eng).ar.regime(2**20) == "one_shot"
    off = RooflineCost(CFG, MODEL, no_p2p, 2, engine=eng).ar
    assert off.regime(2**20) == "nccl" and off.regime(1024) == "nccl"
    assert AllReduce(2, 1e11, "custom", False, pcie=True, p2p=False).regime(4096) == "nccl"
    assert AllReduce(2, 1e11, "custom", False, pcie=True).regime(4096) == "one_shot"
    # NCCL through host memory (SHM): the same rate, 13.6 us more on each of the ring's 2(n-1) hops
    shm = AllReduce(4, 1e11, "nccl", False, nccl_latency_s=3e-5, pcie=True, p2p=False)
    peer = AllReduce(4, 1e11, "nccl", False, nccl_latency_s=3e-5, pcie=True)
    assert shm.seconds(2**20) - peer.seconds(2**20) == pytest.approx(6 * 13.6e-6, rel=1e-9)


def test_logits_gather_without_peer_access_pays_n_minus_1_host_hops():
    """A ring all-gather makes n-1 steps, the all-reduce 2(n-1): over host memory (no P2P) each step pays the
    staging latency once. By hand at TP 4 on PCIe: gather 32 us + 3 × 13.6 us, all-reduce 32 us + 6 × 13.6 us."""
    no_p2p = GPU.model_copy(update={"intra_node_link": "pcie", "pcie_p2p": False})
    pcie = GPU.model_copy(update={"intra_node_link": "pcie"})
    eng = preset("vllm-v1", allreduce="nccl")
    shm, peer = RooflineCost(CFG, MODEL, no_p2p, 4, engine=eng), RooflineCost(CFG, MODEL, pcie, 4, engine=eng)
    assert shm._logits[0] == pytest.approx(3.2e-5 + 3 * 13.6e-6, rel=1e-12)
    assert peer._logits[0] == pytest.approx(3.2e-5, rel=1e-12)
    assert shm._logits[1] == pytest.approx(peer._logits[1], rel=1e-12)  # same rate: only the latency differs
    assert shm.ar.seconds(2**20) - peer.ar.seconds(2**20) == pytest.approx(6 * 13.6e-6, rel=1e-9)
    # without an engine (fits of measured iterations) the NCCL-only all-reduce knows the GPU has no peer access too
    bare = RooflineCost(CFG, MODEL, no_p2p, 4).ar
    assert not bare.p2p
    assert bare.seconds(2**20) - RooflineCost(CFG, MODEL, pcie, 4).ar.seconds(2**20) == pytest.approx(
        6 * 13.6e-6, rel=1e-9
    )


def test_structured_lm_head_adds_the_logits_gather_and_greedy_sampler():
    """`StructuredCost._lm_head` (MoE, quantised, layouts) prices the same gather and sampler after its LM head as
    the dense roofline, for the busiest attention-DP rank's sequences: by hand from `comm.logits_terms`."""
    from hwprofiles import catalog
    from sim.costmodel.build import build_physical
    from sim.costmodel.layout import Layout
    from sim.costmodel.structured import StructuredCost

    m, g = catalog.model("qwen3-30b-a3b"), catalog.gpu("h100")
    for tp, layout in ((1, None), (2, None), (2, Layout(tp=2, attention_dp=2, ep=2, moe_tp=1))):
        eng = preset("vllm-v1", allreduce="nccl")
        kw = {"layout": layout} if layout else {}
        cm = build_physical(RooflineCostConfig(), m, g, tp, engine=eng, **kw)
        assert isinstance(cm, StructuredCost)
        rank_seqs = 32 // (layout.attention_dp if layout else 1)
        gemm = cm.gemm("lm_head", rank_seqs, m.hidden_size, m.vocab_size / tp, unquantised=True)
        sample = rank_seqs * m.vocab_size * 10.0 / cm.bw
        gather = 0.0 if tp == 1 else 3.2e-5 + rank_seqs * (tp - 1) / tp * m.vocab_size * 2.0 / cm.ar.bw
        assert cm._lm_head(32) - gemm == pytest.approx(sample + gather, rel=1e-9)
        assert cm._lm_head(0) == 0.0


def test_rtx_4090_has_no_peer_access_so_vllm_runs_nccl_over_host_memory():
    """The catalogue's GeForce RTX 4090 (no P2P on the stock driver, cited there): TP2 under vLLM takes NCCL for
    a 1 MiB decode all-reduce, with the host-memory staging latency on each of the ring's 2 hops."""
    from hwprofiles import catalog

    g = catalog.gpu("rtx-4090")
    ar = RooflineCost(CFG, catalog.model("llama-3.1-8b"), g, 2, engine=preset("vllm-v1")).ar
    assert g.pcie_p2p is False and ar.regime(2**20) == "nccl"
    assert ar.ring_latency_s(2) == pytest.approx(3.2e-5 + 2 * 13.6e-6, rel=1e-12)
