"""Build a scenario's cluster on a SimPy environment and run it to completion (or its horizon)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.cluster.disagg import Disaggregation
from sim.cluster.pools import build_cost_model, build_instances, capacity, cluster_features, pool_specs
from sim.config.scenario import Scenario
from sim.core.late import LateQueue
from sim.core.recorder import RequestLog
from sim.core.registry import ROUTERS
from sim.core.request import Request
from sim.core.rng import streams
from sim.core.steps import settle_run
from sim.errors import ServesimError
from sim.output.perfetto import Tracer
from sim.workload.generate import Requests, build_requests

__all__ = ["CountingEnvironment", "Progress", "Simulation", "build_cost_model", "capacity"]

Progress = Callable[[int, int], None]  # (arrived so far, total)


MAX_SIMULATED_S = 1e8  # past this the clock is running away (no scenario describes three years)


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts processed events (reported as `sim.events`) and bounds the run: past
    `max_events` events or `MAX_SIMULATED_S` simulated seconds it stops with one clear error."""

    def __init__(self, max_events: int | None = None) -> None:
        super().__init__()
        self.events = 0
        self.max_events = max_events if max_events is not None else 1 << 62

    def step(self) -> None:
        self.events += 1
        if self.events > self.max_events or self.now > MAX_SIMULATED_S:
            raise ServesimError(
                f"simulation stopped after {self.events - 1:,} events at {self.now:.4g} simulated s "
                f"(limits: engine.max_events={self.max_events:,}, {MAX_SIMULATED_S:g} s): a run that would not "
                "end; check rates, the cost model, horizons and periods, or raise engine.max_events"
            )
        super().step()


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
        span = float(self.requests.arrival_s[-1]) if n else 0.0
        self.interval = sc.engine.timeline_interval_s or max(0.05, span / 500.0)
        self.timeline: list[tuple[float, int, int, int, int]] = []
        self.n_arrived = 0
        self.wall_s = 0.0

    def _arrivals(self) -> Generator[simpy.Event, Any, None]:
        env, rq, log = self.env, self.requests, self.log
        arrival = rq.arrival_s.tolist()
        prompt = rq.prompt_tokens.tolist()
        output = rq.output_tokens.tolist()
        hashes = rq.hash_ids
        zeros = [0] * len(arrival)
        cls = rq.cls.tolist() if rq.cls is not None else zeros
        prio = rq.priority.tolist() if rq.priority is not None else zeros
        pred = rq.predicted.tolist() if rq.predicted is not None else [-1] * len(arrival)
        route, instances = self.router.route, self.entry
        n = len(arrival)
        tick = max(1, n // 200)
        for i in range(n):
            t = arrival[i]
            if t > env.now:
                yield env.timeout(t - env.now)
            req = Request(
                i, t, prompt[i], output[i], hashes[i] if hashes is not None else None, prio[i], cls[i], pred[i]
            )
            log.arrived(req)
            self.n_arrived = i + 1
            instances[route(req, instances, t)].enqueue(req)
            if self.progress is not None and i % tick == 0:
                self.progress(i + 1, n)
        for inst in instances:
            inst.close_arrivals()
        if self.progress is not None:
            self.progress(n, n)

    def _monitor(self) -> Generator[simpy.Event, Any, None]:
        env, rows = self.env, self.timeline
        while True:
            for inst in self.instances:
                rows.append((env.now, inst.index, inst.kv_used_blocks(), len(inst.running), len(inst.waiting)))
            if self.done.triggered:
                return
            yield env.timeout(self.interval)

    def run(self) -> Simulation:
        start = time.perf_counter()
        env = self.env
        env.process(self._arrivals())
        env.process(self._monitor())
        horizon = self.scenario.engine.horizon_s
        until = self.done if horizon is None else env.any_of([self.done, env.timeout(horizon)])
        env.run(until=until)
        if not self.done.triggered:  # stopped at the horizon
            for inst in self.instances:
                settle_run(inst, env.now)
        for inst in self.instances:
            inst.sync_all()
        self.log.flush_in_flight()
        if self.n_arrived < len(self.requests):  # requests due after the horizon never arrived: not in the run
            self.log.truncate(self.n_arrived)
            self.requests = self.requests.head(self.n_arrived)
        self.wall_s = time.perf_counter() - start
        return self

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
        return out
