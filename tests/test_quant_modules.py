"""Per-module precision (`quantization.attention` / `quantization.experts`): weight bytes, GEMM pricing per
module, validation lines, and the defaults leaving every deployment as before. Hand-computed on the toy MoE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hwprofiles import catalog
from sim.config.scenario import load_scenario
from sim.costmodel.layout import Layout, deployed
from sim.costmodel.quant import Quantization, support_error
from sim.costmodel.structured import StructuredCost
from sim.errors import ServesimError
from tests.test_costmodel_structured import EXACT, GPU, TOY_MOE

# TOY_MOE's parameters: embeddings + LM head 2 x 100 x 64 = 12800; attention 64 x 64 (q) + 64 x 4 x 32 (k, v)
# + 64 x 64 (o) = 16384; routed experts 8 x 3 x 64 x 32 = 49152; the rest (shared expert 6144, router 512,
# norms 192) 6848.
EMB, ATTN, EXPERTS, REST = 12800, 16384, 49152, 6848


def test_toy_parameter_split_is_what_the_hand_counts_use() -> None:
    assert TOY_MOE.embedding_params == EMB and TOY_MOE.expert_params == EXPERTS
    assert sum(TOY_MOE.attention_params(k) for k in TOY_MOE.layer_kinds()) == ATTN
    assert TOY_MOE.non_expert_params == EMB + ATTN + REST


def test_weight_bytes_fp4_experts_bf16_attention_by_hand() -> None:
    gpt_oss_like = Quantization(experts={"weights": "fp4"})  # bf16 everywhere but MXFP4 (4.5-bit) experts
    assert Layout(tp=1).weight_bytes_per_gpu(TOY_MOE, gpt_oss_like) == pytest.approx(
        EMB * 2 + ATTN * 2 + REST * 2 + EXPERTS * 4.5 / 8, rel=1e-12
    )
    # NVFP4 everywhere but FP8 attention (ModelOpt's DeepSeek recipe), on tp 2 x ep 2 (moe_tp 1)
    ds_like = Quantization(weights="fp4", activations="fp4", attention={"weights": "fp8", "activations": "fp8"})
    lay = Layout(tp=2, ep=2, moe_tp=1)
    assert lay.weight_bytes_per_gpu(TOY_MOE, ds_like) == pytest.approx(
        ATTN * 1 / 2 + (EMB * 2 + REST * 4.5 / 8) / 2 + EXPERTS * 4.5 / 8 / 2, rel=1e-12
    )
    # the deployed model answers KV-capacity code with the same bytes
    assert deployed(TOY_MOE, Layout(tp=1), gpt_oss_like).weight_bytes(1) == pytest.approx(
        EMB * 2 + ATTN * 2 + REST * 2 + EXPERTS * 4.5 / 8, rel=1e-12
    )


def test_overrides_equal_to_the_top_level_change_nothing() -> None:
    fp8 = Quantization(weights="fp8", activations="fp8")
    same = Quantization(weights="fp8", activations="fp8", experts={"weights": "fp8"}, attention={})
    assert not same.is_mixed and same.module("experts") == fp8 and same.module("attention") == fp8
    assert Quantization(attention={}).is_default
    assert Layout(tp=1).weight_bytes_per_gpu(TOY_MOE, same) == Layout(tp=1).weight_bytes_per_gpu(TOY_MOE, fp8)
    assert Quantization().model_dump() == {"weights": "bf16", "activations": "bf16", "kv_cache": "bf16"}


def test_each_module_gemm_at_its_own_peak_and_width() -> None:
    q = Quantization(weights="fp8", activations="fp8", attention={"weights": "bf16", "activations": "bf16"})
    cost = StructuredCost(EXACT, TOY_MOE, GPU, 1, quant=q)
    k = n = 4096
    # compute-bound at 10000 tokens: attention on the bf16 peak (1e12), experts and the rest on FP8's (2e12)
    assert cost.gemm("x", 10000, k, n, module="attention") == pytest.approx(2 * 10000 * k * n / 1e12, rel=1e-12)
    assert cost.gemm("x", 10000, k, n, module="experts") == pytest.approx(2 * 10000 * k * n / 2e12, rel=1e-12)
    assert cost.gemm("x", 10000, k, n) == pytest.approx(2 * 10000 * k * n / 2e12, rel=1e-12)
    # memory-bound at one token: 2-byte attention weights and activations, 1-byte expert ones
    assert cost.gemm("x", 1, k, n, module="attention") == pytest.approx((k * n + k + n) * 2 / 1e9, rel=1e-12)
    assert cost.gemm("x", 1, k, n, module="experts") == pytest.approx((k * n + k + n) * 1 / 1e9, rel=1e-12)


@pytest.mark.parametrize("tokens", [1, 4, 64])
def test_mixed_step_takes_each_module_from_its_flat_precision(tokens: int) -> None:
    """Attention projections of W4A16-experts-in-bf16 equal all-bf16's; routed experts equal all-W4A16's."""
    bf16 = StructuredCost(EXACT, TOY_MOE, GPU, 1)
    w4 = StructuredCost(EXACT, TOY_MOE, GPU, 1, quant=Quantization(weights="int4"))
    mixed = StructuredCost(EXACT, TOY_MOE, GPU, 1, quant=Quantization(experts={"weights": "int4"}))
    assert mixed._proj(tokens) == bf16._proj(tokens)
    m_mix, m_w4, m_bf = mixed._mlp(tokens, tokens), w4._mlp(tokens, tokens), bf16._mlp(tokens, tokens)
    assert m_mix["moe_experts"] == pytest.approx(m_w4["moe_experts"], rel=1e-12)
    assert m_mix["moe_experts"] < m_bf["moe_experts"]  # the experts' weights are read at 4.5 bits
    assert m_mix["mlp_up"] == m_bf["mlp_up"] and m_mix["mlp_down"] == m_bf["mlp_down"]  # shared expert: top level


def test_support_errors_are_one_line_naming_the_module() -> None:
    h100, b200 = catalog.gpu("h100-sxm"), catalog.gpu("b200")
    nvfp4_experts = Quantization(weights="fp8", activations="fp8", experts={"weights": "fp4", "activations": "fp4"})
    msg = support_error(nvfp4_experts, h100, catalog.model("gpt-oss-120b"))
    assert msg is not None and msg.startswith("quantization.experts.activations: fp4 needs FP4 tensor cores")
    assert support_error(nvfp4_experts, b200, catalog.model("gpt-oss-120b")) is None
    dense = support_error(Quantization(experts={"weights": "fp4"}), h100, catalog.model("llama-3.1-8b"))
    assert dense is not None and dense.startswith("quantization.experts: llama-3.1-8b is dense")
    bad = support_error(Quantization(attention={"activations": "fp8"}), h100, catalog.model("llama-3.1-8b"))
    assert bad is not None and bad.startswith("quantization.attention: activations fp8 with bf16 weights")
    assert support_error(Quantization(attention={"weights": "fp8", "activations": "fp8"}), h100, None) is None


WORKLOAD = (
    "workload: {num_requests: 2, arrival: {kind: poisson, rate: 1}, lengths: {kind: fixed, prompt: 9, output: 2}}"
)


@pytest.mark.parametrize(
    ("lines", "where"),
    [
        (
            ["model: gpt-oss-120b", "hardware: h100-sxm", "quantization: {experts: {weights: fp4, activations: fp4}}"],
            ":3:53: quantization.experts.activations: fp4 needs FP4 tensor cores",
        ),
        (
            ["model: llama-3.1-8b", "hardware: h100-sxm", "quantization: {experts: {weights: fp4}}"],
            ": quantization.experts: llama-3.1-8b is dense",
        ),
    ],
)
def test_scenario_error_points_at_the_module(tmp_path: Path, lines: list[str], where: str) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("\n".join([*lines, WORKLOAD]) + "\n")
    with pytest.raises(ServesimError) as e:
        load_scenario(f)
    msg = str(e.value)
    assert where in msg and "\n" not in msg, msg


def test_scenario_with_fp4_experts_holds_fewer_weight_bytes(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    base = ["model: gpt-oss-120b", "hardware: h200", "cluster: {tp: 2}", WORKLOAD]
    f.write_text("\n".join(base) + "\n")
    plain = load_scenario(f).model_spec.weight_bytes(2)
    f.write_text("\n".join([*base, "quantization: {experts: {weights: fp4}}"]) + "\n")
    mixed = load_scenario(f).model_spec.weight_bytes(2)
    oss = catalog.model("gpt-oss-120b")
    assert plain - mixed == pytest.approx(oss.expert_params * (2 - 4.5 / 8) / 2, rel=1e-9)


# config.json `quantization_config` facts of published checkpoints (trimmed to the keys read)
GPT_OSS_QUANT = {  # openai/gpt-oss-120b
    "quant_method": "mxfp4",
    "modules_to_not_convert": [
        "model.layers.*.self_attn",
        "model.layers.*.mlp.router",
        "model.embed_tokens",
        "lm_head",
    ],
}
GPT_OSS_SMALL = {
    "model_type": "gpt_oss",
    "num_hidden_layers": 2,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "intermediate_size": 256,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 4096,
}


def test_quantization_config_read_from_checkpoints() -> None:
    from hwprofiles.hfconfig import quantization_from_config

    assert quantization_from_config({"quantization_config": GPT_OSS_QUANT}) == {"experts": {"weights": "fp4"}}
    ds_fp8 = {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
    assert quantization_from_config({"quantization_config": ds_fp8}) == {"weights": "fp8", "activations": "fp8"}
    nvfp4 = {"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8"}
    assert quantization_from_config({"quantization_config": {**nvfp4, "exclude_modules": ["lm_head"]}}) == {
        "weights": "fp4",
        "activations": "fp4",
        "kv_cache": "fp8",
    }
    ds_nvfp4 = {**nvfp4, "exclude_modules": ["lm_head", "model.layers.*.self_attn*"]}
    ds = quantization_from_config({"quantization_config": ds_nvfp4})
    assert ds is not None and ds["attention"] == {"weights": "bf16", "activations": "bf16"}
    assert quantization_from_config({"quantization_config": {"quant_method": "gptq", "bits": 4}}) is None
    assert quantization_from_config({}) is None


def test_config_json_path_brings_its_checkpoint_precision(tmp_path: Path) -> None:
    import json

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**GPT_OSS_SMALL, "quantization_config": GPT_OSS_QUANT}))
    f = tmp_path / "s.yaml"
    f.write_text(f"model: {cfg}\nhardware: h100-sxm\n{WORKLOAD}\n")
    sc = load_scenario(f)
    assert sc.quantization.module("experts").weights == "fp4" and sc.quantization.weights == "bf16"
    # written by hand, the scenario's own quantization wins
    f.write_text(f"model: {cfg}\nhardware: h100-sxm\nquantization: {{weights: fp8, activations: fp8}}\n{WORKLOAD}\n")
    assert not load_scenario(f).quantization.is_mixed
    # a ModelOpt export's hf_quant_config.json beside a config.json without quantization_config
    cfg.write_text(json.dumps(GPT_OSS_SMALL))
    side = {"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8", "exclude_modules": ["lm_head"]}}
    (tmp_path / "hf_quant_config.json").write_text(json.dumps(side))
    f.write_text(f"model: {cfg}\nhardware: h100-sxm\n{WORKLOAD}\n")
    q = load_scenario(f).quantization
    assert (q.weights, q.activations, q.kv_cache) == ("fp8", "fp8", "fp8")
    # on a GPU without FP8 tensor cores the checkpoint runs weight-only (W8A16, as vLLM's Marlin kernels serve it),
    # never an error about a precision the user did not write
    f.write_text(f"model: {cfg}\nhardware: a100-80g\n{WORKLOAD}\n")
    q = load_scenario(f).quantization
    assert (q.weights, q.activations, q.kv_cache) == ("fp8", "bf16", "fp8")


def test_checkpoint_precision_weight_only_where_the_gpu_lacks_the_cores() -> None:
    from hwprofiles.hfconfig import quantization_from_config, weight_only_on

    ds = {"quant_method": "modelopt", "quant_algo": "NVFP4", "exclude_modules": "model.layers.*.self_attn*"}
    q = quantization_from_config({"quantization_config": ds})  # a single pattern, not a list, still names attention
    assert q == {"weights": "fp4", "activations": "fp4", "attention": {"weights": "bf16", "activations": "bf16"}}
    assert weight_only_on(q, catalog.gpu("h100-sxm"))["activations"] == "bf16"  # W4A16 on Hopper
    assert weight_only_on(q, catalog.gpu("b200"))["activations"] == "fp4"  # NVFP4 cores: as declared
    experts = {"weights": "fp4", "activations": "fp4"}
    mixed: dict[str, Any] = {"weights": "fp8", "activations": "fp8", "experts": experts}
    on_h100 = weight_only_on(mixed, catalog.gpu("h100-sxm"))
    assert on_h100 == {"weights": "fp8", "activations": "fp8", "experts": {"weights": "fp4", "activations": "bf16"}}
    assert experts["activations"] == "fp4"  # the input is not changed
