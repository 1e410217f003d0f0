"""Migration policies (Llumnix): which running request moves from which instance to which, every tick.

The mechanism (`sim/cluster/migration.py`) prices and performs the move; a policy only chooses. It sees the
instances of one pool through the router's view (`InstanceLoad`) and must read nothing that a
fast-forward run leaves stale: freeness (from `kv_used_blocks`), queue and running lists, and each
request's priority and prefill status are exact at any time; token counts of running requests are not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from policies.routers import freeness
from sim.core.registry import MIGRATIONS
from sim.core.request import Request
from sim.core.router import InstanceLoad

Move = tuple[Request, int, int]  # (request, source index, destination index) into the instance list


class MigrationPolicy(Protocol):
    interval_s: float
    max_stages: int
    final_blocks: int

    def plan(self, instances: Sequence[InstanceLoad], busy: set[int], now: float) -> list[Move]:
        """Moves to start now; `busy` holds indices of instances with a migration in flight (in or out)."""
        ...


class LlumnixMigrationConfig(BaseModel):
    """Llumnix: balance freeness across instances, de-fragment for a blocked queue head, evacuate
    best-effort work for a waiting high-priority request. The move is a staged live copy."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["llumnix"] = "llumnix"
    interval_s: float = Field(default=0.1, gt=0, description="seconds between migration decisions")
    threshold: float = Field(
        default=3.0,
        description="freeness (free blocks minus queued demand, per running request) below which an instance "
        "migrates out; a destination must be at least this free",
    )
    max_stages: int = Field(default=3, ge=1, description="live copy stages before the stop-and-copy")
    final_blocks: int = Field(default=4, ge=0, description="stop and copy once at most this many blocks are left")
    priority_evacuation: bool = Field(
        default=True, description="move best-effort work away from an instance where a higher priority request waits"
    )


def _candidates(inst: InstanceLoad) -> list[Request]:
    """Decoding requests not already moving, most recently admitted last."""
    return [r for r in inst.running if not r.in_prefill and r.migration is None and r.kv_tokens > 0]


class LlumnixMigration:
    def __init__(self, cfg: LlumnixMigrationConfig) -> None:
        self.cfg = cfg
        self.interval_s = cfg.interval_s
        self.max_stages = cfg.max_stages
        self.final_blocks = cfg.final_blocks

    def plan(self, instances: Sequence[InstanceLoad], busy: set[int], now: float) -> list[Move]:
        if len(instances) < 2:
            return []
        th = self.cfg.threshold
        free = [freeness(i) for i in instances]
        moves: list[Move] = []
        used = set(busy)
        if self.cfg.priority_evacuation:
            moves += self._evacuate(instances, free, used)
        order = sorted(range(len(instances)), key=lambda i: (free[i], i))
        lo, hi = 0, len(order) - 1
        while lo < hi:
            s, d = order[lo], order[hi]
            if s in used:
                lo += 1
                continue
            if d in used:
                hi -= 1
                continue
            if not (free[s] < th <= free[d]):
                break
            cands = _candidates(instances[s])
            if cands:  # Llumnix moves the last-come running request (least progress, fewest blocks to copy)
                moves.append((cands[-1], s, d))
                used.update((s, d))
                hi -= 1
            lo += 1
        return moves

    def _evacuate(self, instances: Sequence[InstanceLoad], free: list[float], used: set[int]) -> list[Move]:
        """Where a waiting request outranks running ones and cannot be admitted, move the worst-ranked
        running request to the freest instance."""
        moves: list[Move] = []
        for s, inst in enumerate(instances):
            if s in used:
                continue
            best = min((r.priority for r in inst.waiting), default=None)
            if best is None:
                continue
            cands = [r for r in _candidates(inst) if r.priority > best]
            if not cands:
                continue
            head = next(r for r in inst.waiting if r.priority == best)
            room = inst.num_blocks - inst.kv_used_blocks() - inst.admit_blocks(head)
            if room >= getattr(inst, "watermark_blocks", 0):
                continue  # it gets in by itself
            d = max(
                (i for i in range(len(instances)) if i != s and i not in used),
                key=lambda i: (free[i], -i),
                default=None,
            )
            if d is None or free[d] < self.cfg.threshold:
                continue
            worst = max(r.priority for r in cands)
            victim = [r for r in cands if r.priority == worst][-1]
            moves.append((victim, s, d))
            used.update((s, d))
            free[d] = -math.inf  # one incoming move per destination per tick
        return moves


@MIGRATIONS.register("llumnix", LlumnixMigrationConfig)
def _llumnix(cfg: LlumnixMigrationConfig, **_: object) -> MigrationPolicy:
    """Llumnix live migration: freeness balancing, de-fragmentation, priority evacuation"""
    return LlumnixMigration(cfg)
