"""Configuration of the physical cost models (`roofline`, `table`): efficiencies, overheads, tables, profile."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.costmodel.base import _Strict


class _PhysicalCostConfig(_Strict):
    kind: str
    compute_efficiency: float = Field(default=0.7, gt=0, le=1, description="achieved fraction of peak FLOP/s")
    memory_efficiency: float = Field(default=0.8, gt=0, le=1, description="achieved fraction of HBM bandwidth")
    link_efficiency: float = Field(default=0.8, gt=0, le=1, description="achieved fraction of link bandwidth")
    # engine overheads live in `serving_engine` (sim.costmodel.engine); these add to them (0 by default)
    iteration_overhead_s: float = Field(default=0.0, ge=0, description="extra per iteration, beyond serving_engine")
    layer_overhead_s: float = Field(default=0.0, ge=0, description="extra fixed cost per layer per iteration")
    allreduce_latency_s: float = Field(
        default=1e-5, ge=0, description="all-reduce latency when no serving engine applies (a fitted profile)"
    )
    seq_overhead_s: float = Field(default=0.0, ge=0, description="extra per sequence per iteration")
    efficiency: Literal["curves", "constant"] = Field(
        default="curves",
        description="curves: achieved efficiency per operator learned from the GPU's measured tables (when it "
        "has any); constant: compute_efficiency / memory_efficiency everywhere",
    )
    tables: str | None = Field(
        default=None, description="measured-table directory (relative to the scenario); default: shipped for the GPU"
    )
    profile: str | None = Field(
        default=None, description="fitted profile YAML from `servesim calibrate fit` (relative to the scenario)"
    )


class RooflineCostConfig(_PhysicalCostConfig):
    """Per-operator roofline from GPU and model specs: max(FLOPs / achieved peak, bytes / achieved BW)."""

    kind: Literal["roofline"] = "roofline"


class TableCostConfig(_PhysicalCostConfig):
    """Measured operator tables of this model on this GPU, interpolated; the roofline outside them."""

    kind: Literal["table"] = "table"
