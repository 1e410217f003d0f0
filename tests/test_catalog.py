"""Catalogue tests: the YAML must load, validate, and agree with published figures.

These guard the numbers every cost-model and KV-capacity result is built on, so a typo in a config
value (a wrong layer count, kv-head count or MLP width) shows up here rather than as a plausible but
wrong simulation.
"""

from __future__ import annotations

import pytest

import hwprofiles
from hwprofiles import GPUSpec, ModelSpec, gpu, gpu_names, model, model_names
from sim.errors import UnknownNameError

EXPECTED_GPUS = {
    "a100-40g",
    "a100-80g",
    "h100-sxm",
    "h200",
    "l40s",
    "a40",
    "b200",
    "b300",
    "gb200",
    "gb300",
    "l4",
    "rtx-4090",
    "rtx-pro-6000",
    "mi300x",
    "mi325x",
}

# Published parameter counts. Exact figures are the safetensors totals shown on each Hugging Face
# model page; round ones are the vendor's stated size where HF gives no exact total.
PUBLISHED_PARAMS: dict[str, float] = {
    "llama-2-7b": 6.738e9,  # 6,738,415,616 (HF)
    "llama-2-13b": 13.016e9,  # 13,015,864,320 (HF)
    "llama-2-70b": 68.977e9,  # 68,976,648,192 (HF)
    "llama-3-8b": 8.030e9,  # 8,030,261,248 (HF)
    "llama-3.1-8b": 8.030e9,  # 8,030,261,248 (HF)
    "llama-3.1-70b": 70.554e9,  # 70,553,706,496 (HF)
    "codellama-34b": 33.744e9,  # 33,743,970,304 (HF)
    "mistral-7b": 7.242e9,  # 7,241,732,096 (HF)
    "mixtral-8x7b": 46.703e9,  # 46,702,792,704 (HF; "46.7B total" in the Mixtral paper)
    "qwen2.5-7b": 7.61e9,  # model card: "Number of Parameters: 7.61B"
    "qwen2.5-72b": 72.7e9,  # model card: "Number of Parameters: 72.7B"
    "opt-13b": 13.0e9,  # OPT paper size; biases + learned positions are the uncounted remainder
    "opt-66b": 66.0e9,  # OPT paper size
    "bloom-176b": 176.247e9,  # 176,247,271,424 (BLOOM model card)
    "llama-3.1-405b": 405.853e9,  # 405,853,388,800 (HF)
    "llama-4-scout": 109e9,  # model card "109B total"; the vision tower (~1 %) is not counted here
    "llama-4-maverick": 400e9,  # model card "400B total"
    "qwen3-8b": 8.2e9,  # model card
    "qwen3-32b": 32.8e9,  # model card
    "qwen3-30b-a3b": 30.5e9,  # model card
    "qwen3-235b-a22b": 235e9,  # model card
    "qwen3.5-397b-a17b": 397e9,  # model card
    "deepseek-v3": 671e9,  # model card: 671B main model + 14B MTP module
    "deepseek-r1": 671e9,
    "gpt-oss-20b": 20.9e9,  # gpt-oss model card: 20.91B total
    "gpt-oss-120b": 116.8e9,  # gpt-oss model card: 116.83B total
    "kimi-k2": 1.0e12,  # model card "1T total"
    "kimi-k2.5": 1.0e12,  # model card "1T total" (text model)
    "glm-4.5": 355e9,  # model card "355B total"
    "glm-5": 744e9,  # model card "744B total"
    "minimax-m2.5": 230e9,  # model card "230B total"
}

# Published active parameters per token (model cards). Cards differ on whether embeddings count, so the
# tolerance is wider than for totals; a shared-expert or top-k mistake is far outside it.
PUBLISHED_ACTIVE: dict[str, float] = {
    "deepseek-v3": 37e9,
    "qwen3-235b-a22b": 22e9,
    "qwen3-30b-a3b": 3.3e9,
    "llama-4-scout": 17e9,
    "llama-4-maverick": 17e9,
    "kimi-k2": 32e9,
    "glm-4.5": 32e9,
    "glm-5": 40e9,
    "qwen3.5-397b-a17b": 17e9,
    "mixtral-8x7b": 12.9e9,
}


