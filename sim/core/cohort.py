"""The decode cohort: running requests that decode in lockstep, kept as aggregates.

Under continuous batching (`fcfs`, `sarathi`) every running request past its prefill decodes one token
in every decode step. Updating each request's counters every step costs O(batch) Python work per step
and per fast-forward run; instead the cohort counts steps (`G`) and remembers, per member, the step at
which its fields were last written (`co_base`). A member's true state is its fields plus `G − co_base`
tokens; it is written back (`sync`) only when someone needs it — completion, preemption, a scheduler's
slow path, the horizon. Aggregates make a step O(block_size):

- `kv`: Σ KV tokens of members (the decode attention context),
- `phase[r]`: members with (kv − G) ≡ r (mod block_size); the members needing a new KV block before the
  step after `G + j` are those with phase ≡ −(G + j), because blocks = ⌈kv / block_size⌉ always holds,
- a heap of (step at which the member emits its last token, seq, request) for the next completion,
- `fresh`: previous-token times of members that joined since the last step (everyone else's previous
  token came at `last`, the end of the last cohort step), so pooled inter-token gaps stay exact.

A scheduler that picks which requests decode (priority, MLFQ, ...) gets a cohort of its picks for one decode
run (`dissolve` ends it). The per-request reference lives in the tests (`tests/oracle_decode.py`), which prove
both give identical results.
"""

from __future__ import annotations

import heapq
import itertools
import math

from sim.core.recorder import LogHistogram
from sim.core.request import Request

_JOINS = itertools.count(1)  # join tickets; only their order within one cohort matters (heap ties)


class Cohort:
    """Aggregated lockstep decoders of one instance (see the module docstring)."""

    __slots__ = ("G", "bs", "fresh", "fresh_n", "heap", "kv", "last", "n", "phase", "reserved", "seq")

    def __init__(self, block_size: int) -> None:
        self.bs = block_size
        self.G = 0
        self.n = 0
        self.kv = 0
        self.phase = [0] * block_size
        self.heap: list[tuple[int, int, Request]] = []
        self.fresh: dict[float, int] = {}
        self.fresh_n = 0
        self.last = math.nan
        self.reserved = False  # blocks for the next step are already taken from the pool
        self.seq = 0

    # -- membership ----------------------------------------------------------------------------------
    def join(self, req: Request) -> None:
        """Add a request whose prefill is complete (its fields are exact now). While the next step is
        reserved (a swap-in during planning), the scheduler reserves the joiner's slot itself."""
        g = self.G
        req.co_base = g
        req.co_join = g
        self.seq = next(_JOINS)  # unique across cohorts: a request that moved on leaves stale entries behind
        req.co_seq = self.seq
        self.n += 1
        self.kv += req.kv_tokens
        self.phase[(req.kv_tokens - g) % self.bs] += 1
        heapq.heappush(self.heap, (g + req.output - req.generated, self.seq, req))
        lt = req.last_token
        self.fresh[lt] = self.fresh.get(lt, 0) + 1
        self.fresh_n += 1

    def sync(self, req: Request) -> None:
        """Write a member's true state into its fields."""
        d = self.G - req.co_base
        if d:
            req.generated += d
            req.kv_tokens += d
            req.last_token = self.last
            req.co_base = self.G
        req.blocks = -(-(req.kv_tokens + (1 if self.reserved else 0)) // self.bs) - req.shared_blocks

    def leave(self, req: Request) -> None:
        """Remove a member (completion or preemption), leaving its fields exact."""
        self.sync(req)
        self.n -= 1
        self.kv -= req.kv_tokens
        self.phase[(req.kv_tokens - self.G) % self.bs] -= 1
        if req.co_join == self.G:  # joined since the last step: still counted as fresh
            lt = req.last_token
            c = self.fresh[lt] - 1
            if c:
                self.fresh[lt] = c
            else:
                del self.fresh[lt]
            self.fresh_n -= 1
        req.co_base = -1  # its heap entry goes stale
        if not self.n:
            self.heap.clear()  # every entry left is stale

    def dissolve(self) -> None:
        """Every member leaves (a cohort formed for one decode run), its fields exact."""
        for _, seq, req in list(self.heap):
            if req.co_base >= 0 and req.co_seq == seq:
                self.leave(req)

    # -- queries -------------------------------------------------------------------------------------
    def blocks(self, start: int, count: int) -> int:
        """New blocks the members need for the `count` steps after `G + start` steps."""
        if count <= 0:
            return 0
        bs, ph = self.bs, self.phase
        full, rem = divmod(count, bs)
        total = full * self.n
        base = self.G + start
        for j in range(rem):
            total += ph[-(base + j) % bs]
        return total

    def steps_to_completion(self) -> int:
        """Steps until the first member emits its last token."""
        heap = self.heap
        while heap:
            g, seq, req = heap[0]
            if req.co_base >= 0 and req.co_seq == seq:
                return g - self.G
            heapq.heappop(heap)
        return 1 << 62

    def block_limit(self, k: int, free: int) -> int:
        """Most steps (≤ k, ≥ 1) whose new blocks fit in `free`; step 1 is reserved already."""
        if self.blocks(1, k - 1) <= free:
            return k
        lo, hi = 1, k  # blocks(1, lo - 1) fits, blocks(1, hi - 1) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.blocks(1, mid - 1) <= free:
                lo = mid
            else:
                hi = mid
        return lo

    # -- progress ------------------------------------------------------------------------------------
    def step(self, k: int, first: float, last: float, itl: LogHistogram) -> tuple[int, list[Request]]:
        """Advance every member k steps (ending at `first` .. `last`); return (new blocks, finished members).

        Blocks for the first step were reserved when the step was planned; the caller takes the rest.
        """
        new_blocks = self.blocks(1 if self.reserved else 0, k - (1 if self.reserved else 0))
        old = self.n - self.fresh_n
        if old:
            itl.add_one(first - self.last, old)
        for lt, c in self.fresh.items():
            itl.add_one(first - lt, c)
        self.fresh.clear()
        self.fresh_n = 0
        self.kv += self.n * k
        self.G += k
        self.last = last
        self.reserved = False
        done = []
        heap = self.heap
        while heap and heap[0][0] <= self.G:
            _, seq, req = heapq.heappop(heap)
            if req.co_base >= 0 and req.co_seq == seq:
                self.leave(req)
                done.append(req)
        return new_blocks, done
