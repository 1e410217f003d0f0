"""Exact event times and a "late" phase for decisions that read several instances at once.

Cluster-level mechanisms (KV transfers, migration, the decode-pool router) act on instances from the
outside. For step-by-step and fast-forward runs to stay identical, such an action at time t must see
every instance *after* all of its own events at t: a step that ends at t has ended, the step that starts
at t has reserved its blocks. Two things make that so:

- `sleep_until` / `timeout_at` put t itself in SimPy's event heap (a timeout's `now + delay` can miss t by an
  ulp, and then two things "at t" would be ordered by rounding); `exact_delay` gives the delay they report;
- `LateQueue` runs actions in a phase after every normal-priority event at t (SimPy orders events of
  one time by priority), in a canonical order (by key), so ties between instances do not depend on the
  order in which SimPy happened to schedule them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from heapq import heappush
from typing import Any

import simpy
from simpy.events import EventPriority

LATE = 2  # SimPy: URGENT = 0, NORMAL = 1; larger runs later among events of the same time


def exact_delay(now: float, t: float) -> float:
    """A delay d ≥ 0 with `now + d == t` in floating point when one exists (else the closest above)."""
    if t <= now:
        return 0.0
    d = t - now
    for _ in range(8):  # nearly always exact at once; else the residual (exact, by Sterbenz) corrects it
        s = now + d
        if s == t:
            return d
        d += t - s
    while now + d < t:  # never seen: fall back to the first delay that reaches t
        d = math.nextafter(d, math.inf)
    return d


_NORMAL = 1  # simpy.events.NORMAL


class Wake:
    """What `env.timeout(d)` schedules, as the engine's own processes use it: an event that fires `d` after it is
    made, with the fields SimPy's run loop and `Process._resume` read (`callbacks`, `_ok`, `_value`; `env` and
    `_delay` as a `Timeout` has them) and its `triggered` / `processed` / `ok` / `value`. Slots, not a
    `simpy.Timeout` with its `__dict__`: one is made per event on the hot paths (chunked-10k compiled: 111 M
    instructions fewer, 1.8 % of the whole process; benchmarks/SPEED.md, s13-core). Nothing combines these with
    `&` / `|` nor waits for them outside the engine's processes (`sim.core.loop`); everything else uses
    `env.timeout`."""

    __slots__ = ("_delay", "_ok", "_value", "callbacks", "env")

    def __init__(self, env: simpy.Environment, d: float) -> None:
        self.env = env
        self.callbacks: list[Any] | None = []
        self._value: Any = None
        self._delay = d
        self._ok = True

    @property
    def triggered(self) -> bool:
        return True  # a timeout is triggered when it is made (SimPy: its value is set)

    @property
    def processed(self) -> bool:
        return self.callbacks is None

    @property
    def ok(self) -> bool:
        return self._ok

    @property
    def value(self) -> Any:
        return self._value


# what the engine's processes yield: SimPy's events and the hot paths' own timeouts
Waitable = simpy.Event | Wake


def sleep_for(env: simpy.Environment, d: float) -> Wake:
    """`env.timeout(d)` (d >= 0) without its three Python calls: the hot paths create one per event. Scheduled at
    `now + d` with the same priority and the next event id, as SimPy schedules its Timeout."""
    ev = Wake(env, d)
    queue: list[Any] = env._queue
    heappush(queue, (env._now + d, _NORMAL, next(env._eid), ev))
    return ev


def sleep_until(env: simpy.Environment, t: float) -> Wake:
    """A timeout at exactly t (now if t is past). The heap entry carries t itself, so SimPy's clock lands on t even
    where no delay d has `now + d == t` in floating point (`now` a rounding tie away from t's grid: `exact_delay`'s
    fallback); the Wake's `_delay` is only what it reports."""
    now = env._now  # the `now` property's field
    d = t - now
    if d <= 0.0:
        d, t = 0.0, now
    elif now + d != t:
        d = exact_delay(now, t)
    ev = Wake(env, d)  # `sleep_for`, inlined (one Python call per event less)
    queue: list[Any] = env._queue
    heappush(queue, (t, _NORMAL, next(env._eid), ev))
    return ev


def timeout_at(env: simpy.Environment, t: float, priority: int = 1) -> simpy.Event:
    """An event that fires at exactly `t` (or now, if t is past) with the given SimPy priority."""
    ev = simpy.Event(env)
    ev._ok = True  # what simpy.Timeout does: an event must be ok before it is scheduled
    ev._value = None
    queue: list[Any] = env._queue  # `env.schedule` at t itself (as `sleep_until`), not at `now + delay`
    heappush(queue, (max(t, env._now), EventPriority(priority), next(env._eid), ev))
    return ev


class LateQueue:
    """Actions to run at given times, each time's batch after all normal events of that time, by key."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self._due: dict[float, list[tuple[Any, int, Callable[[], None]]]] = {}
        self._seq = 0

    def at(self, t: float, key: Any, action: Callable[[], None]) -> None:
        """Run `action()` at time `t` (now if past) in the late phase; same-time actions run sorted by `key`."""
        t = max(t, self.env.now)
        self._seq += 1
        batch = self._due.get(t)
        if batch is None:
            self._due[t] = batch = []
            timeout_at(self.env, t, LATE).callbacks.append(partial(self._fired, t))
        batch.append((key, self._seq, action))

    def _fired(self, t: float, _event: simpy.Event) -> None:
        self._fire(t)

    def _fire(self, t: float) -> None:
        while True:  # actions may add more for this same time: run them in a further sorted round
            batch = self._due.pop(t, None)
            if not batch:
                return
            batch.sort(key=lambda x: (x[0], x[1]))
            self._due[t] = []  # an action adding to time t joins the next round, not a new event
            for _, _, action in batch:
                action()
            if not self._due[t]:
                del self._due[t]
                return