def test_expected_entries_present() -> None:
    assert set(gpu_names()) == EXPECTED_GPUS
    assert set(model_names()) == set(PUBLISHED_PARAMS)
    assert gpu_names() == sorted(gpu_names())
    assert model_names() == sorted(model_names())


@pytest.mark.parametrize("name", sorted(EXPECTED_GPUS))
def test_every_gpu_validates(name: str) -> None:
    spec = gpu(name)
    assert isinstance(spec, GPUSpec)
    assert spec.name == name
    assert spec.intra_node_link in {"nvlink", "pcie", "infinity_fabric"}
    assert spec.sources, "every GPU must cite where its numbers come from"
    # fp8 is only claimed where the tensor cores support it, and then at ~2x bf16 (both dense; the
    # L40S datasheet's 733 vs 2 x 362.05 is NVIDIA's own rounding, hence 2%). A sparse figure
    # slipping into either field would break this.
    if spec.fp8_flops is not None:
        assert spec.fp8_flops == pytest.approx(2 * spec.bf16_flops, rel=0.02)
    # FP4 only where there is FP8, and 2x (Blackwell) or 3x (Blackwell Ultra's boosted FP4) of it.
    if spec.fp4_flops is not None:
        assert spec.fp8_flops is not None
        assert spec.fp4_flops / spec.fp8_flops in (pytest.approx(2.0), pytest.approx(3.0))
    # Round-trips through pydantic (what an inline scenario spec would go through).
    assert GPUSpec.model_validate(spec.model_dump()) == spec


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_every_model_validates(name: str) -> None:
    spec = model(name)
    assert isinstance(spec, ModelSpec)
    assert spec.name == name
    assert spec.hf_id and spec.sources
    assert spec.num_heads % spec.num_kv_heads == 0
    assert spec.experts_per_token <= spec.num_experts
    dumped = spec.model_dump(exclude={"num_params"})
    assert ModelSpec.model_validate(dumped) == spec


@pytest.mark.parametrize(("name", "published"), sorted(PUBLISHED_PARAMS.items()))
def test_param_count_matches_published(name: str, published: float) -> None:
    assert model(name).num_params == pytest.approx(published, rel=0.03)


@pytest.mark.parametrize(("name", "published"), sorted(PUBLISHED_ACTIVE.items()))
def test_active_params_match_published(name: str, published: float) -> None:
    assert model(name).active_params == pytest.approx(published, rel=0.08)


def test_llama_2_70b_param_count_is_exact() -> None:
    # No biases, no tied head: the shape formula should reproduce HF's count to the parameter.
    assert model("llama-2-70b").num_params == 68_976_648_192


def test_kv_bytes_per_token() -> None:
    # 2 (K,V) * layers * kv_heads * head_dim * 2 bytes
    assert model("llama-3.1-8b").kv_bytes_per_token(tp=1) == 2 * 32 * 8 * 128 * 2 == 131_072
    assert model("llama-2-7b").kv_bytes_per_token(tp=1) == 2 * 32 * 32 * 128 * 2 == 524_288
    # GQA: 8 kv heads split over 4 GPUs -> 2 per GPU.
    assert model("llama-2-70b").kv_bytes_per_token(tp=4) == 2 * 80 * 2 * 128 * 2


def test_weight_bytes_llama_2_70b_tp4() -> None:
    assert model("llama-2-70b").weight_bytes(tp=4) == 68_976_648_192 * 2 / 4
    # ~34.5 GB per GPU: fits an 80 GB card with room for KV, not a 40 GB one with any headroom.
    assert 34e9 < model("llama-2-70b").weight_bytes(tp=4) < 35e9


