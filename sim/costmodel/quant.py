"""Numeric precision of a deployment: what weights, activations and the KV cache are stored and computed in.

`quantization: {weights, activations, kv_cache}` at the scenario top level. GEMMs run on the tensor cores of
the activation precision (FP8 x FP8 on FP8 cores, NVFP4 x NVFP4 on FP4 cores); weights narrower than the
activations (int4 / FP4 / FP8 weight-only) are read at their width and dequantised into the activation
precision, so those GEMMs are memory-bound at small batch and run at the activation peak at large batch.

Checkpoints quantise per module, so two optional overrides take `{weights, activations}` for one part of the
model, each field inheriting the top level when left out:
- `attention`: the attention projections (q/k/v/o, MLA's latent projections, DSA's indexer, linear-attention
  in/out). openai/gpt-oss-120b/20b keep attention in BF16 (config.json `quantization_config`:
  `quant_method: mxfp4`, `modules_to_not_convert` lists `model.layers.*.self_attn`, `model.layers.*.mlp.router`,
  `model.embed_tokens`, `lm_head`); ModelOpt's DeepSeek NVFP4 recipe leaves attention out of NVFP4
  (NVIDIA/TensorRT-Model-Optimizer examples/deepseek/ptq.py: `quant_cfg["*attn*"] = {"enable": False}` unless
  `mla_quant`, and `*head*` disabled; the rest, dense MLPs and shared experts included, NVFP4).
- `experts`: the routed experts (gpt-oss MXFP4; Kimi-K2-Thinking INT4 weight-only experts).
The top level covers everything else: dense MLPs, shared experts. The router and the LM head stay in the
model's dtype whatever is set (`StructuredCost.gemm(unquantised=True)`); embeddings are counted at 2 bytes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from hwprofiles.specs import KV_BITS, WEIGHT_BITS, GPUSpec, ModelSpec

_ACT_BITS = {"bf16": 16, "fp8": 8, "fp4": 4}


Module = Literal["attention", "experts"]
MODULES: tuple[Module, ...] = ("attention", "experts")


class ModuleQuantization(BaseModel):
    """One module's precision; a field left out inherits the scenario's top-level value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: Literal["bf16", "fp8", "fp4", "int4"] | None = Field(default=None, description="stored weight format")
    activations: Literal["bf16", "fp8", "fp4"] | None = Field(default=None, description="GEMM input precision")


class Quantization(BaseModel):
    """Storage and compute precision; bf16 everywhere by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: Literal["bf16", "fp8", "fp4", "int4"] = Field(default="bf16", description="stored weight format")
    activations: Literal["bf16", "fp8", "fp4"] = Field(
        default="bf16", description="GEMM input precision: selects the tensor-core peak"
    )
    kv_cache: Literal["bf16", "fp8"] = Field(default="bf16", description="KV cache element format")
    attention: ModuleQuantization | None = Field(
        default=None, description="attention projections' {weights, activations} (default: the top level's)"
    )
    experts: ModuleQuantization | None = Field(
        default=None, description="routed experts' {weights, activations} (default: the top level's)"
    )

    @model_serializer(mode="wrap")
    def _drop_unset_modules(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        """Module overrides left out stay out of dumps (resolved scenarios, summaries read as before)."""
        out: dict[str, object] = handler(self)
        for name in MODULES:
            if out.get(name) is None:
                out.pop(name, None)
        return out

    @property
    def is_default(self) -> bool:
        flat = (self.weights, self.activations, self.kv_cache) == ("bf16", "bf16", "bf16")
        return flat and not self.is_mixed

    @property
    def is_mixed(self) -> bool:
        """Whether some module's precision differs from the top level's."""
        return any(self.module(name) != self.flat for name in MODULES)

    @property
    def flat(self) -> Quantization:
        """The top-level precision alone (what modules without an override use)."""
        if self.attention is None and self.experts is None:
            return self
        return Quantization(weights=self.weights, activations=self.activations, kv_cache=self.kv_cache)

    def module(self, name: Module | None) -> Quantization:
        """The precision `name`'s GEMMs run at (None: the top level's: dense MLPs, shared experts)."""
        over = getattr(self, name) if name is not None else None
        if over is None:
            return self.flat
        return Quantization(
            weights=over.weights or self.weights,
            activations=over.activations or self.activations,
            kv_cache=self.kv_cache,
        )

    @property
    def weight_bits(self) -> float:
        return WEIGHT_BITS[self.weights]

    @property
    def kv_bits(self) -> float:
        return KV_BITS[self.kv_cache]

    @property
    def act_bytes(self) -> float:
        """Bytes per activation element moved by GEMMs (inputs at the activation precision)."""
        return _ACT_BITS[self.activations] / 8.0

    @property
    def weight_only(self) -> bool:
        """Weights narrower than activations: dequantised on the fly (Marlin-style), compute at activation peak."""
        return self.weight_bits < _ACT_BITS[self.activations]


DEFAULT = Quantization()


def support_error(q: Quantization, gpu: GPUSpec, model: ModelSpec | None = None) -> str | None:
    """Why this precision cannot run on this GPU (one line), or None. Each module override is checked as
    resolved (its own fields over the top level's); `experts` needs a mixture-of-experts model."""
    if q.experts is not None and model is not None and not model.is_moe:
        return f"quantization.experts: {model.name} is dense (no routed experts); set the top-level fields instead"
    for name in (None, *MODULES):
        if name is not None and getattr(q, name) is None:
            continue
        if msg := _flat_error(q.module(name), gpu, "quantization" + (f".{name}" if name else "")):
            return msg
    return None


def _flat_error(q: Quantization, gpu: GPUSpec, at: str) -> str | None:
    if q.activations != "bf16" and gpu.peak_flops(q.activations) is None:
        return (
            f"{at}.activations: {q.activations} needs {q.activations.upper()} tensor cores, which "
            f"{gpu.name} does not have (it has: {', '.join(p for p in ('bf16', 'fp8', 'fp4') if gpu.peak_flops(p))})"
        )
    if q.weights == "bf16" and q.activations != "bf16":
        return f"{at}: activations {q.activations} with bf16 weights; quantise the weights too (weights: fp8)"
    if q.activations == "fp4" and q.weights != "fp4":
        return f"{at}: fp4 activations need fp4 weights (NVFP4 W4A4), found weights {q.weights}"
    if q.activations == "fp8" and q.weights == "int4":
        return f"{at}: int4 weights are weight-only (activations bf16); W4A8 int4 is not modelled"
    return None
