"""GPU and model specifications: the numbers the cost model and the KV cache are built from.

Both are pydantic models so a scenario can name a catalogue entry or give an inline spec with the same
validation. Units are SI (bytes, bytes/s, FLOP/s, seconds, watts, US dollars).

ModelSpec covers the 2026 zoo with defaulted fields, so a plain dense entry (Llama-2) needs none of them:
MoE (routed + shared experts, leading dense layers, every-k-th-layer MoE), MLA (DeepSeek's compressed KV
latent), per-layer attention kinds (`attention_pattern`: full, local sliding/chunked window, linear
recurrent), and DSA-style sparse attention (`attention_topk`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

Precision = Literal["bf16", "fp8", "fp4", "int4"]
# Stored bits per weight including block scales: FP8 block-128x128 scales are < 0.1 %; NVFP4 carries
# an fp8 scale per 16 weights (4 + 8/16); MXFP4 an e8m0 per 32 (4.25); int4 weight-only a bf16 scale per
# group of 32 (Kimi-K2 QAT: 4 + 16/32). FP4 and int4 are both taken at 4.5.
WEIGHT_BITS: dict[str, float] = {"bf16": 16.0, "fp16": 16.0, "fp8": 8.0, "fp4": 4.5, "int4": 4.5}
KV_BITS: dict[str, float] = {"bf16": 16.0, "fp16": 16.0, "fp8": 8.0}


class GPUSpec(BaseModel):
    """One GPU: peak rates and prices. Peaks are dense (no sparsity) vendor figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    vendor: str = Field(default="nvidia", description="nvidia | amd")
    memory_bytes: float = Field(gt=0, description="HBM/GDDR bytes as the driver reports them (nvidia-smi MiB x 2^20)")
    bf16_flops: float = Field(gt=0, description="dense bf16 tensor-core peak, FLOP/s")
    fp8_flops: float | None = Field(default=None, gt=0, description="dense fp8 peak, FLOP/s; None if unsupported")
    fp4_flops: float | None = Field(default=None, gt=0, description="dense fp4 peak, FLOP/s; None if unsupported")
    mem_bw: float = Field(gt=0, description="memory bandwidth, bytes/s")
    intra_node_bw: float = Field(gt=0, description="GPU-GPU bandwidth per direction (NVLink or PCIe), bytes/s")
    intra_node_link: str = Field(default="nvlink", description="nvlink | pcie | infinity_fabric")
    pcie_p2p: bool = Field(
        default=True, description="PCIe GPUs expose peer-to-peer access (false: GeForce on the stock driver)"
    )
    pcie_topology: Literal["root_complex", "switch"] = Field(
        default="root_complex",
        description="PCIe GPUs: on the CPU's root ports (root_complex) or behind PCIe switches (switch); sets "
        "untuned NCCL's bus-bandwidth ceiling (sim/costmodel/comm.py)",
    )
    nvlink_domain: int = Field(default=8, ge=1, description="GPUs that reach each other at intra_node_bw")
    inter_node_bw: float | None = Field(
        default=None, gt=0, description="scale-out NIC bandwidth per GPU per direction, bytes/s"
    )
    host_link_bw: float = Field(gt=0, description="host<->device bandwidth per direction (PCIe), bytes/s")
    price_per_hour: float = Field(ge=0, description="on-demand cloud price per GPU-hour, USD")
    tdp_w: float = Field(gt=0, description="board power limit, watts")
    sources: list[str] = Field(default_factory=list, description="where the numbers come from")

    def peak_flops(self, precision: str) -> float | None:
        """Dense tensor peak for GEMMs whose inputs are in `precision`; None if the GPU lacks it."""
        if precision in ("bf16", "fp16"):
            return self.bf16_flops
        return {"fp8": self.fp8_flops, "fp4": self.fp4_flops}.get(precision)


_PATTERN = re.compile(r"^[FLG]+$")


