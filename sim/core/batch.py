"""The small public types a batch scheduler sees: the instance view it plans against and its plan.

Policies import only this module (and `sim.core.request`), never the engine: the engine implements
`InstanceView`, the policy returns a `BatchPlan`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from sim.core.request import Request


@dataclass(slots=True, init=False)
class BatchPlan:
    """One iteration's work: prefill chunks (request, tokens) and decoding requests (one token each)."""

    prefill: list[tuple[Request, int]] = field(default_factory=list)
    decode: list[Request] = field(default_factory=list)
    preempted: int = 0  # preemptions performed while planning (the plan is not stable)
    cohort: bool = False  # every decoding request decodes (`InstanceView.decode_all`); `decode` holds only joiners
    cohort_n: int = 0  # how many requests that is
    # an empty plan means "wait": until an arrival (math.inf) or this absolute time; None = nothing to wait for
    wait_until: float | None = None

    def __init__(
        self,
        prefill: list[tuple[Request, int]] | None = None,
        decode: list[Request] | None = None,
        preempted: int = 0,
        cohort: bool = False,
        cohort_n: int = 0,
        wait_until: float | None = None,
    ) -> None:
        """The dataclass's own `__init__`, written out: its `default_factory` fields call `list` once per plan
        (engines make one plan per iteration run or decode run, so the cheaper literal pays)."""
        self.prefill = [] if prefill is None else prefill
        self.decode = [] if decode is None else decode
        self.preempted = preempted
        self.cohort = cohort
        self.cohort_n = cohort_n
        self.wait_until = wait_until

    @property
    def empty(self) -> bool:
        return not self.prefill and not self.decode and not self.cohort

    @property
    def decode_count(self) -> int:
        return self.cohort_n + len(self.decode) if self.cohort else len(self.decode)


class InstanceView(Protocol):
    """What a scheduler may read and do on its instance; allocation goes through these calls."""

    waiting: deque[Request]  # or the scheduler's own `waiting_queue()` (same methods, its order)
    running: list[Request]
    block_size: int
    num_blocks: int
    watermark_blocks: int
    iterations: int  # iterations run so far (a fast-forward run of k steps counts k)
    arrivals_closed: bool  # no more requests will be routed here
    overlap_admission: bool  # plans one step ahead (`serving_engine.overlap_admission`, SGLang event_loop_overlap)
    plan_t: float  # when the plan of the step in flight was made (-inf before the first)

    @property
    def free_blocks(self) -> int:
        """KV blocks free now."""
        ...

    def admit_blocks(self, req: Request, tokens: int | None = None) -> int:
        """Blocks `req` takes on admission (its prefill pass, with `tokens` only its first chunk's, or its
        swapped-out KV)."""
        ...

    prefilling: list[Request]  # running requests still in their prefill pass, in admission order

    def decode_all(self, plan: BatchPlan) -> bool:
        """Schedule every decoding request for one step if memory allows without preemption (O(1) when
        the engine aggregates lockstep decoders). False: plan decodes request by request over `decoding()`."""
        ...

    def decoding(self) -> list[Request]:
        """Running requests past their prefill, in running order, with exact fields."""
        ...

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold `tokens` tokens."""
        ...

    def freeable_blocks(self, req: Request) -> int:
        """Blocks preempting the running `req` would free (its own, and prefix blocks only it references)."""
        ...

    def can_admit(self, req: Request, tokens: int | None = None) -> bool:
        """True if the request's whole prefill (with `tokens`: its first chunk) fits above the watermark."""
        ...

    def admit(self, req: Request, tokens: int | None = None) -> None:
        """Move `req` (best the head) from waiting to running and allocate its blocks (swap-in is priced); with
        `tokens`, only the blocks of its first `tokens` prompt tokens (`reserve_prefill` takes the rest)."""
        ...

    def reserve_prefill(self, req: Request, tokens: int) -> bool:
        """Take the blocks a running prefill needs for its next `tokens` tokens; False if they are not free."""
        ...

    def reserve_decode_slot(self, req: Request) -> bool:
        """Allocate the block the request's next token needs, if any; False if memory is exhausted."""
        ...

    def reserve_decode_slots(self, reqs: list[Request]) -> bool:
        """Reserve next-token slots for all `reqs` if the free blocks cover them; else reserve none."""
        ...

    def preempt(self, req: Request) -> None:
        """Free the request's KV (recompute, or swap to host per `kv_cache.preemption`) and requeue it first."""
        ...


class BatchScheduler(Protocol):
    """A local batch-scheduling policy (registered by `kind`).

    Optionally it defines `waiting_queue()`, returning a deque-like queue (`append`, `appendleft`, `popleft`,
    `remove`, `[0]`, `len`, iteration) that keeps waiting requests in the policy's order, so a policy that
    admits by rank does not sort the whole queue every iteration.
    """

    def schedule(self, inst: InstanceView, now: float) -> BatchPlan:
        """Plan the next iteration, admitting/preempting through `inst`."""
        ...

    def decision_horizon(self, inst: InstanceView, plan: BatchPlan) -> int:
        """How many iterations a decode-only `plan` stays this policy's decision if nothing outside changes
        (no arrival, and until a request completes or a KV block runs short, which the engine detects).
        Return 1 to opt out of fast-forward, `UNBOUNDED` when only those events can change it."""
        ...

    # Optional: `chunk_horizon(inst, plan) -> int` — how many iterations a plan of every decoder plus one
    # request's prefill chunk repeats (the same request's next chunk of the same size) if nothing but its own
    # progress changes, *arrivals included*: a chunk run is not cut when a request joins the queue. The engine
    # stops where the prefill ends, at a completion and before KV runs short (`sim.core.steps.chunk_run`).
    # Optional with it: `chunk_tail(inst, plan) -> bool` — whether the plan after the last full chunk is every
    # decoder plus the prompt's shorter remainder, *unless a request arrives first* (the engine then cuts it).


UNBOUNDED = 1 << 62
