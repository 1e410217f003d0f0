"""Efficiency curves built from measured-table directories, cached per directory and peak rates."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from hwprofiles.specs import ModelSpec


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or base_dir is None else Path(base_dir) / p


@lru_cache(maxsize=64)
def _efficiency(root: Path, flops: float, bw: float) -> Any:
    from hwprofiles.efficiency import Efficiency
    from hwprofiles.tables import load_tables

    return Efficiency(load_tables(root), flops, bw)


_OWN: dict[tuple[Any, ...], Any] = {}


def _own_efficiency(root: Path, model: ModelSpec, tp: int, flops: float, bw: float) -> Any:
    """Curves from this model's own rows only (k = 1): the table kind's interpolation of its tables."""
    from hwprofiles.efficiency import Efficiency
    from hwprofiles.tables import load_tables, shape_of

    key = (root, tuple(shape_of(model).values()), model.dtype_bytes, tp, flops, bw)
    if key not in _OWN:
        own = load_tables(root).for_model(model, tp)
        _OWN[key] = None if own is None else Efficiency(own, flops, bw, k=1, per_op=True)
    return _OWN[key]


def capped(scaled_s: float, spec_roof_s: float, ratio: float) -> float:
    """A curve-priced operator's time under fitted kernel scales, never faster than the spec sheet allows.

    A learned curve prices an operator as `roofline at the peaks × ratio(size)`; kernel-efficiency scales (fitted
    terms, bounds 0.5-1.5) multiply the peaks. A scale above 1 may lift a rate only up to the GPU's spec peak:
    the time stays at or above the roofline at the spec peaks (`spec_roof_s`), or at the unscaled measurement
    where that was already faster (`ratio` < 1: a measured operator beating the spec arithmetic, e.g. an
    element-wise add that stays in L2). With scales of 1, `scaled_s` = `spec_roof_s × ratio` and this returns it
    unchanged (the same float)."""
    return max(scaled_s, spec_roof_s * min(ratio, 1.0))
