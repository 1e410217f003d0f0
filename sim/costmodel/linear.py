"""The analytic `linear` cost model: exact service times for queueing-theory checks."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from sim.costmodel.base import COST_MODELS, Chunks, CostModel, _Strict


class LinearCostConfig(_Strict):
    """Analytic cost: base + per prefill token + per decoding sequence (queueing checks)."""

    kind: Literal["linear"] = "linear"
    base_s: float = Field(default=0.0, ge=0)
    per_prefill_token_s: float = Field(default=0.0, ge=0)
    per_decode_seq_s: float = Field(default=0.0, ge=0)


class LinearCost:
    """`base + a·prefill_tokens + b·decoding_sequences`; exact service times for theory checks."""

    def __init__(self, cfg: LinearCostConfig) -> None:
        self.base, self.per_tok, self.per_seq = cfg.base_s, cfg.per_prefill_token_s, cfg.per_decode_seq_s

    def iteration(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> float:
        return self.base + self.per_tok * sum(q for q, _ in prefill) + self.per_seq * n_decode

    def decode_run(self, n: int, ctx_sums: np.ndarray) -> np.ndarray:
        return np.full(len(ctx_sums), self.base + self.per_seq * n)

    def decode_coeffs(self, n: int) -> tuple[float, float] | None:
        return self.base + self.per_seq * n, 0.0

    def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        return {
            "base": self.base,
            "prefill": self.per_tok * sum(q for q, _ in prefill),
            "decode": self.per_seq * n_decode,
        }


@COST_MODELS.register("linear", LinearCostConfig)
def _linear(cfg: LinearCostConfig, **_: object) -> CostModel:
    """base + per prefill token + per decoding sequence (analytic checks)"""
    return LinearCost(cfg)
