"""Built-in routers (Ciw-style: each is a small function of the candidates' state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from policies.registry import ROUTERS
from policies.routing import InstanceLoad, Router
from sim.request import Request


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
