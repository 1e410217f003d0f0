"""A waiting queue kept in a policy's order, so ranking schedulers never sort the whole queue per iteration.

`RankedQueue` has the deque methods the engine and routers use (`append`, `appendleft`, `popleft`,
`remove`, `[0]`, `len`, iteration) but orders requests by `key(req)`, computed when a request is
pushed. Keys must not change while a request waits; a policy whose keys do change (a starvation
promotion) calls `rekey(req)`. Removal is lazy: a stale heap entry is skipped when it surfaces.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any

from sim.core.request import Request


class RankedQueue:
    """Min-heap of waiting requests by `key`, FIFO among equal keys."""

    __slots__ = ("_heap", "_key", "_live", "_seq", "_taken", "on_push")

    def __init__(self, key: Callable[[Request], Any], on_push: Callable[[Request], None] | None = None) -> None:
        self._key = key
        self._heap: list[tuple[Any, int, Request]] = []
        self._live: dict[int, int] = {}  # request id -> seq of its live heap entry
        self._seq = 0
        self._taken: list[tuple[Any, int, Request]] = []  # entries `ordered()` lifted off the heap
        self.on_push = on_push  # told of every request entering the queue (arrival or preemption)

    def append(self, req: Request) -> None:
        if self.on_push is not None:
            self.on_push(req)
        self._push(req)

    appendleft = append  # a preempted request goes where its key puts it

    def _push(self, req: Request) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self._key(req), self._seq, req))
        self._live[req.id] = self._seq

    def _clean(self) -> None:
        heap, live = self._heap, self._live
        while heap and live.get(heap[0][2].id) != heap[0][1]:
            heapq.heappop(heap)

    def __getitem__(self, i: int) -> Request:
        if i != 0:
            raise IndexError("a RankedQueue only exposes its head, [0]")
        self._clean()
        if not self._heap:
            raise IndexError("empty queue")
        return self._heap[0][2]

    def popleft(self) -> Request:
        self._clean()
        if not self._heap:
            raise IndexError("pop from an empty queue")
        _, _, req = heapq.heappop(self._heap)
        del self._live[req.id]
        return req

    def remove(self, req: Request) -> None:
        if self._live.pop(req.id, None) is None:
            raise ValueError(f"request {req.id} is not waiting")
        if len(self._heap) > 2 * len(self._live) + 64:  # too many stale entries: compact
            live = self._live
            self._heap = [e for e in self._heap if live.get(e[2].id) == e[1]]
            heapq.heapify(self._heap)

    def rekey(self, req: Request) -> None:
        """Re-rank a waiting request whose key changed."""
        self.remove(req)
        self._push(req)

    def __contains__(self, req: object) -> bool:
        return isinstance(req, Request) and req.id in self._live

    def smallest(self, m: int) -> list[Request]:
        """Up to `m` waiting requests in key order, left in the queue (O(m log n))."""
        out: list[tuple[Any, int, Request]] = []
        heap, live = self._heap, self._live
        while heap and len(out) < m:
            e = heapq.heappop(heap)
            if live.get(e[2].id) == e[1]:
                out.append(e)
        for e in out:
            heapq.heappush(heap, e)
        return [e[2] for e in out]

    def ordered(self) -> Iterator[Request]:
        """Waiting requests in key order, lifted off the heap lazily (O(log n) each): read only as many as
        needed, then call `put_back()` before changing the queue."""
        heap, live, taken = self._heap, self._live, self._taken
        while heap:
            e = heapq.heappop(heap)
            if live.get(e[2].id) == e[1]:
                taken.append(e)
                yield e[2]

    def put_back(self) -> None:
        """Return what `ordered()` lifted."""
        for e in self._taken:
            heapq.heappush(self._heap, e)
        self._taken.clear()

    def __len__(self) -> int:
        return len(self._live)

    def __bool__(self) -> bool:
        return bool(self._live)

    def __iter__(self) -> Iterator[Request]:
        """Waiting requests in no particular order (use `smallest` for rank order)."""
        live = self._live
        return (e[2] for e in self._heap if live.get(e[2].id) == e[1])
