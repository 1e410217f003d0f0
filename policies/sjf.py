"""Shortest job first (`sjf`) and shortest remaining processing time (`srpt`), by output tokens.

Both rank by output length: the true one (`lengths: oracle`, the bound a predictor can approach) or
the scenario predictor's (`lengths: predicted`). `sjf` is non-preemptive: it only picks which waiting
request is admitted next, and running requests run to completion (preempted only when KV memory runs
out, latest-admitted first, as vLLM does). `srpt` re-ranks every iteration by tokens still to generate
and preempts at iteration granularity: a shorter arrival takes a batch seat, and KV memory if needed,
from the request with the most tokens left.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from policies.ranked import RankedConfig, RankedScheduler
from sim.core.batch import BatchScheduler
from sim.core.registry import SCHEDULERS
from sim.core.request import Request

LengthSource = Literal["oracle", "predicted"]


class SJFConfig(RankedConfig):
    """Shortest job first by output length, non-preemptive."""

    kind: Literal["sjf"] = "sjf"
    lengths: LengthSource = Field(default="oracle", description="true output lengths, or the predictor's")

    @property
    def needs_predictor(self) -> bool:
        return self.lengths == "predicted"


class SRPTConfig(RankedConfig):
    """Shortest remaining output first, preemptive at iteration granularity."""

    kind: Literal["srpt"] = "srpt"
    lengths: LengthSource = Field(default="oracle", description="true output lengths, or the predictor's")

    @property
    def needs_predictor(self) -> bool:
        return self.lengths == "predicted"


def _length(req: Request, source: LengthSource) -> int:
    return req.output if source == "oracle" else req.predicted


class SJF(RankedScheduler):
    preemptive = False

    def __init__(self, cfg: SJFConfig) -> None:
        super().__init__(cfg)
        self.source: LengthSource = cfg.lengths

    def key(self, req: Request) -> tuple[int, float, int]:
        return (_length(req, self.source), req.arrival, req.id)


class SRPT(RankedScheduler):
    preemptive = True

    def __init__(self, cfg: SRPTConfig) -> None:
        super().__init__(cfg)
        self.source: LengthSource = cfg.lengths

    def key(self, req: Request) -> tuple[int, float, int]:
        # selected requests only gain rank as they decode, so the decision needs no horizon of its own
        return (_length(req, self.source) - req.generated, req.arrival, req.id)


@SCHEDULERS.register("sjf", SJFConfig)
def _sjf(cfg: SJFConfig, **_: object) -> BatchScheduler:
    """shortest job first (oracle or predicted lengths), non-preemptive"""
    return SJF(cfg)


@SCHEDULERS.register("srpt", SRPTConfig)
def _srpt(cfg: SRPTConfig, **_: object) -> BatchScheduler:
    """shortest remaining tokens first, preemptive per iteration"""
    return SRPT(cfg)
