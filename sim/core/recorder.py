"""Where finished requests and token gaps go: column arrays indexed by request id, and a log histogram.

Requests are dropped from memory once recorded, so a million-request run holds only the in-flight ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import sub
from typing import Any, ClassVar

import numpy as np

from sim.core.native import mypyc_attr
from sim.core.request import Request

# status codes in `RequestLog.status`
PENDING, COMPLETED, REJECTED, ABANDONED = 0, 1, 2, 3
REJECT_REASONS = ("", "exceeds_context", "exceeds_kv_cache")


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled (`sim.core.native`): the tests subclass it
class LogHistogram:
    """Streaming histogram on log-spaced bins (1 µs .. 10⁴ s): percentiles within ~0.12% of the value.

    Values are buffered in plain lists and binned in bulk, because the engine adds a few at a time; their weights
    are buffered run-length (one weight and one count per call: a run's gaps share one) and expanded at the flush.
    """

    # class constants (`ClassVar`: the compiled core, `sim.core.native`, keeps them readable on the class; one name
    # per line, as mypyc compiles only plain assignments in a class body)
    BINS_PER_DECADE: ClassVar[int] = 2000
    LO: ClassVar[float] = -6.0
    HI: ClassVar[float] = 4.0
    FLUSH = 1 << 16

    def __init__(self) -> None:
        self.nbins = int((self.HI - self.LO) * self.BINS_PER_DECADE) + 2
        self.counts = np.zeros(self.nbins, dtype=np.float64)
        self._values: list[float] = []
        self._weights: list[float] = []  # per add call: the weight of its values ...
        self._counts: list[int] = []  # ... and how many values it added
        self.total = 0.0
        self.n = 0

    def add(self, x: np.ndarray, weight: int = 1) -> None:
        """Add every value of `x`, each counted `weight` times."""
        if weight:
            self._values.extend(x.tolist())
            self._weights.append(weight)
            self._counts.append(len(x))
            if len(self._values) >= self.FLUSH:
                self._flush()

    def add_gaps(self, times: list[float], k: int, weight: int) -> None:
        """Add the k − 1 gaps between consecutive `times[:k]`, each counted `weight` times."""
        vals = self._values
        vals.extend(map(sub, times[1:k], times))  # times[i] - times[i - 1], in C (`map` stops at the shorter)
        self._weights.append(weight)
        self._counts.append(k - 1)
        if len(vals) >= self.FLUSH:
            self._flush()

    def add_one(self, x: float, weight: int = 1) -> None:
        self._values.append(x)
        self._weights.append(weight)
        self._counts.append(1)
        if len(self._values) >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        if not self._values:
            return
        x = np.fromiter(self._values, dtype=np.float64, count=len(self._values))  # fewer instructions than asarray
        w = np.repeat(np.asarray(self._weights, dtype=np.float64), self._counts)  # one weight per value, as floats
        b = np.maximum(x, 1e-300)  # bin ⌊(log10 x − LO)·BINS_PER_DECADE⌋ + 1, the same operations, in place
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log10(b, out=b)
        b -= self.LO
        b *= self.BINS_PER_DECADE
        np.floor(b, out=b)
        idx = b.astype(np.int64)
        idx += 1
        np.clip(idx, 0, self.nbins - 1, out=idx)
        idx[x <= 0] = 0
        self.counts += np.bincount(idx, weights=w, minlength=self.nbins)
        self.total += float((x * w).sum())  # not np.dot: BLAS threads would spin on the other cores
        self.n += int(w.sum())
        self._values.clear()
        self._weights.clear()
        self._counts.clear()

    def _value(self, i: int) -> float:
        if i == 0:
            return 0.0
        return float(10 ** (self.LO + (i - 0.5) / self.BINS_PER_DECADE))

    def quantile(self, q: float) -> float:
        self._flush()
        if self.n == 0:
            return math.nan
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, q * self.n, side="left"))
        return self._value(min(i, self.nbins - 1))

    def mean(self) -> float:
        self._flush()
        return self.total / self.n if self.n else math.nan

    @property
    def count(self) -> int:
        self._flush()
        return self.n


class RequestLog:
    """Final state of every request, by id. Filled as requests complete or are rejected.

    A stored request's fields are buffered in plain lists and written into the arrays in bulk (`_sync`), at most
    `FLUSH` requests later and before any array is read: six numpy scalar writes a request (each a conversion and an
    index check) cost more than six appends and one vectorised scatter (SPEED.md, s15-speed). Read the arrays through
    their properties; the values are the same, the buffer only delays them."""

    FLUSH: ClassVar[int] = 1 << 16  # requests buffered at most before they are written into the arrays

    def __init__(self, n: int) -> None:
        self.n = n
        self._first_scheduled = np.full(n, np.nan)
        self._first_token = np.full(n, np.nan)
        self._completion = np.full(n, np.nan)
        self._generated = np.zeros(n, dtype=np.int64)
        self._preemptions = np.zeros(n, dtype=np.int32)
        self._instance = np.full(n, -1, dtype=np.int32)
        self._status = np.zeros(n, dtype=np.int8)
        self.reason = np.zeros(n, dtype=np.int8)
        # stored, not yet in the arrays: ids, their fields, and their status (-1: written already, kept)
        self._ids: list[int] = []
        self._floats: list[float] = []  # first_scheduled, first_token, completion: three per request
        self._ints: list[int] = []  # generated, preemptions, instance: three per request
        self._codes: list[int] = []
        self.itl = LogHistogram()
        self.done = 0
        self.in_flight: dict[int, Request] = {}
        self.on_all_done: Any = None  # a SimPy event to succeed when every request is finished
        self.watch: Any = None  # a `sim.core.verdict.SLOWatch` when the run may stop once it misses its SLO
        # a request ended for its client (completed, rejected or abandoned) at time t: `on_end(id, t)`; `clock`
        # gives the time of the ends that have none of their own (closed-loop clients, `sim.workload.clients`)
        self.on_end: Callable[[int, float], None] | None = None
        self.clock: Callable[[], float] = lambda: math.nan

    def _sync(self) -> None:
        """Write the buffered requests into the arrays (in store order; ids are stored once each)."""
        ids = self._ids
        if not ids:
            return
        idx = np.array(ids, dtype=np.int64)
        f = np.array(self._floats, dtype=np.float64).reshape(-1, 3)
        g = np.array(self._ints, dtype=np.int64).reshape(-1, 3)
        self._first_scheduled[idx] = f[:, 0]
        self._first_token[idx] = f[:, 1]
        self._completion[idx] = f[:, 2]
        self._generated[idx] = g[:, 0]
        self._preemptions[idx] = g[:, 1]
        self._instance[idx] = g[:, 2]
        codes = np.array(self._codes, dtype=np.int64)
        set_ = codes >= 0
        self._status[idx[set_]] = codes[set_]
        ids.clear()
        self._floats.clear()
        self._ints.clear()
        self._codes.clear()

    @property
    def first_scheduled(self) -> np.ndarray:
        self._sync()
        return self._first_scheduled

    @property
    def first_token(self) -> np.ndarray:
        self._sync()
        return self._first_token

    @property
    def completion(self) -> np.ndarray:
        self._sync()
        return self._completion

    @property
    def generated(self) -> np.ndarray:
        self._sync()
        return self._generated

    @property
    def preemptions(self) -> np.ndarray:
        self._sync()
        return self._preemptions

    @property
    def instance(self) -> np.ndarray:
        self._sync()
        return self._instance

    @property
    def status(self) -> np.ndarray:
        self._sync()
        return self._status

    def truncate(self, m: int) -> None:
        """Keep the first `m` requests (those that arrived before the horizon; ids follow arrival order)."""
        self._sync()
        self.n = m
        self._first_scheduled = self._first_scheduled[:m]
        self._first_token = self._first_token[:m]
        self._completion = self._completion[:m]
        self._generated = self._generated[:m]
        self._preemptions = self._preemptions[:m]
        self._instance = self._instance[:m]
        self._status = self._status[:m]
        self.reason = self.reason[:m]

    def arrived(self, req: Request) -> None:
        self.in_flight[req.id] = req

    def _store(self, req: Request, code: int = -1) -> None:
        """Record a request's final fields (buffered, `_sync`), with status `code` (-1: as written already)."""
        i = req.id
        self._ids.append(i)
        floats, ints = self._floats, self._ints
        floats.append(req.first_scheduled)
        floats.append(req.first_token)
        floats.append(req.completion)
        ints.append(req.generated)
        ints.append(req.preemptions)
        ints.append(req.instance)
        self._codes.append(code)
        if len(self._ids) >= self.FLUSH:
            self._sync()
        del self.in_flight[i]
        self.done += 1
        if self.done == self.n and self.on_all_done is not None:
            self.on_all_done.succeed()

    def complete(self, req: Request) -> None:
        self._store(req, COMPLETED)
        if self.watch is not None:
            self.watch.completed(req)
        if self.on_end is not None:
            self.on_end(req.id, req.completion)

    def reject(self, req: Request, reason: str) -> None:
        req.reject_reason = reason
        self.reason[req.id] = REJECT_REASONS.index(reason)
        self._store(req, REJECTED)  # (buffered as `complete`'s status: no flush per rejection)
        if self.watch is not None:
            self.watch.rejected()
        if self.on_end is not None:
            self.on_end(req.id, self.clock())

    def abandon(self, req: Request) -> None:
        """The client gave up on `req` now (`workload.timeout_s`). Its fields are stored when the instance lets
        go of it (`let_go`): at once from the queue, at the end of the step in flight from the batch."""
        self._status[req.id] = ABANDONED  # in place: an in-flight id has no buffered store (no `_sync` per call)
        if self.on_end is not None:
            self.on_end(req.id, self.clock())

    def is_abandoned(self, req: Request) -> bool:
        return bool(self._status[req.id] == ABANDONED)  # ABANDONED is only ever written in place (`abandon`)

    def let_go(self, req: Request) -> None:
        """An abandoned request has left its instance: store its final fields (it completes nothing)."""
        if req.id in self.in_flight:
            req.completion = math.nan
            self._store(req)

    def flush_in_flight(self) -> None:
        """At the horizon: keep the partial state of requests still in the system (status stays pending, or
        abandoned for those their client gave up on)."""
        hook, self.on_all_done = self.on_all_done, None
        for req in list(self.in_flight.values()):
            self._store(req)
            self.done -= 1
        self.on_all_done = hook