def test_config_details_that_are_easy_to_get_wrong() -> None:
    assert model("mistral-7b").max_context == 32768
    assert model("llama-3.1-8b").max_context == 131072
    assert model("llama-2-7b").max_context == 4096
    mixtral = model("mixtral-8x7b")
    assert (mixtral.num_experts, mixtral.experts_per_token, mixtral.intermediate_size) == (8, 2, 14336)
    for name in ("opt-13b", "opt-66b", "bloom-176b"):
        assert not model(name).gated_mlp
        assert model(name).tied_embeddings
    assert not model("qwen2.5-7b").tied_embeddings
    assert model("bloom-176b").intermediate_size == 4 * model("bloom-176b").hidden_size
    # head_dim is hidden / heads for the classic models; the 2026 ones set it explicitly (Qwen3:
    # 128 with 64 x 128 != 5120; MLA: qk_nope + qk_rope), which the catalogue must copy, not derive.
    explicit = {
        "qwen3-32b": 128,
        "qwen3-30b-a3b": 128,
        "qwen3-235b-a22b": 128,
        "qwen3.5-397b-a17b": 256,
        "gpt-oss-120b": 64,
        "deepseek-v3": 192,
        "deepseek-r1": 192,
        "glm-4.5": 128,
        "kimi-k2.5": 192,
        "gpt-oss-20b": 64,
        "kimi-k2": 192,
        "glm-5": 256,
        "minimax-m2.5": 128,
    }
    for name in model_names():
        spec = model(name)
        assert spec.head_dim == explicit.get(name, spec.hidden_size // spec.num_heads), name


def test_memory_is_what_the_driver_reports() -> None:
    """nvidia-smi's memory.total in MiB (cited in gpus.yaml), not the vendor's decimal GB: engines size KV from it."""
    mib = 2**20
    assert gpu("h100-sxm").memory_bytes == 81559 * mib  # NVIDIA/nccl#1264
    assert gpu("a100-40g").memory_bytes == 40960 * mib  # modal-labs/modal-client#2797
    assert gpu("a100-80g").memory_bytes == 81920 * mib
    assert gpu("h200").memory_bytes == 143771 * mib
    assert gpu("b200").memory_bytes == 183359 * mib  # NVIDIA/TensorRT-LLM#10278
    assert gpu("mi300x").memory_bytes == 206141652992  # rocm-smi, ROCm/legacy-rocm-build#4750
    # the HBM is binary: every driver total above is 5-8 % over the vendor's decimal figure
    for name, vendor_gb in (("h100-sxm", 80), ("a100-40g", 40), ("h200", 141), ("b200", 180), ("mi300x", 192)):
        assert 1.0 < gpu(name).memory_bytes / (vendor_gb * 1e9) < 1.08, name
    assert gpu("l40s").intra_node_link == "pcie"
    assert gpu("a40").intra_node_link == "pcie"


def test_h100_vs_a100_ratios_match_papers() -> None:
    # PAPERS.md (Splitwise): H100 vs A100 ~3.2-3.4x compute, ~1.6x bandwidth.
    h100, a100 = gpu("h100-sxm"), gpu("a100-80g")
    assert 3.0 <= h100.bf16_flops / a100.bf16_flops <= 3.5
    assert 1.5 <= h100.mem_bw / a100.mem_bw <= 1.8
    assert h100.price_per_hour > a100.price_per_hour
    assert h100.tdp_w > a100.tdp_w


def test_names_are_case_insensitive() -> None:
    assert gpu("H100-SXM") is gpu("h100-sxm")
    assert model("Llama-3.1-8B") is model("llama-3.1-8b")
    assert gpu("  A40 ") is gpu("a40")


def test_aliases() -> None:
    assert gpu("h100") is gpu("h100-sxm")
    assert gpu("H100") is gpu("h100-sxm")
    assert gpu("a100") is gpu("a100-80g")
    assert "h100" not in gpu_names()


def test_unknown_gpu_lists_known_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        gpu("tpu-v5")
    err = info.value
    assert err.what == "hardware" and err.name == "tpu-v5"
    assert set(err.known) == EXPECTED_GPUS
    assert "h100-sxm" in str(err) and "tpu-v5" in str(err)
    assert isinstance(err, KeyError)


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        model("gpt-5")
    err = info.value
    assert err.what == "model"
    assert set(err.known) == set(PUBLISHED_PARAMS)
    assert "llama-3.1-8b" in str(err)


def test_package_reexports() -> None:
    for attr in ("GPUSpec", "ModelSpec", "gpu", "model", "gpu_names", "model_names"):
        assert attr in hwprofiles.__all__
        assert hasattr(hwprofiles, attr)
