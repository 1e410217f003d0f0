"""Building the physical cost models (`roofline`, `table`) from a scenario: tables, curves, profile, serving
engine, layout and precision resolved; registered under their `kind`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwprofiles.specs import GPUSpec, ModelSpec
from sim.costmodel.base import COST_MODELS, CostModel
from sim.costmodel.config import RooflineCostConfig, TableCostConfig, _PhysicalCostConfig
from sim.costmodel.curves import _efficiency, _own_efficiency, _resolve
from sim.costmodel.engine import ServingEngineConfig
from sim.costmodel.models import RooflineCost
from sim.costmodel.profile import load_profile
from sim.errors import ServesimError

# -- building from a scenario ----------------------------------------------------------------------------


def physical_parts(
    cfg: _PhysicalCostConfig,
    model: ModelSpec,
    gpu: GPUSpec,
    tp: int = 1,
    base_dir: Path | None = None,
    engine: ServingEngineConfig | None = None,
) -> dict[str, Any]:
    """Keyword arguments of `RooflineCost` for this config: its tables' curves, collectives and profile."""
    from hwprofiles.tables import MEASURED_DIR, load_tables

    root: Path | None = None
    if cfg.tables is not None:
        root = _resolve(cfg.tables, base_dir).resolve()
        if not root.is_dir():
            raise ServesimError(f"cost_model.tables: {root}: measured-table directory not found")
    elif (MEASURED_DIR / gpu.name / "provenance.yaml").exists():
        root = (MEASURED_DIR / gpu.name).resolve()
    parts: dict[str, Any] = {"eff": None, "fallback": None, "collectives": None, "params": None}
    if cfg.profile is not None:  # a fitted profile measured its engine's overheads: it replaces serving_engine's
        parts["params"] = load_profile(_resolve(cfg.profile, base_dir)).params
    else:
        parts["engine"] = engine or ServingEngineConfig()  # the scenario's `serving_engine`, else the default
    if root is None and cfg.efficiency == "curves":
        from sim.costmodel.transfer import transferred_parts

        parts.update(transferred_parts(gpu))
    if root is not None:
        curves = cfg.efficiency == "curves"
        if cfg.kind == "table":
            parts["eff"] = _own_efficiency(root, model, tp, gpu.bf16_flops, gpu.mem_bw)
        if curves:
            parts["fallback"] = _efficiency(root, gpu.bf16_flops, gpu.mem_bw)
        if (curves or cfg.kind == "table") and tp > 1:
            parts["collectives"] = load_tables(root).collective_curve("all_reduce", tp)
    return parts


def build_physical(
    cfg: _PhysicalCostConfig,
    model: ModelSpec,
    gpu: GPUSpec,
    tp: int = 1,
    base_dir: Path | None = None,
    engine: ServingEngineConfig | None = None,
    layout: Any = None,
    quant: Any = None,
    decode_query: int = 1,
) -> RooflineCost:
    """A roofline or table cost model with its tables, learned curves, profile and serving engine resolved;
    the structured roofline (`sim.costmodel.structured`) when the model, layout (`sim.costmodel.layout.Layout`)
    or precision (`sim.costmodel.quant.Quantization`) needs more than dense bf16 GQA on tp GPUs. `decode_query`:
    the longest MLA query chunk priced in the absorbed decode form (1 + speculative tokens; `DECODE_QUERY`)."""
    from sim.costmodel.layout import Layout
    from sim.costmodel.quant import DEFAULT
    from sim.costmodel.structured import StructuredCost, needs_structure

    layout = layout or Layout(tp=tp)
    quant = quant or DEFAULT
    parts = physical_parts(cfg, model, gpu, layout.tp, base_dir, engine)
    if needs_structure(model, layout, quant):
        return StructuredCost(
            cfg, model, gpu, layout.tp, layout=layout, quant=quant, decode_query=decode_query, **parts
        )
    return RooflineCost(cfg, model, gpu, tp, **parts)


def prices_serving_engine(cfg: Any) -> bool:
    """Whether a cost-model config prices `serving_engine` (the physical kinds; `linear` is an exact service time)."""
    return isinstance(cfg, _PhysicalCostConfig)


# decorators apply bottom-up: roofline registers first, as `list` shows it
@COST_MODELS.register(
    "table",
    TableCostConfig,
    description="measured operator tables of this model on this GPU, interpolated; roofline outside them",
    fits_profile=True,
)
@COST_MODELS.register(
    "roofline",
    RooflineCostConfig,
    description="per-operator roofline; efficiency curves from the GPU's measured tables when it has any",
    fits_profile=True,
)
def _physical(
    cfg: RooflineCostConfig | TableCostConfig,
    *,
    model: ModelSpec,
    gpu: GPUSpec,
    tp: int = 1,
    base_dir: Path | None = None,
    engine: ServingEngineConfig | None = None,
    layout: Any = None,
    quant: Any = None,
    decode_query: int = 1,
    **_: object,
) -> CostModel:
    """The physical kinds share one builder: the config says whether measured tables drive it."""
    return build_physical(cfg, model, gpu, tp, base_dir, engine, layout, quant, decode_query)
