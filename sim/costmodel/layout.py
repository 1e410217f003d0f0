"""How one instance's GPUs split the model: attention tensor/data parallelism, MoE tensor/expert parallelism.

An instance has `tp × attention_dp` GPUs. Attention (and dense layers, shared experts, embeddings, LM head)
is sharded `tp` ways and replicated on each of the `attention_dp` ranks, each rank serving its own
sequences with its own KV cache; routed experts are split over all of the instance's GPUs as
`moe_tp × ep` (each of `ep` groups holds num_experts / ep experts, each expert sharded `moe_tp` ways).
Ranks run in lockstep: every MoE layer exchanges tokens, so a step takes as long as the slowest rank.
`pp` (pipeline stages) divides the layers; its scheduling is not modelled here yet (stage layer counts
come from `stage_layers`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import PrivateAttr

from hwprofiles.specs import ModelSpec
from sim.costmodel.quant import DEFAULT, Quantization


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    attention_dp: int = 1
    ep: int = 1
    moe_tp: int | None = None  # None: gpus // ep
    pp: int = 1

    @property
    def gpus(self) -> int:
        """GPUs of one instance (one pipeline stage times pp)."""
        return self.tp * self.attention_dp * self.pp

    @property
    def stage_gpus(self) -> int:
        return self.tp * self.attention_dp

    @property
    def moe_tp_size(self) -> int:
        return self.moe_tp if self.moe_tp is not None else max(1, self.stage_gpus // self.ep)

    @property
    def is_default(self) -> bool:
        return self.attention_dp == 1 and self.ep == 1 and self.pp == 1 and self.moe_tp_size == self.tp

    def stage_layers(self, model: ModelSpec) -> int:
        """Layers of the largest pipeline stage (what sets a stage's step time)."""
        return -(-model.num_layers // self.pp)

    def error(self, model: ModelSpec) -> str | None:
        """Why this layout cannot serve this model (one line), or None."""
        if not model.is_moe:
            if self.ep > 1:
                return f"cluster.ep: {self.ep} needs a mixture-of-experts model; {model.name} is dense"
            if self.moe_tp is not None and self.moe_tp != self.stage_gpus:
                return f"cluster.moe_tp: {self.moe_tp} needs a mixture-of-experts model; {model.name} is dense"
            return None
        if self.moe_tp_size * self.ep != self.stage_gpus:
            return (
                f"cluster: moe_tp x ep = {self.moe_tp_size} x {self.ep} must equal tp x attention_dp = "
                f"{self.tp} x {self.attention_dp} (the GPUs of one instance)"
            )
        if model.num_experts % self.ep:
            return f"cluster.ep: {self.ep} does not divide {model.name}'s {model.num_experts} experts"
        return None

    # -- memory per GPU --------------------------------------------------------------------------------
    def weight_bytes_per_gpu(self, model: ModelSpec, quant: Quantization = DEFAULT) -> float:
        """Weights one GPU holds: attention / tp, the rest of the dense part / (tp × attention_dp), routed
        experts / (moe_tp × ep), all / pp; each part at its module's weight width (`quant.module`)."""
        if self.is_default and quant.is_default:
            return model.weight_bytes(self.tp)  # the historical formula, bit for bit
        # per module (`Quantization.module`): attention projections, routed experts, and the rest (dense MLPs,
        # shared experts, routers, norms) at the top level's width; embeddings at 2 bytes
        bits, attn_bits, exp_bits = (quant.module(m).weight_bits for m in (None, "attention", "experts"))
        emb = model.embedding_params
        attn = sum(model.attention_params(k) for k in model.layer_kinds())
        rest = model.non_expert_params - emb - attn  # dense MLPs, shared experts, routers, norms
        # attention is replicated on each attention-DP rank; the MLP side (dense layers, shared experts) and
        # the vocabulary are split over all the instance's GPUs (SGLang / TRT-LLM DP attention)
        per_gpu = (
            attn * attn_bits / 8.0 / self.tp
            + (emb * 2.0 + rest * bits / 8.0) / self.stage_gpus
            + model.expert_params * exp_bits / 8.0 / (self.moe_tp_size * self.ep)
        )
        return per_gpu / self.pp

    def kv_bytes_per_token(self, model: ModelSpec, quant: Quantization = DEFAULT, context: int | None = None) -> float:
        """KV bytes one token of a sequence occupies on each GPU of the rank (and stage) that serves it."""
        if quant.kv_cache == "bf16" and context is None and self.pp == 1:
            return model.kv_bytes_per_token(self.tp)
        return model.kv_bytes_per_token(self.tp, kv_bits=quant.kv_bits, context=context) / self.pp


class DeployedModel(ModelSpec):
    """A ModelSpec that answers `weight_bytes(tp)` and `kv_bytes_per_token(tp)` for its deployment (layout and
    precision), so KV-capacity code written for dense bf16 tp shards sizes MoE/EP/attention-DP/quantised
    instances right: weights per GPU from `Layout.weight_bytes_per_gpu`, and the instance's KV bytes per
    token per GPU divided by `attention_dp` (each rank caches only its own sequences)."""

    _layout: Layout = PrivateAttr(default_factory=Layout)
    _quant: Quantization = PrivateAttr(default=DEFAULT)

    def weight_bytes(self, tp: int = 1, weight_bits: float | None = None) -> float:
        if weight_bits is None and tp == self._layout.tp:
            return self._layout.weight_bytes_per_gpu(self._plain(), self._quant)
        return super().weight_bytes(tp, weight_bits)

    def kv_bytes_per_token(self, tp: int = 1, kv_bits: float | None = None, context: int | None = None) -> float:
        if kv_bits is None and context is None and tp == self._layout.tp:
            lay = self._layout
            return self._plain().kv_bytes_per_token(tp, kv_bits=self._quant.kv_bits) / lay.pp / lay.attention_dp
        return super().kv_bytes_per_token(tp, kv_bits, context)

    def _plain(self) -> ModelSpec:
        return ModelSpec.model_validate(self.model_dump(exclude={"num_params"}))


def deployed(model: ModelSpec, layout: Layout, quant: Quantization) -> ModelSpec:
    """`model` as `layout` and `quant` deploy it (the model itself when both are the defaults)."""
    if layout.is_default and quant.is_default:
        return model
    out = DeployedModel.model_validate(model.model_dump(exclude={"num_params"}))
    out._layout, out._quant = layout, quant
    return out
