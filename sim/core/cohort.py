"""The decode cohort: running requests that decode in lockstep, kept as aggregates.

Under continuous batching (`fcfs`, `sarathi`) every running request past its prefill decodes one token
in every decode step. Updating each request's counters every step costs O(batch) Python work per step
and per fast-forward run; instead the cohort counts its steps (`steps`) and remembers, per member, the
step count at which its fields were last written (`Request.cohort_step`). A member's true state is its
fields plus `steps − cohort_step` tokens; it is written back (`sync`) only when someone needs it —
completion, preemption, a scheduler's slow path, the horizon. Aggregates make a step O(block_size):

- `kv`: Σ KV tokens of members (the decode attention context),
- `phase[r]`: members with (kv − steps) ≡ r (mod block_size); the members needing a new KV block before
  the step after `steps + j` are those with phase ≡ −(steps + j), because blocks = ⌈kv / block_size⌉ holds,
- a heap of (step at which the member emits its last token, join ticket, request) for the next completion,
- `fresh`: previous-token times of members that joined since the last step (everyone else's previous
  token came at `last_token`, the end of the last cohort step), so pooled inter-token gaps stay exact.

A scheduler that picks which requests decode (priority, MLFQ, ...) gets a cohort of its picks for one decode
run (`form` … `dissolve`). The per-request reference lives in the tests (`tests/oracle_decode.py`), which prove
both give identical results.
"""

from __future__ import annotations

import heapq
import itertools
import math
from heapq import heappop

from sim.core.recorder import LogHistogram
from sim.core.request import Request

NEVER = 1 << 62  # `Cohort.due` of an empty heap (`steps_to_completion`'s answer then)
_JOINS = itertools.count(1)  # join tickets; only their order within one cohort matters (heap ties)


