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
        "completion",
        "first_scheduled",
        "first_token",
        "generated",
        "hash_ids",
        "id",
        "instance",
        "kv_tokens",
        "last_token",
        "output",
        "preemptions",
        "prefill_done",
        "prefill_target",
        "priority",
        "prompt",
        "reject_reason",
    )

    def __init__(
        self,
        rid: int,
        arrival: float,
        prompt: int,
        output: int,
        hash_ids: np.ndarray | None = None,
        priority: int = 0,
    ) -> None:
        self.id = rid
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.hash_ids = hash_ids
        self.priority = priority
        self.instance = -1
        self.generated = 0  # output tokens emitted so far
        self.prefill_target = prompt  # tokens the current prefill pass must compute (prompt + generated)
        self.prefill_done = 0  # tokens of the current prefill pass already computed
        self.kv_tokens = 0  # tokens whose K/V are stored
        self.blocks = 0  # KV blocks held
        self.preemptions = 0
        self.first_scheduled = NAN
        self.first_token = NAN
        self.last_token = NAN
        self.completion = NAN
        self.reject_reason: str | None = None

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
