"""Routers: the cluster's global policy that picks an instance for each arriving request."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from sim.core.request import Request


class InstanceLoad(Protocol):
    """What a router may read of an instance (read-only)."""

    @property
    def index(self) -> int: ...

    @property
    def num_blocks(self) -> int: ...

    @property
    def waiting(self) -> Iterable[Request]: ...

    @property
    def running(self) -> list[Request]: ...

    @property
    def num_requests(self) -> int: ...

    def kv_used_blocks(self) -> int: ...

    def admit_blocks(self, req: Request) -> int: ...


class Router(Protocol):
    def route(self, req: Request, instances: Sequence[InstanceLoad], now: float) -> int:
        """Index of the instance that gets `req`."""
        ...