class Cohort:
    """Aggregated lockstep decoders of one instance (see the module docstring)."""

    __slots__ = (
        "block_size",
        "due",
        "fresh",
        "fresh_count",
        "heap",
        "kv",
        "last_token",
        "n",
        "need",
        "phase",
        "reserved",
        "steps",
        "ticket",
    )

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.steps = 0  # steps the cohort has taken
        self.n = 0  # members
        self.kv = 0  # Σ KV tokens of members
        self.phase = [0] * block_size
        self.heap: list[tuple[int, int, Request]] = []
        # at most the heap's least completion step (a lower bound: pops may raise the true least, and a stale top
        # counts): `step` reads the heap's top only from this step on, so the steps between completions do not load
        # the top's tuple and int, cold in memory by then (SPEED.md, s15-speed)
        self.due = 0
        self.fresh: dict[float, int] = {}
        self.fresh_count = 0
        self.last_token = math.nan
        self.reserved = False  # blocks for the next step are already taken from the allocator
        self.ticket = 0  # the last join ticket handed out
        # (steps, k, blocks(1, k - 1)) from the last `block_limit`, for the `step` that runs those k steps; None
        # once the membership changes
        self.need: tuple[int, int, int] | None = None

    # -- membership ----------------------------------------------------------------------------------
    def join(self, req: Request) -> None:
        """Add a request whose prefill is complete (its fields are exact now). While the next step is
        reserved (a swap-in during planning), the scheduler reserves the joiner's slot itself."""
        g = self.steps
        req.cohort_step = g
        req.cohort_joined = g
        self.need = None
        self.ticket = next(_JOINS)  # unique across cohorts: a request that moved on leaves stale entries behind
        req.cohort_ticket = self.ticket
        self.n += 1
        self.kv += req.kv_tokens
        self.phase[(req.kv_tokens - g) % self.block_size] += 1
        due = g + req.output - req.generated
        heapq.heappush(self.heap, (due, self.ticket, req))
        if due < self.due:
            self.due = due
        lt = req.last_token
        self.fresh[lt] = self.fresh.get(lt, 0) + 1
        self.fresh_count += 1

    def sync(self, req: Request) -> None:
        """Write a member's true state into its fields."""
        d = self.steps - req.cohort_step
        if d:
            req.generated += d
            req.kv_tokens += d
            req.last_token = self.last_token
            req.cohort_step = self.steps
        req.blocks = -(-(req.kv_tokens + (1 if self.reserved else 0)) // self.block_size) - req.shared_blocks

    def leave(self, req: Request) -> None:
        """Remove a member (completion or preemption), leaving its fields exact."""
        self.sync(req)
        self.need = None
        self.n -= 1
        self.kv -= req.kv_tokens
        self.phase[(req.kv_tokens - self.steps) % self.block_size] -= 1
        if req.cohort_joined == self.steps:  # joined since the last step: still counted as fresh
            lt = req.last_token
            c = self.fresh[lt] - 1
            if c:
                self.fresh[lt] = c
            else:
                del self.fresh[lt]
            self.fresh_count -= 1
        req.cohort_step = -1  # its heap entry goes stale
        if not self.n:
            self.heap.clear()  # every entry left is stale

    def form(self, reqs: list[Request]) -> None:
        """An empty cohort takes `reqs` (a scheduler's picks for one decode run): `join` for each, in one pass."""
        assert self.n == 0
        self.need = None
        g, bs = self.steps, self.block_size
        phase, fresh, heap = self.phase, self.fresh, self.heap
        kv = 0
        ticket = self.ticket
        for req in reqs:
            ticket = next(_JOINS)
            req.cohort_step = g
            req.cohort_joined = g
            req.cohort_ticket = ticket
            kv += req.kv_tokens
            phase[(req.kv_tokens - g) % bs] += 1
            heap.append((g + req.output - req.generated, ticket, req))
            lt = req.last_token
            fresh[lt] = fresh.get(lt, 0) + 1
        heapq.heapify(heap)
        self.due = heap[0][0] if heap else NEVER
        self.ticket = ticket
        self.n = self.fresh_count = len(reqs)
        self.kv = kv

    def dissolve(self, reqs: list[Request]) -> None:
        """Every member leaves, its fields exact (`reqs`: those `form` took; finished ones have left)."""
        g, bs, last = self.steps, self.block_size, self.last_token
        reserved = 1 if self.reserved else 0
        for req in reqs:  # `sync` inlined: this runs once per member per decode run
            if req.cohort_step >= 0:
                d = g - req.cohort_step
                if d:
                    req.generated += d
                    req.kv_tokens += d
                    req.last_token = last
                req.blocks = -(-(req.kv_tokens + reserved) // bs) - req.shared_blocks
                req.cohort_step = -1
        self.n = self.kv = self.fresh_count = 0
        self.need = None
        self.phase = [0] * self.block_size
        self.heap.clear()
        self.fresh.clear()

    # -- queries -------------------------------------------------------------------------------------
    def blocks(self, start: int, count: int) -> int:
        """New blocks the members need for the `count` steps after `steps + start` steps."""
        if count == 1:  # the common case: one step
            return self.phase[-(self.steps + start) % self.block_size]
        if count <= 0:
            return 0
        bs = self.block_size
        full, rem = divmod(count, bs)
        if not rem:
            return full * self.n
        # phases -(base + j) % bs for j < rem: a descending cyclic window, one slice or its two wrapped parts
        lo = -(self.steps + start + rem - 1) % bs
        ph = self.phase
        hi = lo + rem
        return full * self.n + (sum(ph[lo:hi]) if hi <= bs else sum(ph[lo:]) + sum(ph[: hi - bs]))

    def steps_to_completion(self) -> int:
        """Steps until the first member emits its last token."""
        heap = self.heap
        while heap:
            g, ticket, req = heap[0]
            if req.cohort_step >= 0 and req.cohort_ticket == ticket:
                return g - self.steps
            heapq.heappop(heap)
        return 1 << 62

    def block_limit(self, k: int, free: int) -> int:
        """Most steps (≤ k, ≥ 1) whose new blocks fit in `free`; step 1 is reserved already. Remembers those
        steps' new blocks (`need`) for the `step` that runs them all."""
        need = self.blocks(1, k - 1)
        if need <= free:
            self.need = (self.steps, k, need)
            return k
        lo, hi, need = 1, k, 0  # blocks(1, lo - 1) fits (it is `need`), blocks(1, hi - 1) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            got = self.blocks(1, mid - 1)
            if got <= free:
                lo, need = mid, got
            else:
                hi = mid
        self.need = (self.steps, lo, need)
        return lo

    # -- progress ------------------------------------------------------------------------------------
    def step(self, k: int, first: float, last: float, itl: LogHistogram) -> tuple[int, list[Request]]:
        """Advance every member k steps (ending at `first` .. `last`); return (new blocks, finished members).

        Blocks for the first step were reserved when the step was planned; the caller takes the rest.
        """
        steps = self.steps  # (fields read once: this runs once per decode or chunk run)
        if not self.reserved:
            new_blocks = self.blocks(0, k)
        elif k > 1:
            need = self.need  # what `block_limit` counted for these k steps, if it planned them
            ok = need is not None and need[1] == k and need[0] == steps
            new_blocks = need[2] if ok else self.blocks(1, k - 1)  # type: ignore[index]  # `ok`: need is set
        else:
            new_blocks = 0
        self.need = None
        n, fresh_count = self.n, self.fresh_count
        # `itl.add_one`, inlined: its three appends and its flush check after each value (the flush points decide
        # how the histogram's running total is summed)
        values, weights, counts, flush = itl._values, itl._weights, itl._counts, itl.FLUSH
        if n != fresh_count:
            values.append(first - self.last_token)
            weights.append(n - fresh_count)
            counts.append(1)
            if len(values) >= flush:
                itl._flush()
        if fresh_count:
            for lt, c in self.fresh.items():
                values.append(first - lt)
                weights.append(c)
                counts.append(1)
                if len(values) >= flush:
                    itl._flush()
            self.fresh.clear()
            self.fresh_count = 0
        kv = self.kv + n * k
        self.steps = steps = steps + k
        self.last_token = last
        self.reserved = False
        done: list[Request] = []
        if self.due > steps:  # no member's last token before the heap's top (the usual step): nobody finishes
            self.n = n
            self.kv = kv
            return new_blocks, done
        heap = self.heap
        while heap and heap[0][0] <= steps:
            _, ticket, req = heappop(heap)
            if req.cohort_step >= 0 and req.cohort_ticket == ticket:
                # `leave` (with `sync`), inlined: reserved is False now, and nobody joined since this step (the
                # fresh counts were just taken), so its fresh branch cannot apply
                d = steps - req.cohort_step
                if d:
                    req.generated += d
                    req.kv_tokens += d
                    req.last_token = last
                kvr = req.kv_tokens
                req.blocks = -(-kvr // self.block_size) - req.shared_blocks
                n -= 1
                kv -= kvr
                self.phase[(kvr - steps) % self.block_size] -= 1
                req.cohort_step = -1  # its heap entry goes stale
                done.append(req)
                if not n:
                    heap.clear()  # every entry left is stale
        self.due = heap[0][0] if heap else NEVER
        self.n = n
        self.kv = kv
        return new_blocks, done
