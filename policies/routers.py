"""Built-in routers (Ciw-style: each is a small function of the candidates' state)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

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
