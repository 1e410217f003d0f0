"""The core copies pieces of SimPy's private machinery for speed (`sim.core.late.sleep_for` and its `Wake`, the
event loop in `CountingEnvironment.run`, `Process._resume` in `sim.core.loop.Loop`); pyproject pins simpy below 4.2
for that reason. These tests fail if a SimPy release changes what was copied: the heap entries a timeout makes (a
`Wake` is scheduled as `env.timeout`'s `Timeout` is, with the same fields), or the order in which events run."""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import simpy

from sim.core.engine import CountingEnvironment
from sim.core.late import Waitable, Wake, exact_delay, sleep_for, sleep_until


def _entries(env: simpy.Environment) -> list[tuple[float, int, int, dict[str, Any]]]:
    """The schedule as (time, priority, event id, the timeout's own fields), in heap order."""
    out = []
    for t, prio, eid, ev in sorted(env._queue, key=lambda e: e[:3]):
        fields = {k: getattr(ev, k) for k in ("_delay", "_value", "_ok") if hasattr(ev, k)}
        out.append((t, int(prio), eid, {**fields, "type": type(ev).__name__, "callbacks": ev.callbacks}))
    return out


def _as_timeouts(entries: list[tuple[float, int, int, dict[str, Any]]]) -> list[tuple[float, int, int, dict[str, Any]]]:
    """Our entries with `Wake` named as the `Timeout` it stands for (every other field compared as it is)."""
    return [(t, p, e, {**f, "type": "Timeout" if f["type"] == "Wake" else f["type"]}) for t, p, e, f in entries]


def test_sleep_for_schedules_what_env_timeout_schedules() -> None:
    delays = [0.0, 1.5, 0.1 + 0.2, 1e-9, 3.0, 0.0]
    ours, theirs = simpy.Environment(initial_time=0.7), simpy.Environment(initial_time=0.7)
    for d in delays:
        a, b = sleep_for(ours, d), theirs.timeout(d)
        assert (a.env, a.triggered, a.processed, a.ok, a.value) == (ours, b.triggered, b.processed, b.ok, b.value)
        assert type(a) is Wake and type(b) is simpy.Timeout
    assert _as_timeouts(_entries(ours)) == _entries(theirs)
    assert {e[3]["type"] for e in _entries(ours)} == {"Wake"}
    ours.run()
    theirs.run()
    assert ours.now == theirs.now


def test_sleep_until_lands_exactly() -> None:
    env = simpy.Environment(initial_time=0.1)
    ev = sleep_until(env, 0.3)  # 0.1 + (0.3 - 0.1) != 0.3 in floating point; sleep_until must still land on it
    seen: list[float] = []
    assert ev.callbacks == []
    ev.callbacks.append(lambda _e: seen.append(env.now))
    env.run()
    assert seen == [0.3]


def test_sleep_until_schedules_what_env_timeout_of_exact_delay_schedules() -> None:
    """`sleep_until` inlines `sleep_for` and `exact_delay`; each of its three branches (t in the past, `now + d`
    inexact, plain) must push the heap entry `env.timeout(exact_delay(now, t))` pushes (priority, event id order,
    `_delay`), at t itself where SimPy's `now + d` cannot reach t."""
    now, inexact = 0.1, 0.3605956362040183  # now + (inexact - now) != inexact in floating point
    targets = [0.05, now, inexact, 2.5, now + 1e-9, 40.0]
    assert 0.05 - now <= 0.0 and now + (2.5 - now) == 2.5  # the past and the plain branch
    assert now + (inexact - now) != inexact and exact_delay(now, inexact) != inexact - now  # the inexact branch
    ours, theirs = simpy.Environment(initial_time=now), simpy.Environment(initial_time=now)
    for t in targets:
        a, b = sleep_until(ours, t), theirs.timeout(exact_delay(theirs.now, t))
        assert (a.env, a.triggered, a.processed, a.ok, a.value) == (ours, b.triggered, b.processed, b.ok, b.value)
        assert type(a) is Wake and type(b) is simpy.Timeout
    mine, simpys = _as_timeouts(_entries(ours)), _entries(theirs)
    assert [e[1:] for e in mine] == [e[1:] for e in simpys] and len(mine) == len(targets)
    # each lands on exactly max(t, now): the heap entry carries t itself. No delay d gives now + d == inexact, so
    # SimPy's timeout lands just above it (a wake an ulp late made fast-forward and stepping disagree, s15)
    assert [e[0] for e in mine] == sorted(max(t, now) for t in targets)
    assert [e[0] for e in simpys] == sorted(max(t, now) if t != inexact else now + exact_delay(now, t) for t in targets)
    assert inexact < now + exact_delay(now, inexact) <= math.nextafter(inexact, math.inf) * (1 + 1e-15)
    assert mine[0][3]["_delay"] == 0.0
    # the event ids interleave with SimPy's own timeouts as `env.timeout` would: the shared counter moves once each
    mixed_ours, mixed_theirs = simpy.Environment(initial_time=now), simpy.Environment(initial_time=now)
    for t in targets:
        sleep_until(mixed_ours, t)
        mixed_ours.timeout(0.0)
        mixed_theirs.timeout(exact_delay(now, t))
        mixed_theirs.timeout(0.0)
    got, simpy_got = _as_timeouts(_entries(mixed_ours)), _entries(mixed_theirs)
    assert [e[1:] for e in got] == [e[1:] for e in simpy_got]
    assert [x[0] for x in got] == [y[0] if y[0] != now + exact_delay(now, inexact) else inexact for y in simpy_got]


