"""Build a scenario's cluster on a SimPy environment and run it to completion (or its horizon)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator
from heapq import heappop
from typing import Any, NoReturn

import simpy
from simpy.core import StopSimulation
from simpy.events import EventPriority

from sim.cluster.disagg import Disaggregation
from sim.cluster.pools import build_cost_model, build_instances, capacity, cluster_features, pool_specs
from sim.config.scenario import Scenario
from sim.core.late import LateQueue, Waitable, sleep_until
from sim.core.loop import Loop
from sim.core.recorder import RequestLog
from sim.core.registry import ARRIVALS, ROUTERS
from sim.core.request import Request
from sim.core.rng import streams
from sim.core.steps import settle_run
from sim.errors import ServesimError
from sim.output.perfetto import Tracer
from sim.workload.clients import ClosedLoopClients, client_timing
from sim.workload.generate import Requests, build_requests

_URGENT = EventPriority(0)  # simpy.events.URGENT

__all__ = ["CountingEnvironment", "Progress", "Simulation", "build_cost_model", "capacity"]

Progress = Callable[[int, int], None]  # (arrived so far, total)


MAX_SIMULATED_S = 1e8  # past this the clock is running away (no scenario describes three years)


_simpy_step = simpy.Environment.step  # called straight from the override: one event, one Python call less


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts processed events (reported as `sim.events`) and bounds the run: past
    `max_events` events or `MAX_SIMULATED_S` simulated seconds it stops with one clear error."""

    def __init__(self, max_events: int | None = None) -> None:
        super().__init__()
        for name in ("process", "timeout", "event", "all_of", "any_of"):  # `BoundClass.bind_early` binds only the
            setattr(self, name, getattr(self, name))  # class's own: a subclass would make a method per call
        self.events = 0
        self.max_events = max_events if max_events is not None else 1 << 62

    def step(self) -> None:
        self.events += 1
        if self.events > self.max_events or self._now > MAX_SIMULATED_S:
            self._runaway()
        _simpy_step(self)

    def _runaway(self) -> NoReturn:
        raise ServesimError(
            f"simulation stopped after {self.events - 1:,} events at {self.now:.4g} simulated s "
            f"(limits: engine.max_events={self.max_events:,}, {MAX_SIMULATED_S:g} s): a run that would not "
            "end; check rates, the cost model, horizons and periods, or raise engine.max_events"
        )

    def run(self, until: simpy.core.SimTime | simpy.Event | None = None) -> Any:
        """`simpy.Environment.run`; until an event, with `step` inlined in the loop (the engine's hot loop: two
        Python calls per event less), the same events in the same order, counted and bounded as `step` does."""
        if not isinstance(until, simpy.Event) or until.callbacks is None:
            return super().run(until)
        until.callbacks.append(StopSimulation.callback)
        queue, limit = self._queue, self.max_events
        n = self.events
        try:
            while True:
                n += 1
                if n > limit or self._now > MAX_SIMULATED_S:
                    self.events = n
                    self._runaway()
                try:
                    self._now, _, _, event = heappop(queue)
                except IndexError:
                    raise RuntimeError(
                        f'No scheduled events left but "until" event was not triggered: {until}'
                    ) from None
                callbacks, event.callbacks = event.callbacks, None  # type: ignore[assignment]  # processed (as SimPy marks it)
                try:
                    for callback in callbacks:
                        callback(event)
                except StopSimulation:  # as `simpy.Environment.step`: the callbacks left run if the run resumes
                    event.callbacks = callbacks[callbacks.index(callback) + 1 :]
                    self.schedule(event, EventPriority(-1))
                    raise
                if not event._ok and not hasattr(event, "_defused"):
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    raise exc
        except StopSimulation as stop:
            return stop.args[0]
        finally:
            self.events = n


# the young generation's collection threshold while the event loop runs (CPython's default is 700): the loop makes
# few reference cycles (a chunked-100k run leaves about 1,300 objects for the collector in all) but allocates many
# short-lived containers, and every 10th young collection scans the middle generation, every 100th (at most) the
# whole heap (pandas, pydantic, numpy: all loaded). 50,000 collects as much garbage, ~70 times less often: compiled
# chunked-100k 3.80–4.05 → 3.32–3.53 CPU s (benchmarks/SPEED.md, s13-core). Outputs do not depend on it.
GC_YOUNG_THRESHOLD = 50_000


def general_arrivals(progress: Progress | None, timeout_s: float | None) -> bool:
    """Whether `Simulation._arrivals` takes its general loop (progress reports, give-ups scheduled) rather than the
    usual run's inlined copy. A function of its own so that tests see the choice in the compiled core too
    (`sim.core.native`: a compiled method calls `_issue` directly, past any patch)."""
    return progress is not None or timeout_s is not None


