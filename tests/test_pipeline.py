"""Pipeline parallelism (`cluster.pp`): hand-computed rounds, bubbles against theory, memory per GPU by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sim
from hwprofiles import GPUSpec, ModelSpec
from sim.core.kvcache import kv_capacity
from sim.costmodel.engine import preset
from sim.costmodel.models import LinearCost, LinearCostConfig
from sim.costmodel.pipeline import (
    PipelineCost,
    activation_hop,
    pipeline_schedule,
    round_time,
    stage_layers,
)
from sim.errors import ServesimError
from tests.helpers import TINY_MODEL, scenario, tiny_gpu, write_csv

# stage s costs base + 0.001·prefill tokens + per_seq·decoding sequences (numbers chosen for paper)
B, P, D = 0.010, 0.001, 0.002
HOP = activation_hop(hidden=4096, dtype_bytes=2, bandwidth=1e9, latency_s=1e-4)  # 8.192 us per token + 100 us


def _pipe(pp: int = 2) -> PipelineCost:
    stage = LinearCost(LinearCostConfig(base_s=B, per_prefill_token_s=P, per_decode_seq_s=D))
    return PipelineCost([stage] * pp, HOP, lambda s, seqs: 0.0)


def test_stage_layers_uneven():
    assert stage_layers(80, 3) == [27, 27, 26]
    assert stage_layers(61, 4) == [16, 15, 15, 15]
    assert sum(stage_layers(126, 16)) == 126


def test_one_sequence_sees_the_sum_of_stages_and_the_hop():
    pipe = _pipe(2)
    one = B + D  # one decoding sequence on one stage
    x = 1e-4 + 4096 * 1 * 2 / 1e9
    assert pipe.iteration([], 1, 100) == pytest.approx(2 * one + x, rel=1e-12)
    assert pipe.decode_run(1, np.array([100.0]))[0] == pytest.approx(2 * one + x, rel=1e-12)
    # a prefill of 512 tokens: one micro-batch, its activations (512 tokens) cross once
    pre = B + 512 * P
    assert pipe.iteration([(512, 0)], 0, 0) == pytest.approx(2 * pre + 1e-4 + 4096 * 512 * 2 / 1e9, rel=1e-12)


def test_two_sequences_overlap_in_the_pipeline():
    """pp = 2, two decoders: two micro-batches of one; while one is on stage 1 the other is on stage 0."""
    pipe = _pipe(2)
    one, x = B + D, 1e-4 + 4096 * 2 / 1e9
    # busiest stage: both micro-batches pass it (2·one); one micro-batch's chain: 2·one + x -> the chain
    assert pipe.iteration([], 2, 200) == pytest.approx(2 * one + x, rel=1e-12)
    # without pipelining the two would take 2 × (2·one + x) one after the other; batched together, one pass
    # of 2 sequences costs 2·(B + 2D) + x: the overlap wins
    assert pipe.iteration([], 2, 200) < 2 * (B + 2 * D) + x
    # three decoders: micro-batches of 2 and 1; busiest stage 2B + 3D, chain of the larger 2(B + 2D) + x
    x2 = 1e-4 + 4096 * 2 * 2 / 1e9
    assert pipe.iteration([], 3, 300) == pytest.approx(max(2 * B + 3 * D, 2 * (B + 2 * D) + x2), rel=1e-12)
    # four decoders on pp = 4: full pipeline, a round = max(4 stage passes, one chain of 4 + 3 hops)
    pipe4 = _pipe(4)
    assert pipe4.iteration([], 4, 400) == pytest.approx(4 * (B + D) + 3 * x, rel=1e-12)
    # eight decoders on pp = 2: two micro-batches of 4; stage-bound: 2 × (B + 4D) vs chain 2(B + 4D) + x'
    x4 = 1e-4 + 4096 * 4 * 2 / 1e9
    assert pipe.iteration([], 8, 800) == pytest.approx(2 * (B + 4 * D) + x4, rel=1e-12)


@pytest.mark.parametrize(("pp", "m"), [(2, 1), (2, 2), (4, 1), (4, 4), (4, 8), (8, 3)])
def test_gpipe_fill_bubble_matches_theory(pp, m):
    """One round from an empty pipeline with equal stages and free links: makespan (m + pp − 1)·t and a
    bubble fraction (pp − 1)/(m + pp − 1)."""
    t = 0.003
    ends = pipeline_schedule([[t] * pp for _ in range(m)], [0.0] * m, rounds=1)
    makespan = ends[0][-1]
    assert makespan == pytest.approx((m + pp - 1) * t, rel=1e-12)
    busy = m * pp * t
    assert 1 - busy / (pp * makespan) == pytest.approx((pp - 1) / (m + pp - 1), rel=1e-12)


@given(
    pp=st.integers(1, 6),
    m=st.integers(1, 8),
    t=st.floats(1e-4, 1e-1),
    x=st.floats(0.0, 5e-2),
)
def test_steady_round_is_the_exact_cycle_time(pp, m, t, x):
    """The round the simulator charges equals the period of the exact cyclic schedule (balanced batches):
    full pipeline m·t, else the chain pp·t + (pp−1)·x; steady-state bubble 1 − m·t/T."""
    rounds = 3 * (m + pp) + 4
    ends = pipeline_schedule([[t] * pp for _ in range(m)], [x] * m, rounds)
    period = ends[-1][0] - ends[-2][0]
    assert round_time([[t] * pp for _ in range(m)], [x] * m) == pytest.approx(period, rel=1e-9, abs=1e-12)
    assert period == pytest.approx(max(m * t, pp * t + (pp - 1) * x), rel=1e-9)


def test_kv_memory_per_gpu_by_hand():
    """Tiny model (2 layers): pp = 2 puts one layer and half the weights on each GPU."""
    m = ModelSpec(**TINY_MODEL)
    w = m.weight_bytes(1)
    gpu = GPUSpec(**{**tiny_gpu(10), "memory_bytes": w + 100 * 8192})  # weights + 100 blocks at pp = 1
    one = kv_capacity(m, gpu, 1, 16, 1.0, 0.0)
    assert one.num_blocks == 100 and one.bytes_per_block == 8192  # 16 tokens × 2 layers × 2 × 4 × 16 × 2 B
    two = kv_capacity(m, gpu, 1, 16, 1.0, 0.0, pp=2)
    assert two.weight_bytes_per_gpu == w / 2
    assert two.bytes_per_block == 4096  # one layer's K and V per GPU
    assert two.num_blocks == int((w / 2 + 100 * 8192) // 4096)
    # 3 layers over 2 stages: the 2-layer stage sets the per-token bytes
    m3 = ModelSpec(**{**TINY_MODEL, "num_layers": 3})
    assert kv_capacity(m3, gpu, 1, 16, 1.0, 0.0, pp=2).bytes_per_block == pytest.approx(8192)


ROOF = {
    "kind": "roofline",
    "efficiency": "constant",
    "compute_efficiency": 0.5,
    "memory_efficiency": 0.5,
    "iteration_overhead_s": 0.003,
}


def _run(tmp_path, rows, cost=ROOF, fast_forward=True, **cluster):
    tr = write_csv(tmp_path / "t.csv", rows)
    sc = scenario(tr, cost=cost, fast_forward=fast_forward)
    sc["model"] = {**TINY_MODEL, "num_layers": 4}
    sc["hardware"] = {**tiny_gpu(10), "memory_bytes": 1e9}
    sc["cluster"].update(cluster)
    # the engine's CPU step in series with the GPU (no async scheduling, no GPU sampler), so the stage arithmetic
    # below holds by hand; async scheduling hides it behind each stage's kernels (tests/test_serving_engine.py)
    sc["serving_engine"] = {"kind": "vllm-v1", "async_scheduling": False, "sampler_bytes_per_logit": 0.0}
    return sim.run(sc).requests


def test_simulated_pp2_single_request_is_the_unpipelined_step_plus_a_hop(tmp_path):
    """Constant-efficiency roofline is additive over layers, so the two stages of one request (LM head on
    the last, overhead on the first) sum to the pp = 1 step; pp = 2 adds one activation hop per token."""
    flat = _run(tmp_path, [(0.0, 64, 20)])
    piped = _run(tmp_path, [(0.0, 64, 20)], pp=2, pp_link={"bandwidth_gbps": 8.0, "latency_s": 1e-3})
    hop1 = 1e-3 + 64 * 1 * 2 / 1e9  # hidden 64 × 1 token × 2 bytes over 1 GB/s
    hop64 = 1e-3 + 64 * 64 * 2 / 1e9
    assert piped["tpot_s"][0] == pytest.approx(flat["tpot_s"][0] + hop1, rel=1e-9)
    assert piped["first_token_s"][0] == pytest.approx(flat["first_token_s"][0] + hop64, rel=1e-9)


def test_simulated_pp2_two_requests_share_the_round(tmp_path):
    """Two requests decoding together on pp = 2 each take one micro-batch: the round is one chain (both
    stages plus a hop), not two — they overlap in the pipeline; on pp = 1 the batch of two is one step."""
    link = {"bandwidth_gbps": 8.0, "latency_s": 1e-3}
    cheap = {**ROOF, "iteration_overhead_s": 0.0}  # stages of equal cost: the chain sets the round
    alone = _run(tmp_path, [(0.0, 64, 20)], cheap, pp=2, pp_link=link)
    both = _run(tmp_path, [(0.0, 64, 20), (0.0, 64, 20)], cheap, pp=2, pp_link=link)
    assert both["tpot_s"][0] == pytest.approx(both["tpot_s"][1], rel=1e-12)
    assert both["tpot_s"][0] < 1.2 * alone["tpot_s"][0]
    # overhead-bound first stage (3 ms per micro-batch): the round is that stage run twice, not the chain
    loaded = _run(tmp_path, [(0.0, 64, 20), (0.0, 64, 20)], pp=2, pp_link=link)
    single = _run(tmp_path, [(0.0, 64, 20)], pp=2, pp_link=link)
    assert loaded["tpot_s"][0] > 1.4 * single["tpot_s"][0]
    hop1 = 1e-3 + 64 * 2 / 1e9
    e = preset(async_scheduling=False)  # the engine's CPU time per step rides on the first stage, like the overhead
    cpu = e.scheduler_s + e.sample_per_seq_s
    assert loaded["tpot_s"][0] == pytest.approx(2 * (0.003 + cpu) + (alone["tpot_s"][0] - hop1 - cpu), rel=1e-2)
    ff = _run(tmp_path, [(0.0, 64, 20), (0.0, 64, 20)], pp=2, pp_link=link, fast_forward=False)
    assert loaded["completion_s"].tolist() == ff["completion_s"].tolist()


def test_gpus_and_errors(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 64, 4)])
    sc = scenario(tr, cost=ROOF)
    sc["hardware"] = {**tiny_gpu(10), "memory_bytes": 1e9}
    sc["cluster"].update(tp=1, pp=2)
    res = sim.run(sc)
    assert res.summary["cost"]["gpus"] == 2
    with pytest.raises(ServesimError, match=r"cluster\.pp: 3 stages for a model of 2 layers"):
        sim.run({**sc, "cluster": {"pp": 3}})
    with pytest.raises(ServesimError, match="linear cost model"):
        sim.run({**sc, "cost_model": {"kind": "linear"}})


def test_disaggregated_pools_take_their_own_pp(tmp_path):
    """pp per pool: the decode pool's instances span tp × pp GPUs and hold the KV of their stage's layers."""
    tr = write_csv(tmp_path / "t.csv", [(0.01 * i, 64, 16) for i in range(8)])
    sc = scenario(tr, cost=ROOF)
    sc["model"] = {**TINY_MODEL, "num_layers": 4}
    sc["hardware"] = {**tiny_gpu(10), "memory_bytes": 1e9}
    sc["cluster"] = {"prefill": {"instances": 1}, "decode": {"instances": 1, "tp": 2, "pp": 2}}
    res = sim.run(sc)
    assert (res.requests["generated_tokens"] == 16).all()
    pools = res.summary["cluster"]["pools"]
    assert pools["decode"]["pp"] == 2 and "pp" not in pools["prefill"]
    assert res.summary["cost"]["gpus"] == 1 + 4
    # half the layers per GPU on 2-way tp: a block is a quarter of the prefill instance's
    assert pools["decode"]["kv_blocks_per_instance"] > 3 * pools["prefill"]["kv_blocks_per_instance"]


def _roof_pipe(pp: int, **engine: float) -> PipelineCost:
    """Llama-3.1-8B on H100, pp stages of the roofline, vLLM V1 (async scheduling) with these CPU terms."""
    from hwprofiles import catalog
    from sim.costmodel.build import build_physical
    from sim.costmodel.models import RooflineCostConfig
    from sim.costmodel.pipeline import build_pipeline

    m, g = catalog.model("llama-3.1-8b"), catalog.gpu("h100")
    eng = preset("vllm-v1", **engine)

    def stage(layers: int):
        return build_physical(RooflineCostConfig(), m.model_copy(update={"num_layers": layers}), g, 1, engine=eng)

    return build_pipeline(stage, m.num_layers, pp, activation_hop(m.hidden_size, 2, 50e9, 1e-5))


def test_async_cpu_step_is_one_engine_core_serving_every_micro_batch():
    """Async scheduling under pp: the stages price the GPUs only, and one engine core spends cpu(n_j) on each
    micro-batch per round, overlapped with them: T = max(GPU round, Σ_j cpu(n_j)). By hand with a 50 ms CPU step
    (far beyond these kernels): one sequence, 50 ms (not once per stage); 4 sequences in 2 micro-batches of 2,
    2 × (50 ms + 2 × 10 µs); a mixed step of a prefill and 3 decodes, also 2 micro-batches."""
    gpu = _roof_pipe(2, scheduler_s=0.0, sample_per_seq_s=0.0)
    slow = _roof_pipe(2, scheduler_s=0.05, sample_per_seq_s=1e-5)
    ctx = np.array([4000.0, 40000.0])
    assert (gpu.decode_run(4, ctx) < 0.05).all()
    assert slow.decode_run(1, ctx / 4) == pytest.approx([0.05 + 1e-5] * 2, rel=1e-12)
    assert slow.decode_run(4, ctx) == pytest.approx([2 * (0.05 + 2e-5)] * 2, rel=1e-12)
    assert slow.iteration([(512, 0)], 3, 3000) == pytest.approx(2 * (0.05 + 2e-5), rel=1e-12)
    # a CPU step well inside the GPU round costs nothing: the GPU-only pipeline's times exactly
    quick = _roof_pipe(2, scheduler_s=1e-6, sample_per_seq_s=0.0)
    assert np.array_equal(quick.decode_run(4, ctx), gpu.decode_run(4, ctx))
    assert quick.iteration([(512, 0)], 3, 3000) == gpu.iteration([(512, 0)], 3, 3000)
    # without async scheduling the CPU step rides on the first stage of every micro-batch, in series
    serial = _roof_pipe(2, scheduler_s=0.05, sample_per_seq_s=1e-5, async_scheduling=False)
    assert (serial.decode_run(4, ctx) > 2 * (0.05 + 2e-5)).all()