class ModelSpec(BaseModel):
    """A decoder-only transformer as its published config describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hf_id: str = ""
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0, description="query/key head width (MLA: qk_nope + qk_rope)")
    intermediate_size: int = Field(gt=0, description="dense MLP inner width (legacy MoE entries: per expert)")
    vocab_size: int = Field(gt=0)
    max_context: int = Field(gt=0, description="max_position_embeddings: longest prompt + output")
    gated_mlp: bool = Field(default=True, description="SwiGLU-style gate+up (3 matrices) vs 2-matrix MLP")
    # -- mixture of experts --
    num_experts: int = Field(default=1, ge=1, description="routed experts per MoE layer (1 = dense)")
    experts_per_token: int = Field(default=1, ge=1)
    num_shared_experts: int = Field(default=0, ge=0, description="always-active experts per MoE layer")
    n_group: int = Field(default=1, ge=1, description="group-limited routing: expert groups (config.json n_group)")
    topk_group: int = Field(default=1, ge=1, description="groups a token's experts come from (config.json topk_group)")
    moe_intermediate_size: int | None = Field(default=None, gt=0, description="per routed expert; None: intermediate")
    shared_expert_intermediate_size: int | None = Field(
        default=None, gt=0, description="width of ONE shared expert; None: moe_intermediate_size"
    )
    first_dense_layers: int = Field(default=0, ge=0, description="leading layers with a dense MLP")
    moe_layer_interval: int = Field(default=1, ge=1, description="layer i is MoE when (i + 1) % interval == 0")
    # -- multi-head latent attention (DeepSeek-V2/V3) --
    kv_lora_rank: int | None = Field(default=None, gt=0, description="MLA compressed KV latent width")
    q_lora_rank: int | None = Field(default=None, gt=0, description="MLA query low-rank width (None: full)")
    qk_rope_head_dim: int = Field(default=0, ge=0, description="MLA decoupled RoPE key width (cached)")
    v_head_dim: int | None = Field(default=None, gt=0, description="value head width; None: head_dim")
    # -- attention kinds per layer --
    attention_pattern: str = Field(
        default="F", description="repeated over layers: F full, L local window (sliding/chunked), G linear recurrent"
    )
    sliding_window: int | None = Field(default=None, gt=0, description="tokens an L layer attends to")
    attention_topk: int | None = Field(default=None, gt=0, description="DSA sparse attention: keys per query")
    # DSA's lightning indexer (DeepSeek-V3.2, GLM-5): per layer it projects index_n_heads queries of index_head_dim from
    # the q latent and one key from the hidden state, scores every earlier token for each query (FP8) and keeps the
    # attention_topk best (`sim.costmodel.structured_attention`, `indexer_*`)
    index_n_heads: int = Field(default=0, ge=0, description="DSA indexer query heads (config.json index_n_heads)")
    index_head_dim: int = Field(default=128, gt=0, description="DSA indexer head width (config.json index_head_dim)")
    linear_num_key_heads: int = Field(default=0, ge=0, description="G layers (Gated DeltaNet): key heads")
    linear_num_value_heads: int = Field(default=0, ge=0)
    linear_head_dim: int = Field(default=128, gt=0, description="G layers: key and value head width")
    # MiniMax-M2 (`use_qk_norm`, `qk_norm_type: per_layer`): q and k each pass one RMSNorm over all heads' elements
    # at once, not per head (Qwen3's `q_norm` / `k_norm` are per head). Under tensor parallelism a GPU holds only its
    # heads, so every attention layer all-reduces each token's two partial variances before normalising (vLLM
    # `MiniMaxText01RMSNormTP.forward_qk`, vllm/model_executor/layers/mamba/linear_attn.py: `torch.cat([q_var,
    # k_var])`, `tensor_model_parallel_all_reduce`); an engine cannot avoid it without changing the model's maths.
    qk_norm_per_layer: bool = Field(default=False, description="QK RMSNorm over all heads (TP all-reduces it)")
    tied_embeddings: bool = False
    dtype_bytes: int = Field(default=2, gt=0, description="bytes per weight and per KV element (bf16 default)")
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if not _PATTERN.match(self.attention_pattern):
            raise ValueError(f"attention_pattern must use only F, L, G; found {self.attention_pattern!r}")
        if "L" in self.attention_pattern and self.sliding_window is None:
            raise ValueError("attention_pattern has local (L) layers but sliding_window is not set")
        if "G" in self.attention_pattern and self.linear_num_value_heads == 0:
            raise ValueError("attention_pattern has linear (G) layers but linear_num_value_heads is 0")
        if self.attention_topk is not None and self.is_mla and self.index_n_heads <= 0:
            raise ValueError("attention_topk (DSA) on an MLA model needs index_n_heads > 0 (the indexer's query heads)")
        if self.experts_per_token > self.num_experts:
            raise ValueError(f"experts_per_token {self.experts_per_token} > num_experts {self.num_experts}")
        if self.n_group > 1 and (self.num_experts % self.n_group or self.topk_group > self.n_group):
            raise ValueError(
                f"n_group {self.n_group} must divide num_experts {self.num_experts} and be >= topk_group "
                f"{self.topk_group}"
            )
        return self

    # -- layer structure -------------------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    def layer_kinds(self) -> list[str]:
        """Attention kind of each layer: the pattern repeated."""
        p = self.attention_pattern
        return [p[i % len(p)] for i in range(self.num_layers)]

    def layer_count(self, kind: str) -> int:
        return sum(1 for k in self.layer_kinds() if k == kind)

    @property
    def num_moe_layers(self) -> int:
        if not self.is_moe:
            return 0
        n = self.moe_layer_interval
        return sum(1 for i in range(self.first_dense_layers, self.num_layers) if (i + 1) % n == 0)

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def expert_width(self) -> int:
        return self.moe_intermediate_size or self.intermediate_size

    @property
    def shared_width(self) -> int:
        """Total inner width of the shared experts of one MoE layer (0 if none)."""
        return self.num_shared_experts * (self.shared_expert_intermediate_size or self.expert_width)

    @property
    def value_dim(self) -> int:
        return self.v_head_dim or self.head_dim

    # -- parameter counts ------------------------------------------------------------------------------
    def _mlp(self, width: int) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    def attention_params(self, kind: str = "F") -> int:
        """Weights of one layer's token mixer (projections only; norms counted per layer elsewhere)."""
        h, hq = self.hidden_size, self.num_heads
        if kind == "G":
            kd = self.linear_num_key_heads * self.linear_head_dim
            vd = self.linear_num_value_heads * self.linear_head_dim
            return h * (2 * kd + 2 * vd) + 2 * h * self.linear_num_value_heads + vd * h + (2 * kd + vd) * 4
        if self.is_mla:
            r, rope = int(self.kv_lora_rank or 0), self.qk_rope_head_dim
            nope = self.head_dim - rope
            q = (
                (h * self.q_lora_rank + self.q_lora_rank * hq * self.head_dim)
                if self.q_lora_rank
                else h * hq * self.head_dim
            )
            kv = h * (r + rope) + r * hq * (nope + self.value_dim)
            return q + kv + hq * self.value_dim * h
        kv = self.num_kv_heads * (self.head_dim + self.value_dim)
        return h * hq * self.head_dim + h * kv + hq * self.value_dim * h

    @computed_field  # type: ignore[prop-decorator]
    @property
    def num_params(self) -> int:
        """Parameter count from the shapes (embeddings, attention, MLP/experts, norms, LM head)."""
        return self.non_expert_params + self.expert_params

    @property
    def expert_params(self) -> int:
        """Routed-expert weights (what expert parallelism shards)."""
        return self.num_moe_layers * self.num_experts * self._mlp(self.expert_width)

    @property
    def non_expert_params(self) -> int:
        """Everything but routed experts: embeddings, attention, dense MLPs, shared experts, routers, norms."""
        h = self.hidden_size
        attn = sum(self.attention_params(k) for k in self.layer_kinds())
        dense = self.num_dense_layers * self._mlp(self.intermediate_size)
        moe_fixed = self.num_moe_layers * (self._mlp(self.shared_width) if self.shared_width else 0)
        router = self.num_moe_layers * h * self.num_experts
        norms = self.num_layers * 2 * h + h
        emb = self.vocab_size * h * (1 if self.tied_embeddings else 2)
        return attn + dense + moe_fixed + router + norms + emb

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def active_params(self) -> int:
        """Weights one token touches: everything but the routed experts it is not sent to."""
        k = self.experts_per_token
        return self.non_expert_params + self.num_moe_layers * k * self._mlp(self.expert_width)

    # -- memory ------------------------------------------------------------------------------------------
    def kv_heads_per_gpu(self, tp: int = 1) -> int:
        """KV heads one GPU of a tp-way shard holds (replicated when there are fewer heads than GPUs)."""
        return max(1, self.num_kv_heads // tp) if self.num_kv_heads >= tp else 1

    def kv_elems_per_token_layer(self, tp: int = 1) -> int:
        """KV elements one token adds to one attention layer on one GPU. MLA caches the latent and the RoPE
        key once (not per head) and every TP rank holds all of it."""
        if self.is_mla:
            return int(self.kv_lora_rank or 0) + self.qk_rope_head_dim
        return self.kv_heads_per_gpu(tp) * (self.head_dim + self.value_dim)

    def kv_bytes_per_token(self, tp: int = 1, kv_bits: float | None = None, context: int | None = None) -> float:
        """KV cache bytes one token occupies on one GPU of a `tp`-way shard (all attention layers).

        Local-window layers keep at most `sliding_window` tokens of a sequence: given `context` (the
        sequence length), they are charged min(window, context) / context per token; without it, as
        full layers (an upper bound). Linear (G) layers keep no per-token cache (see `state_bytes`)."""
        per_elem = (kv_bits / 8.0) if kv_bits is not None else float(self.dtype_bytes)
        full = self.layer_count("F")
        local = self.layer_count("L")
        if local and context is not None and self.sliding_window is not None and context > 0:
            local_share = min(self.sliding_window, context) / context
        else:
            local_share = 1.0
        return (full + local * local_share) * self.kv_elems_per_token_layer(tp) * per_elem

    def state_bytes_per_sequence(self, tp: int = 1) -> float:
        """Fixed recurrent state of the linear (G) layers per sequence (fp32 state, heads split by TP)."""
        g = self.layer_count("G")
        if not g:
            return 0.0
        heads = max(1, self.linear_num_value_heads // tp)
        return g * heads * self.linear_head_dim * self.linear_head_dim * 4.0

    def weight_bytes(self, tp: int = 1, weight_bits: float | None = None) -> float:
        """Weight bytes held by one GPU of a `tp`-way tensor-parallel shard. With `weight_bits` the linear
        layers are stored at that width and embeddings / LM head stay at 16 bits (as FP8/FP4 checkpoints do)."""
        if weight_bits is None:
            return self.num_params * self.dtype_bytes / tp
        emb = self.embedding_params
        return (emb * 2.0 + (self.num_params - emb) * weight_bits / 8.0) / tp
