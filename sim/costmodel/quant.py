"""Numeric precision of a deployment: what weights, activations and the KV cache are stored and computed in.

`quantization: {weights, activations, kv_cache}` at the scenario top level. GEMMs run on the tensor cores of
the activation precision (FP8 x FP8 on FP8 cores, NVFP4 x NVFP4 on FP4 cores); weights narrower than the
activations (int4 / FP4 / FP8 weight-only) are read at their width and dequantised into the activation
precision, so those GEMMs are memory-bound at small batch and run at the activation peak at large batch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hwprofiles.specs import KV_BITS, WEIGHT_BITS, GPUSpec, ModelSpec

_ACT_BITS = {"bf16": 16, "fp8": 8, "fp4": 4}


class Quantization(BaseModel):
    """Storage and compute precision; bf16 everywhere by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: Literal["bf16", "fp8", "fp4", "int4"] = Field(default="bf16", description="stored weight format")
    activations: Literal["bf16", "fp8", "fp4"] = Field(
        default="bf16", description="GEMM input precision: selects the tensor-core peak"
    )
    kv_cache: Literal["bf16", "fp8"] = Field(default="bf16", description="KV cache element format")

    @property
    def is_default(self) -> bool:
        return (self.weights, self.activations, self.kv_cache) == ("bf16", "bf16", "bf16")

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
    """Why this precision cannot run on this GPU (one line), or None."""
    if q.activations != "bf16" and gpu.peak_flops(q.activations) is None:
        return (
            f"quantization.activations: {q.activations} needs {q.activations.upper()} tensor cores, which "
            f"{gpu.name} does not have (it has: {', '.join(p for p in ('bf16', 'fp8', 'fp4') if gpu.peak_flops(p))})"
        )
    if q.weights == "bf16" and q.activations != "bf16":
        return f"quantization: activations {q.activations} with bf16 weights; quantise the weights too (weights: fp8)"
    if q.activations == "fp4" and q.weights != "fp4":
        return f"quantization: fp4 activations need fp4 weights (NVFP4 W4A4), found weights {q.weights}"
    if q.activations == "fp8" and q.weights == "int4":
        return "quantization: int4 weights are weight-only (activations bf16); W4A8 int4 is not modelled"
    return None
