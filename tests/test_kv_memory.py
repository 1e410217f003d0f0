"""vLLM's KV-cache budget by hand: requested share − weights − profiled activation − graphs − non-torch."""

from __future__ import annotations

import pytest

from hwprofiles import catalog
from sim.costmodel.kv_memory import activation_bytes, vllm_kv_budget
from tests.helpers import PAPER_GPU, PAPER_MODEL

GPU, MODEL = PAPER_GPU, PAPER_MODEL


def test_budget_terms_by_hand():
    b = vllm_kv_budget(MODEL, GPU, 1, 0.9, max_num_batched_tokens=2048, max_num_seqs=256, cuda_graph_max_batch=512)
    assert b.requested == pytest.approx(72e9)
    assert b.weights == pytest.approx(MODEL.num_params * 2)
    # 2048 tokens x (2 x 4096 residual/hidden + 3 x 8192 gate/up + act) x 2 bytes = 134,217,728 bytes
    # + fp32 logits of 256 sequences x 32,000 vocab, twice = 65,536,000 bytes
    assert b.activation == pytest.approx(134_217_728 + 65_536_000)
    assert b.cuda_graphs == pytest.approx(512 * 32768 * 2)  # the pool of the largest captured batch
    assert b.non_torch == pytest.approx(0.5e9)
    assert b.kv == pytest.approx(72e9 - MODEL.num_params * 2 - 134_217_728 - 65_536_000 - 33_554_432 - 0.5e9)
    assert b.reserve == pytest.approx(b.activation + b.cuda_graphs + b.non_torch)


def test_tensor_parallel_shards_weights_and_mlp_activations():
    one = vllm_kv_budget(MODEL, GPU, 1, 0.9, 2048, 256, 0)
    two = vllm_kv_budget(MODEL, GPU, 2, 0.9, 2048, 256, 0)
    assert two.weights == pytest.approx(one.weights / 2)
    assert activation_bytes(MODEL, 2, 2048) == pytest.approx(2048 * (8192 + 3 * 4096) * 2)
    assert one.cuda_graphs == 0.0


def test_budget_grows_with_smaller_token_budget_and_is_realistic_for_8b_on_h100():
    m, g = catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm")
    big = vllm_kv_budget(m, g, 1, 0.9, 8192, 1024, 512)
    small = vllm_kv_budget(m, g, 1, 0.9, 2048, 256, 512)
    assert small.kv > big.kv
    # vLLM reports a few GB of non-KV memory beyond weights for an 8B model on an 80 GB GPU: 1-4 GB
    assert 1e9 < big.reserve < 4e9


def test_scenarios_size_kv_by_the_formula_with_the_vllm_scheduler():
    import sim
    from sim.core.engine import capacity
    from sim.costmodel.kv_memory import DEFAULT_RESERVE_GB

    base = {
        "model": "llama-3.1-8b",
        "hardware": "h100-sxm",
        "workload": {
            "num_requests": 1,
            "arrival": {"kind": "poisson", "rate": 1},
            "lengths": {"kind": "fixed", "prompt": 8, "output": 2},
        },
    }
    m, g = catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm")
    per_block = m.kv_bytes_per_token(1) * 16
    # vllm on an H100: vllm serve's 8192 tokens / 1024 sequences; V1 graphs up to min(2 x 1024, 512) = 512
    b = vllm_kv_budget(m, g, 1, 0.9, 8192, 1024, 512)
    cap = capacity(sim.load_scenario({**base, "scheduler": {"kind": "vllm"}}))
    assert cap.num_blocks == int(b.kv // per_block)
    fixed = capacity(sim.load_scenario({**base, "scheduler": {"kind": "vllm"}, "kv_cache": {"reserve_gb": 3.0}}))
    assert fixed.num_blocks == int((0.9 * 81559 * 2**20 - m.weight_bytes(1) - 3e9) // per_block)
    other = capacity(sim.load_scenario({**base, "scheduler": {"kind": "sarathi"}}))
    assert other.num_blocks == int((0.9 * 81559 * 2**20 - m.weight_bytes(1) - DEFAULT_RESERVE_GB * 1e9) // per_block)
