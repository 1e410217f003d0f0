"""`prefix_affinity`: send a request where its prompt prefix is likely cached, unless that instance is busy.

Like SGLang's cache-aware router, it keeps its own approximate index of what each instance holds — the
prompt block ids (Mooncake `hash_ids`) it routed there, in LRU order, bounded by the instance's KV
capacity — rather than reading the instances' caches. That keeps routing a function of what the router
itself did (and of request counts), which fast-forward runs leave exact. Block ids are chained hashes,
so the leading ids a request shares with an instance's index are a shared prefix.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sim.core.registry import ROUTERS
from sim.core.request import Request
from sim.core.router import InstanceLoad, Router


class PrefixAffinityConfig(BaseModel):
    """The instance holding the longest prefix of the prompt (by its block ids), among instances within
    `max_imbalance` requests of the least loaded; no match: the least loaded."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["prefix_affinity"] = "prefix_affinity"
    max_imbalance: int = Field(
        default=8, ge=0, description="load cap: skip instances with more than (fewest + this) requests"
    )
    block_tokens: int = Field(default=512, ge=1, description="prompt tokens per block id (Mooncake: 512)")
    index_tokens: int | None = Field(
        default=None,
        ge=1,
        description="prompt tokens remembered per instance; unset: its GPU KV capacity "
        "(raise it when a host-memory tier keeps more)",
    )


class PrefixAffinity:
    def __init__(self, cfg: PrefixAffinityConfig) -> None:
        self.cfg = cfg
        self.index: list[OrderedDict[int, None]] = []
        self.capacity: list[int] = []

    def _ensure(self, instances: Sequence[InstanceLoad]) -> None:
        while len(self.index) < len(instances):
            inst = instances[len(self.index)]
            tokens = self.cfg.index_tokens or inst.num_blocks * getattr(inst, "block_size", 16)
            self.index.append(OrderedDict())
            self.capacity.append(max(1, tokens // self.cfg.block_tokens))

    def _match(self, i: int, ids: list[int]) -> int:
        idx = self.index[i]
        n = 0
        for h in ids:
            if h not in idx:
                break
            n += 1
        return n

    def route(self, req: Request, instances: Sequence[InstanceLoad], now: float) -> int:
        self._ensure(instances)
        loads = [inst.num_requests for inst in instances]
        cap = min(loads) + self.cfg.max_imbalance
        ids = [] if req.hash_ids is None else [int(h) for h in req.hash_ids]
        best, key = 0, None
        for i, load in enumerate(loads):
            if load > cap:
                continue
            k = (-self._match(i, ids) if ids else 0, load, i)
            if key is None or k < key:
                best, key = i, k
        idx, capacity = self.index[best], self.capacity[best]
        for h in ids:
            idx[h] = None
            idx.move_to_end(h)
        while len(idx) > capacity:
            idx.popitem(last=False)
        return best


@ROUTERS.register("prefix_affinity", PrefixAffinityConfig)
def _prefix_affinity(cfg: PrefixAffinityConfig, **_: object) -> Router:
    """longest cached prompt prefix (block ids), within a load cap"""
    return PrefixAffinity(cfg)
