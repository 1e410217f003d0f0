"""The small public types a batch scheduler sees: the instance view it plans against and its plan.

Policies import only this module (and `sim.request`), never the engine: the engine implements
`InstanceView`, the policy returns a `BatchPlan`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from sim.request import Request


@dataclass(slots=True)
class BatchPlan:
    """One iteration's work: prefill chunks (request, tokens) and decoding requests (one token each)."""

    prefill: list[tuple[Request, int]] = field(default_factory=list)
    decode: list[Request] = field(default_factory=list)
    preempted: int = 0  # preemptions performed while planning (the plan is not stable)

    @property
    def empty(self) -> bool:
        return not self.prefill and not self.decode

    @property
    def num_tokens(self) -> int:
        return sum(n for _, n in self.prefill) + len(self.decode)


class InstanceView(Protocol):
    """What a scheduler may read and do on its instance; allocation goes through these calls."""

    waiting: deque[Request]
    running: list[Request]
    block_size: int
    num_blocks: int
    free_blocks: int
    watermark_blocks: int

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold `tokens` tokens."""
        ...

    def can_admit(self, req: Request) -> bool:
        """True if the request's whole prefill fits above the watermark."""
        ...

    def admit(self, req: Request) -> None:
        """Move the head of the waiting queue to running and allocate its prefill blocks."""
        ...

    def reserve_decode_slot(self, req: Request) -> bool:
        """Allocate the block the request's next token needs, if any; False if memory is exhausted."""
        ...

    def reserve_decode_slots(self, reqs: list[Request]) -> bool:
        """Reserve next-token slots for all `reqs` if the free pool covers them; else reserve none."""
        ...

    def preempt(self, req: Request) -> None:
        """Free the request's KV (recompute) and put it back at the head of the waiting queue."""
        ...


class BatchScheduler(Protocol):
    """A local batch-scheduling policy (registered by `kind`)."""

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        """Plan the next iteration, admitting/preempting through `inst`."""
        ...

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        """How many iterations a decode-only `plan` stays this policy's decision if nothing outside changes
        (no arrival, and until a request completes or a KV block runs short, which the engine detects).
        Return 1 to opt out of fast-forward, `UNBOUNDED` when only those events can change it."""
        ...


UNBOUNDED = 1 << 62