def event_budget(sc: Scenario, n_requests: int) -> int:
    """Events a run may take: `engine.max_events`, or a generous default that grows with the requests."""
    return sc.engine.max_events or 50_000_000 + 5_000 * n_requests


class Simulation:
    """One run: the environment, instances, router and the log of requests."""

    def __init__(
        self,
        sc: Scenario,
        requests: Requests | None = None,
        progress: Progress | None = None,
        tracer: Tracer | None = None,
        stop_on_miss: dict[str, Any] | None = None,
    ) -> None:
        self.scenario = sc
        self.requests = requests if requests is not None else build_requests(sc)
        self.progress = progress
        self.rngs = streams(sc.seed)
        n = len(self.requests)
        self.env = CountingEnvironment(event_budget(sc, n))
        self.log = RequestLog(n)
        self.pools = pool_specs(sc)  # [colocated], or [prefill, decode] (`sim.cluster.pools`)
        self.capacity = self.pools[0].capacity  # the (first) pool's
        self.cost = self.pools[0].cost
        self.late = LateQueue(self.env)
        self.router = ROUTERS.build(self.pools[0].router, rng=self.rngs["routing"])
        self.disagg = (  # built first: the instances hand requests to it
            Disaggregation(sc, self.pools, self.env, self.late, n, self.rngs["routing"])
            if sc.cluster.disaggregated
            else None
        )
        self.instances = build_instances(
            self.env,
            sc,
            self.pools,
            self.log,
            self.rngs["policy"],
            tracer=tracer,
            disagg=self.disagg,
            spec_rng=self.rngs["speculative"],
        )
        self.pool_of = [spec for spec in self.pools for _ in range(spec.instances)]
        self.entry = [inst for inst in self.instances if inst.role != "decode"]  # where arrivals are routed
        self.features = cluster_features(self)  # disaggregation, migration, prefix caching (each optional)
        self.done = self.env.event()
        self.log.on_all_done = self.done
        self.stop: simpy.Event | None = None  # a watch's verdict is certain (`sim.core.verdict`)
        if stop_on_miss is not None:
            from sim.core.verdict import SLOWatch

            self.stop = self.env.event()
            self.log.watch = SLOWatch(stop_on_miss, n, sc.slo.model_dump(), self.stop)
        self.by_index = {inst.index: inst for inst in self.instances}
        self._cols: tuple[list[Any], ...] | None = None  # the request columns as lists (`_request`)
        self.clients: ClosedLoopClients | None = None
        if ARRIVALS.caps(sc.workload.arrival.kind).follows_completions:  # closed loop: sends follow ends
            timing = client_timing(sc)  # the client waits serving_engine.frontend_s for each response
            arr = sc.workload.arrival
            self.clients = ClosedLoopClients(self.late, arr, n, self._send, self.rngs["think"], **timing)
            self.log.on_end = self.clients.ended
            self.log.clock = lambda: self.env.now
        span = float(self.requests.arrival_s[-1]) if n and self.clients is None else 0.0
        self.interval = sc.engine.timeline_interval_s or max(0.05, span / 500.0)
        self.timeline: list[tuple[float, int, int, int, int]] = []
        self.n_arrived = 0
        self.wall_s = 0.0

    def _columns(self) -> tuple[list[Any], ...]:
        """The request columns as plain lists (once: indexing numpy arrays per request is slow)."""
        if self._cols is None:
            rq, n = self.requests, len(self.requests)
            self._cols = (
                rq.prompt_tokens.tolist(),
                rq.output_tokens.tolist(),
                rq.hash_ids if rq.hash_ids is not None else [None] * n,
                rq.priority.tolist() if rq.priority is not None else [0] * n,
                rq.cls.tolist() if rq.cls is not None else [0] * n,
                rq.predicted.tolist() if rq.predicted is not None else [-1] * n,
            )
        return self._cols

    def _request(self, i: int, t: float) -> Request:
        prompt, output, hashes, prio, cls, pred = self._columns()
        return Request(i, t, prompt[i], output[i], hashes[i], prio[i], cls[i], pred[i])

    def _issue(self, req: Request, t: float) -> None:
        """Request `req` arrives at t: routed, and given up on after `workload.timeout_s` unless it ended."""
        self.log.arrived(req)
        self.n_arrived = max(self.n_arrived, req.id + 1)
        self.entry[self.router.route(req, self.entry, t)].enqueue(req)
        timeout = self.scenario.workload.timeout_s
        if timeout is not None and req.id in self.log.in_flight:
            self.late.at(t + timeout, (3, req.id), lambda: self._give_up(req))

    def _give_up(self, req: Request) -> None:
        if req.id in self.log.in_flight and not self.log.is_abandoned(req):
            self.by_index[req.instance].abandon(req)

    def _arrivals(self) -> Generator[Waitable, Any, None]:
        env = self.env
        arrival = self.requests.arrival_s.tolist()
        n = len(arrival)
        tick = max(1, n // 200)
        if general_arrivals(self.progress, self.scenario.workload.timeout_s):
            for i in range(n):
                t = arrival[i]
                if t > env._now:
                    yield sleep_until(env, t)
                self._issue(self._request(i, t), t)
                if self.progress is not None and i % tick == 0:
                    self.progress(i + 1, n)
        else:  # `_request` and `_issue` inlined: no progress to report, no give-ups to schedule (the usual run)
            cols = zip(arrival, *self._columns(), strict=True)
            in_flight, route, entry = self.log.in_flight, self.router.route, self.entry
            for i, (t, prompt, output, hashes, prio, cls, pred) in enumerate(cols):
                if t > env._now:
                    yield sleep_until(env, t)
                req = Request(i, t, prompt, output, hashes, prio, cls, pred)
                in_flight[i] = req  # `RequestLog.arrived`
                if i >= self.n_arrived:
                    self.n_arrived = i + 1
                entry[route(req, entry, t)].enqueue(req)
        self._close_arrivals()

    def _close_arrivals(self) -> None:
        for inst in self.entry:
            inst.close_arrivals()
        if self.progress is not None:
            self.progress(len(self.requests), len(self.requests))

    def _send(self, i: int, t: float) -> None:
        """A closed-loop client sends request i at t (`sim.workload.clients`)."""
        self.requests.arrival_s[i] = t
        self._issue(self._request(i, t), t)
        if self.progress is not None:
            self.progress(i + 1, len(self.requests))
        if self.clients is not None and self.clients.done_sending:
            self._close_arrivals()

    def _monitor(self) -> Generator[simpy.Event, Any, None]:
        """The timeline: a sample every `interval`, taken before the other events of its instant (SimPy's URGENT
        priority). At a normal priority a tie would run in event-id order, which differs between a fast-forward
        run (its end was scheduled when the run began) and stepping (each step scheduled when the one before it
        ended): a sample at the instant of a run's last step would see after it in one and before it in the other."""
        env, rows, interval = self.env, self.timeline, self.interval
        while True:
            for inst in self.instances:
                rows.append((env.now, inst.index, inst.kv_used_blocks(True), len(inst.running), len(inst.waiting)))
            if self.done.triggered:
                return
            tick = simpy.Event(env)
            tick._ok = True  # what `env.timeout(interval)` makes, at URGENT priority: the same time `now + interval`
            tick._value = None
            env.schedule(tick, _URGENT, interval)
            yield tick

    def run(self) -> Simulation:
        start = time.perf_counter()
        env = self.env
        if self.clients is not None:
            self.clients.start()
        else:
            Loop(env, self._arrivals())  # `env.process` (`sim.core.loop`)
        Loop(env, self._monitor())
        horizon = self.scenario.engine.horizon_s
        ends = [self.done] + ([] if horizon is None else [env.timeout(horizon)]) + ([self.stop] if self.stop else [])
        until = ends[0] if len(ends) == 1 else env.any_of(ends)
        young, middle, old = gc.get_threshold()
        if gc.isenabled() and 0 < young < GC_YOUNG_THRESHOLD:  # a caller's own setting (or gc off) stays as it is
            gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
        try:
            env.run(until=until)
        finally:
            gc.set_threshold(young, middle, old)
        if not self.done.triggered:  # stopped at the horizon
            for inst in self.instances:
                settle_run(inst, env.now)
        for inst in self.instances:
            inst.sync_all()
        self.log.flush_in_flight()
        if self.clients is None and self.n_arrived < len(self.requests):  # due after the horizon: not in the run
            self.log.truncate(self.n_arrived)
            self.requests = self.requests.head(self.n_arrived)
        self.wall_s = time.perf_counter() - start
        return self

    @property
    def stopped_early(self) -> str:
        """Why the run stopped before its end (its SLO miss was certain), or ""."""
        return self.log.watch.reason if self.log.watch is not None else ""

    @property
    def simulated_s(self) -> float:
        return float(self.env.now)

    def instance_stats(self) -> list[dict[str, object]]:
        now = max(self.env.now, 1e-12)
        return [
            {
                "instance": inst.index,
                "iterations": inst.iterations,
                "busy_fraction": inst.busy_s / now,
                "output_tokens": inst.tokens_out,
                "kv_blocks": inst.num_blocks,
                "swap_s": inst.swap_s,
                "role": inst.role,
                "hardware": spec.gpu.name,
                "gpus": spec.tp * spec.pp,
            }
            for inst, spec in zip(self.instances, self.pool_of, strict=True)
        ]

    def extra_columns(self) -> dict[str, object]:
        """Per-request columns that the cluster features add (e.g. `kv_transfer_s`, `migrations`)."""
        out: dict[str, object] = {}
        for f in self.features:
            out.update(f.columns())
        if self.clients is not None:
            out["client"] = self.clients.client
        return out
