"""A request and its lifecycle bookkeeping.

One object per request, with `__slots__` so a million of them fit in memory. Timestamps are NaN until
the event happens; token counters are what the invariants check (every output token generated once).
"""

from __future__ import annotations

import math

import numpy as np

NAN = math.nan


class Request:
    """A prompt to serve and its progress. Token counts are true lengths; `output` may be clipped later."""

    __slots__ = (
        "arrival",
        "blocks",
        "cls",
        "cohort_joined",
        "cohort_step",
        "cohort_ticket",
        "completion",
        "first_scheduled",
        "first_token",
        "generated",
        "hash_ids",
        "hold",
        "id",
        "instance",
        "kv_here",
        "kv_tokens",
        "last_token",
        "migration",
        "output",
        "predicted",
        "preemptions",
        "prefill_done",
        "prefill_target",
        "prefix",
        "priority",
        "prompt",
        "reject_reason",
        "sched",
        "shared_blocks",
    )

    def __init__(
        self,
        rid: int,
        arrival: float,
        prompt: int,
        output: int,
        hash_ids: np.ndarray | None = None,
        priority: int = 0,
        cls: int = 0,
        predicted: int = -1,
    ) -> None:
        self.id = rid
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.hash_ids = hash_ids
        self.priority = priority  # lower is served first (vLLM's convention)
        self.cls = cls  # index into `workload.classes` (0 when no classes are configured)
        self.predicted = predicted  # predicted output tokens from the scenario's predictor; -1 = none
        self.hold = False  # request-level batching: deliver the response when the batch ends, not at the last token
        self.sched: object = None  # scratch state owned by the batch scheduler (levels, counters, caps)
        self.instance = -1
        self.generated = 0  # output tokens emitted so far
        self.prefill_target = prompt  # tokens the current prefill pass must compute (prompt + generated)
        self.prefill_done = 0  # tokens of the current prefill pass already computed
        self.kv_tokens = 0  # tokens whose K/V are stored
        self.blocks = 0  # KV blocks held that are its own (excludes `shared_blocks`)
        self.shared_blocks = 0  # leading blocks it references from the prefix cache (shared, counted there)
        self.preemptions = 0
        self.first_scheduled = NAN
        self.first_token = NAN
        self.last_token = NAN
        self.completion = NAN
        self.reject_reason: str | None = None
        self.cohort_step = -1  # the decode cohort's step count when these fields were last written; -1 = not a member
        self.cohort_joined = -1  # the cohort's step count when it joined
        self.cohort_ticket = 0  # its join ticket: tells its live heap entry in the cohort from stale ones
        self.kv_here = False  # waiting with its KV already in this instance's memory (transferred or migrated)
        self.prefix: object = None  # prefix-cache state here (`sim.cluster.prefix_cache.PrefixState`)
        self.migration: object = None  # a live migration in progress (`sim.cluster.migration`), else None

    @property
    def remaining(self) -> int:
        """Output tokens still to generate."""
        return self.output - self.generated

    @property
    def in_prefill(self) -> bool:
        return self.prefill_done < self.prefill_target

    def __repr__(self) -> str:
        return (
            f"Request(id={self.id}, arrival={self.arrival:.4f}, prompt={self.prompt}, output={self.output}, "
            f"generated={self.generated})"
        )
