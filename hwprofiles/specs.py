"""GPU and model specifications: the numbers the cost model and the KV cache are built from.

Both are pydantic models so a scenario can name a catalogue entry or give an inline spec with the same
validation. Units are SI (bytes, bytes/s, FLOP/s, seconds, watts, US dollars).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, computed_field


class GPUSpec(BaseModel):
    """One GPU: peak rates and prices. Peaks are dense (no sparsity) vendor figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    memory_bytes: float = Field(gt=0, description="HBM/GDDR capacity in bytes")
    bf16_flops: float = Field(gt=0, description="dense bf16 tensor-core peak, FLOP/s")
    fp8_flops: float | None = Field(default=None, gt=0, description="dense fp8 peak, FLOP/s; None if unsupported")
    mem_bw: float = Field(gt=0, description="memory bandwidth, bytes/s")
    intra_node_bw: float = Field(gt=0, description="GPU-GPU bandwidth per direction (NVLink or PCIe), bytes/s")
    intra_node_link: str = Field(default="nvlink", description="nvlink | pcie")
    host_link_bw: float = Field(gt=0, description="host<->device bandwidth per direction (PCIe), bytes/s")
    price_per_hour: float = Field(ge=0, description="on-demand cloud price per GPU-hour, USD")
    tdp_w: float = Field(gt=0, description="board power limit, watts")
    sources: list[str] = Field(default_factory=list, description="where the numbers come from")


class ModelSpec(BaseModel):
    """A decoder-only transformer as its published config describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hf_id: str = ""
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0, description="MLP inner width (per expert for MoE)")
    vocab_size: int = Field(gt=0)
    max_context: int = Field(gt=0, description="max_position_embeddings: longest prompt + output")
    gated_mlp: bool = Field(default=True, description="SwiGLU-style gate+up (3 matrices) vs 2-matrix MLP")
    num_experts: int = Field(default=1, ge=1)
    experts_per_token: int = Field(default=1, ge=1)
    tied_embeddings: bool = False
    dtype_bytes: int = Field(default=2, gt=0, description="bytes per weight and per KV element")
    sources: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def num_params(self) -> int:
        """Parameter count from the shapes (embeddings, attention, MLP/experts, norms, LM head)."""
        h, d = self.hidden_size, self.head_dim
        attn = h * (self.num_heads * d) + 2 * h * (self.num_kv_heads * d) + (self.num_heads * d) * h
        mlp_one = (3 if self.gated_mlp else 2) * h * self.intermediate_size
        router = h * self.num_experts if self.num_experts > 1 else 0
        per_layer = attn + mlp_one * self.num_experts + router + 2 * h
        emb = self.vocab_size * h
        head = 0 if self.tied_embeddings else self.vocab_size * h
        return self.num_layers * per_layer + emb + head + h

    def kv_bytes_per_token(self, tp: int = 1) -> float:
        """KV cache bytes one token occupies on one GPU of a `tp`-way shard (K and V, all layers)."""
        kv_heads_per_gpu = max(1, self.num_kv_heads // tp) if self.num_kv_heads >= tp else 1
        return 2.0 * self.num_layers * kv_heads_per_gpu * self.head_dim * self.dtype_bytes

    def weight_bytes(self, tp: int = 1) -> float:
        """Weight bytes held by one GPU of a `tp`-way tensor-parallel shard."""
        return self.num_params * self.dtype_bytes / tp
