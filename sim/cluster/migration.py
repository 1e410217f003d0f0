"""Live migration of running requests between instances of a pool (Llumnix), priced over the link.

Every `interval_s` the migration policy (`policies/migration.py`) picks (request, source, destination)
moves. A move is a staged live copy:

1. stage 1 copies the blocks the request holds now while it keeps decoding on the source; each next
   stage copies the blocks it filled meanwhile (stages shrink as long as the copy outpaces decoding);
2. once at most `final_blocks` are left, or after `max_stages`, the source takes the request out at the
   end of its step in flight (stop-and-copy: the cohort's `leave` gives its exact state), the last
   blocks cross the link, and the destination admits it with its KV present;
3. every stage first takes the blocks it copies from the destination's free blocks (above its watermark);
   when they are not there the move is aborted cleanly: the destination's blocks go back and the
   request carries on where it was (after the stop, it is re-admitted on the source, KV intact).

While a move is in flight the request's blocks are held on both sides; the source frees its copy when
the last stage lands. Downtime (stop → usable on the destination) and counts are recorded per request.
All actions run in the late phase (`sim.core.late`), so step-by-step and fast-forward runs see the same state.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from sim.cluster.links import Link, link_bandwidth
from sim.core.instance import Instance
from sim.core.registry import MIGRATIONS
from sim.core.request import Request


@dataclass
class _Move:
    req: Request
    src: Instance
    dst: Instance
    copied: int  # blocks taken on the destination (and copied or being copied)
    preemptions: int  # the request's count when the move began: a preemption voids the copy
    started: float
    stage: int = 1
    stopped: float = math.nan  # when the source took it out (stop-and-copy began)


class Migrator:
    """Runs the migration policy and carries out its moves (see the module docstring)."""

    name = "migration"

    def __init__(self, sim: Any) -> None:
        sc = sim.scenario
        cfg = sc.cluster.migration
        self.env, self.late = sim.env, sim.late
        self.policy = MIGRATIONS.build(cfg)
        role = "decode" if sc.cluster.disaggregated else "colocated"
        self.instances: list[Instance] = [i for i in sim.instances if i.role == role]
        self.position = {inst.index: k for k, inst in enumerate(self.instances)}
        spec = sim.pools[-1]
        self.block_s = spec.capacity.bytes_per_block / link_bandwidth(sc.cluster.link, spec.gpu, spec.gpu)
        self.links = {i.index: Link(sc.cluster.link.latency_s) for i in self.instances}
        self.log = sim.log
        n = sim.log.n
        self.migrations = np.zeros(n, dtype=np.int32)
        self.downtime = np.zeros(n, dtype=np.float64)
        self.migrated_to = np.full(n, -1, dtype=np.int32)
        self.busy: set[int] = set()  # positions in `instances` with a move in flight (in or out)
        self.active: dict[int, _Move] = {}  # request id -> its move in flight
        self.counts: Counter[str] = Counter()
        self.stages: list[int] = []
        self.downtimes: list[float] = []
        if len(self.instances) > 1:
            self.late.at(self.policy.interval_s, (2, 0), self._tick)

    # -- decisions -------------------------------------------------------------------------------------
    def _tick(self) -> None:
        now = self.env.now
        if self.log.done < self.log.n:
            for req, s, d in self.policy.plan(self.instances, set(self.busy), now):
                self._start(req, self.instances[s], self.instances[d])
        self.late.at(now + self.policy.interval_s, (2, 0), self._tick)

    # -- a move ------------------------------------------------------------------------------------------
    def _copy(self, m: _Move, blocks: int, then: Any) -> None:
        _, end = self.links[m.src.index].book(self.env.now, blocks * self.block_s, blocks)
        self.late.at(end + self.links[m.src.index].latency_s, (1, m.req.id), partial(then, m))

    def _start(self, req: Request, src: Instance, dst: Instance) -> None:
        if req.migration is not None or req not in src.running or req.in_prefill:
            return
        blocks = src.blocks_for(src.exact_kv(req))
        if not dst.copies.reserve_incoming(blocks):
            self.counts["aborted_no_room"] += 1
            return
        m = _Move(req, src, dst, blocks, req.preemptions, self.env.now)
        req.migration = m
        self.active[req.id] = m
        self.busy.update((self.position[src.index], self.position[dst.index]))
        self.counts["started"] += 1
        self._copy(m, blocks, self._stage_done)

    def _stage_done(self, m: _Move) -> None:
        req, src = m.req, m.src
        if req not in src.running or req.preemptions != m.preemptions:  # finished or preempted meanwhile
            self._abort(m, "aborted_gone")
            return
        delta = src.blocks_for(src.exact_kv(req)) - m.copied
        if delta <= self.policy.final_blocks or m.stage >= self.policy.max_stages:
            src.copies.request_evict(req, partial(self._stopped, m))
            return
        if not m.dst.copies.reserve_incoming(delta):
            self._abort(m, "aborted_no_room")
            return
        m.copied += delta
        m.stage += 1
        self._copy(m, delta, self._stage_done)

    def _stopped(self, m: _Move, req: Request | None) -> None:
        """The source took the request out (normal priority): finish in the late phase of this instant."""
        if req is None or req.preemptions != m.preemptions:
            if req is not None:  # cannot happen (a preempted request is not running), but stay safe
                m.src.copies.outgoing -= 1
                m.src.copies.deliver(req, front=True, copied=False)
            self._abort(m, "aborted_gone")
            return
        m.stopped = self.env.now
        self.late.at(self.env.now, (1, m.req.id), partial(self._final, m))

    def _final(self, m: _Move) -> None:
        req = m.req
        delta = m.src.blocks_for(req.kv_tokens) - m.copied
        if delta > 0 and not m.dst.copies.reserve_incoming(delta):
            m.src.copies.outgoing -= 1
            m.src.copies.deliver(req, front=True, copied=False)  # resumes on the source with its KV, which never left
            self._abort(m, "aborted_no_room")
            return
        m.copied += max(delta, 0)
        self._copy(m, max(delta, 0), self._land)

    def _land(self, m: _Move) -> None:
        req = m.req
        m.src.copies.release(req)
        req.blocks = m.copied
        req.migration = None
        m.dst.copies.deliver(req, front=True)
        down = self.env.now - m.stopped
        self.migrations[req.id] += 1
        self.downtime[req.id] += down
        self.migrated_to[req.id] = m.dst.index
        self.downtimes.append(down)
        self.stages.append(m.stage)
        self.counts["completed"] += 1
        tracer = m.src.tracer
        if tracer is not None:
            tracer.migration(
                m.src.index,
                m.dst.index,
                m.started,
                self.env.now,
                req.id,
                stages=m.stage,
                blocks=m.copied,
                downtime_s=down,
            )
        self._done(m)

    def _abort(self, m: _Move, why: str) -> None:
        m.dst.copies.unreserve_incoming(m.copied)
        m.req.migration = None
        self.counts[why] += 1
        self._done(m)

    def _done(self, m: _Move) -> None:
        del self.active[m.req.id]
        self.busy.discard(self.position[m.src.index])
        self.busy.discard(self.position[m.dst.index])

    # -- results ---------------------------------------------------------------------------------------
    def columns(self) -> dict[str, np.ndarray]:
        return {"migrations": self.migrations, "migration_downtime_s": self.downtime, "migrated_to": self.migrated_to}

    def summary(self) -> dict[str, Any]:
        d = np.asarray(self.downtimes)
        return {
            "started": self.counts["started"],
            "completed": self.counts["completed"],
            "aborted": {k: v for k, v in self.counts.items() if k.startswith("aborted")},
            "downtime_s": {
                "mean": float(d.mean()) if d.size else math.nan,
                "p99": float(np.percentile(d, 99)) if d.size else math.nan,
                "max": float(d.max()) if d.size else math.nan,
            },
            "mean_stages": float(np.mean(self.stages)) if self.stages else math.nan,
            "blocks_copied": sum(link.blocks for link in self.links.values()),
            "link_busy_s": sum(link.busy_s for link in self.links.values()),
        }