def _world(env: simpy.Environment, trace: list[tuple[float, str]]) -> simpy.Event:
    """Processes with same-time ties, spawned children, interrupts and a shared event: an order-sensitive trace."""
    done = env.event()

    def child(name: str, d: float) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(d)
        trace.append((env.now, name))

    def sleeper() -> Generator[simpy.Event, Any, None]:
        try:
            yield env.timeout(10)
        except simpy.Interrupt as i:
            trace.append((env.now, f"interrupted:{i.cause}"))

    def parent(i: int) -> Generator[simpy.Event, Any, None]:
        for k in range(4):
            yield env.timeout(0.5 * (k % 2))  # zero delays make same-time ties
            trace.append((env.now, f"p{i}.{k}"))
            env.process(child(f"c{i}.{k}", 1.0))
        if i == 2:
            s = env.process(sleeper())
            yield env.timeout(0.25)
            s.interrupt("stop")
        if i == 3:
            yield env.timeout(2.0)
            done.succeed("finished")

    for i in range(4):
        env.process(parent(i))
    return done


def test_counting_loop_runs_the_events_simpy_runs_in_the_same_order() -> None:
    plain_trace: list[tuple[float, str]] = []
    plain = simpy.Environment()
    plain_value = plain.run(until=_world(plain, plain_trace))
    ours_trace: list[tuple[float, str]] = []
    ours = CountingEnvironment()
    ours_value = ours.run(until=_world(ours, ours_trace))
    assert ours_value == plain_value == "finished"
    assert ours_trace == plain_trace and len(plain_trace) > 20
    assert ours.now == plain.now
    assert _entries(ours) == _entries(plain)  # what is left scheduled, in the same order
    # the count is every event popped: what SimPy's own `step` loop would count on the same world
    stepped = CountingEnvironment()
    until = _world(stepped, [])
    while not until.processed:
        stepped.step()
    assert ours.events == stepped.events


def _loops_world(env: simpy.Environment, start: Any, trace: list[tuple[float, str]]) -> simpy.Event:
    """Generators started by `start` (`env.process` or `Loop`) beside plain SimPy processes: same-time ties, events
    fired before they are waited for, a failed event handled, a return value and a failure of the generator."""
    done, shared = env.event(), env.event()

    def gen(i: int) -> Generator[Waitable, Any, Any]:
        for k in range(5):
            yield env.timeout(0.5 * (k % 2)) if k % 3 else sleep_until(env, env.now + 0.25 * (k % 2))
            trace.append((env.now, f"g{i}.{k}"))
        if i == 0:
            shared.succeed("shared")  # fired now: the others take it at once, without waiting (its callbacks ran)
        got = yield shared
        trace.append((env.now, f"g{i} got {got}"))
        bad = env.event()
        bad.fail(ValueError(f"bad {i}"))
        try:
            yield bad
        except ValueError as e:
            trace.append((env.now, f"g{i} caught {e}"))
        yield env.timeout(1.0)
        if i == 1:
            raise KeyError("g1 fails")
        return i

    def plain() -> Generator[Waitable, Any, None]:
        for k in range(6):
            yield env.timeout(0.5 * (k % 3)) if k % 2 else sleep_for(env, 0.25 * (k % 3))  # a Wake in SimPy's hands
            trace.append((env.now, f"plain.{k}"))
        yield env.timeout(5.0)
        done.succeed("finished")

    for i in range(3):
        start(gen(i))
        env.process(plain())  # type: ignore[arg-type]  # a Wake in SimPy's hands, as `plain` means to test
    return done


def test_a_loop_runs_a_generator_as_simpy_runs_its_process() -> None:
    """`sim.core.loop.Loop` (the engine's processes): the same trace, event ids, event count, and the same exception
    out of the run loop when a generator fails (SimPy raises a copy of it, the original as its cause)."""
    from sim.core.loop import Loop

    runs = []
    for kind in ("simpy", "loop"):
        env, trace = CountingEnvironment(), list[tuple[float, str]]()
        start = env.process if kind == "simpy" else (lambda g, env=env: Loop(env, g))
        until = _loops_world(env, start, trace)
        try:
            env.run(until=until)
        except KeyError as e:
            failed = (env.now, repr(e), repr(e.__cause__))
        left = [(t, prio, eid, e.get("_ok"), e.get("_value")) for t, prio, eid, e in _entries(env)]  # still scheduled
        runs.append((trace, failed, env.events, left, next(env._eid)))
    assert runs[0] == runs[1]
    trace, failed = runs[0][:2]
    assert failed[1:] == ("KeyError('g1 fails')", "KeyError('g1 fails')")
    assert any("caught bad" in what for _, what in trace) and len(trace) > 30


def test_a_run_woken_at_an_unreachable_time_lands_on_it() -> None:
    """The case hypothesis found (tests/test_cluster.py, disaggregated properties at 1,500 examples): a decode run
    slept from 0.000758752... to 0.004858752, which no `now + d` reaches; its wake landed an ulp late, so the
    hand-off retried at that release read a wait an ulp longer under fast-forward than under stepping."""
    now, t = 0.0007587520000000001, 0.004858752
    assert now + exact_delay(now, t) != t  # SimPy's clock cannot reach t by a delay from here
    env = simpy.Environment(initial_time=now)
    seen: list[float] = []
    wake = sleep_until(env, t)
    assert wake.callbacks is not None
    wake.callbacks.append(lambda _e: seen.append(env.now))
    env.run()
    assert seen == [t]
