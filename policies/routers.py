"""Built-in routers (Ciw-style: each is a small function of the candidates' state)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.core.registry import ROUTERS
from sim.core.request import Request
from sim.core.router import InstanceLoad, Router


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoundRobinConfig(_Strict):
    """Cycle through instances in order."""

    kind: Literal["round_robin"] = "round_robin"


class LeastRequestsConfig(_Strict):
    """Send to the instance with the fewest requests (waiting + running); ties to the lowest index."""

    kind: Literal["least_requests"] = "least_requests"


class RoundRobin:
    def __init__(self) -> None:
        self.next = 0

    def route(self, req: Request, instances: Sequence[InstanceLoad], now: float) -> int:
        i = self.next % len(instances)
        self.next = i + 1
        return i


class LeastRequests:
    def route(self, req: Request, instances: Sequence[InstanceLoad], now: float) -> int:
        best, best_n = 0, instances[0].num_requests
        for i in range(1, len(instances)):
            n = instances[i].num_requests
            if n < best_n:
                best, best_n = i, n
        return best


@ROUTERS.register("round_robin", RoundRobinConfig)
def _round_robin(cfg: RoundRobinConfig, **_: object) -> Router:
    """cycle through instances in order"""
    return RoundRobin()


@ROUTERS.register("least_requests", LeastRequestsConfig)
def _least_requests(cfg: LeastRequestsConfig, **_: object) -> Router:
    """fewest waiting + running requests"""
    return LeastRequests()


class RandomConfig(_Strict):
    """A uniformly random instance (from the scenario's `routing` stream)."""

    kind: Literal["random"] = "random"


class PowerOfTwoConfig(_Strict):
    """Sample two distinct instances at random; send to the one with fewer requests (Mitzenmacher)."""

    kind: Literal["power_of_two"] = "power_of_two"


class LeastKVConfig(_Strict):
    """The instance with the smallest fraction of KV blocks in use; ties to the lowest index."""

    kind: Literal["least_kv"] = "least_kv"


class LlumnixConfig(_Strict):
    """Llumnix dispatch: the instance with the most freeness, (free blocks − blocks its waiting requests
    need) / running requests; an instance with nothing running counts its free blocks whole."""

    kind: Literal["llumnix"] = "llumnix"


class RandomRouter:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def route(self, req: Request, instances: Sequence[InstanceLoad], now: float) -> int:
        return int(self.rng.integers(len(instances)))


class PowerOfTwo:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def route(self, req: Request, instances: Sequence[InstanceLoad], now: float) -> int:
        n = len(instances)
        if n == 1:
            return 0
        a, b = (int(x) for x in self.rng.choice(n, size=2, replace=False))
        na, nb = instances[a].num_requests, instances[b].num_requests
        return a if (na, a) <= (nb, b) else b


class LeastKV:
    def route(self, req: Request, instances: Sequence[InstanceLoad], now: float) -> int:
        return min(range(len(instances)), key=lambda i: (instances[i].kv_used_blocks() / instances[i].num_blocks, i))


def freeness(inst: InstanceLoad) -> float:
    """Llumnix's dispatch freeness: (free blocks − blocks needed by waiting requests) / running requests."""
    free = inst.num_blocks - inst.kv_used_blocks()
    need = sum(inst.admit_blocks(r) for r in inst.waiting)
    running = len(inst.running)
    return float(free - need) / running if running else float(free - need)


class Llumnix:
    def route(self, req: Request, instances: Sequence[InstanceLoad], now: float) -> int:
        best, best_f = 0, -math.inf
        for i, inst in enumerate(instances):
            f = freeness(inst)
            if f > best_f:
                best, best_f = i, f
        return best


@ROUTERS.register("random", RandomConfig)
def _random(cfg: RandomConfig, *, rng: np.random.Generator, **_: object) -> Router:
    """uniformly random instance"""
    return RandomRouter(rng)


@ROUTERS.register("power_of_two", PowerOfTwoConfig)
def _power_of_two(cfg: PowerOfTwoConfig, *, rng: np.random.Generator, **_: object) -> Router:
    """fewer requests of two random instances"""
    return PowerOfTwo(rng)


@ROUTERS.register("least_kv", LeastKVConfig)
def _least_kv(cfg: LeastKVConfig, **_: object) -> Router:
    """lowest KV-cache use"""
    return LeastKV()


@ROUTERS.register("llumnix", LlumnixConfig)
def _llumnix(cfg: LlumnixConfig, **_: object) -> Router:
    """Llumnix freeness: free KV minus waiting demand, per running request"""
    return Llumnix()


class FrontendsRoundRobinConfig(_Strict):
    """Several front ends behind a round-robin load balancer, each cycling through the instances with its own
    counter from an unknown phase: srt-slurm's nginx + `num_additional_frontends` Dynamo frontends, each with
    `--router-mode round-robin` (qiching/srt-slurm `src/srtctl/cli/mixins/frontend_stage.py`, `nginx.conf.j2`).
    With one front end it is `round_robin` from a random start."""

    kind: Literal["frontends_round_robin"] = "frontends_round_robin"
    frontends: int = Field(default=1, ge=1, le=1024)


class FrontendsRoundRobin:
    """Request k goes to front end k mod F (the balancer's turn); that front end sends it to its next instance."""

    def __init__(self, frontends: int, rng: np.random.Generator) -> None:
        self.rng, self.turn = rng, 0
        self.counters: list[int] | None = None  # each front end's next instance, drawn on first use
        self.frontends = frontends

    def route(self, req: Request, instances: Sequence[InstanceLoad], now: float) -> int:
        n = len(instances)
        if self.counters is None:
            self.counters = [int(x) for x in self.rng.integers(n, size=self.frontends)]
        f = self.turn % self.frontends
        self.turn = f + 1
        i = self.counters[f] % n
        self.counters[f] = i + 1
        return i


@ROUTERS.register("frontends_round_robin", FrontendsRoundRobinConfig)
def _frontends_round_robin(cfg: FrontendsRoundRobinConfig, *, rng: np.random.Generator, **_: object) -> Router:
    """front ends in turn, each cycling instances from its own random phase"""
    return FrontendsRoundRobin(cfg.frontends, rng)
