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
