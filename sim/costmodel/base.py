"""The cost-model contract every kind implements; `COST_MODELS` (the registry the scenario's `cost_model.kind`
selects from) lives with the other registries in `sim.core.registry` and is re-exported here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from sim.core.registry import COST_MODELS

Chunks = Sequence[tuple[int, int]]  # (new tokens q, cached tokens c) per prefill chunk


class CostModel(Protocol):
    def iteration(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> float:
        """Seconds for one iteration: prefill chunks plus `n_decode` decodes over `decode_ctx` KV tokens."""
        ...

    def decode_run(self, n: int, ctx_sums: np.ndarray) -> np.ndarray:
        """Seconds of each of len(ctx_sums) decode-only steps of `n` sequences (ctx_sums[s] = Σ context)."""
        ...

    def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        """Seconds by operator for one iteration (sums to `iteration()` up to rounding)."""
        ...


def decode_coeffs(cost: CostModel, n: int) -> tuple[float, float] | None:
    """(a, b) with a decode step of n sequences costing exactly `a + b·context_sum` — the same float
    operations as `decode_run` — when the model is affine in context; lets the engine price short runs in
    plain Python. None otherwise."""
    f = getattr(cost, "decode_coeffs", None)
    return f(n) if f is not None else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


__all__ = ["COST_MODELS", "Chunks", "CostModel", "_Strict", "decode_coeffs"]
