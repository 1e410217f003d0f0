"""An instance's port for KV copies in and out: disaggregation hand-offs and live migration.

Cluster mechanisms (`sim.cluster.disagg`, `sim.cluster.migration`) move a request's KV between instances.
They act from the late phase (`sim.core.late`) through this port only: reserve memory for a copy coming in,
deliver the request once its KV is here, take a decoding request out at a step boundary, free the blocks
a copy out kept. Memory is held on both ends while a copy is in flight (`outgoing`, `incoming`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sim.core.request import Request

if TYPE_CHECKING:
    from sim.core.instance import Instance

Evicted = Callable[[Request | None], None]
Admitted = Callable[[Request, float], None]


class KVCopies:
    """The KV-copy side of one instance (see the module docstring)."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.outgoing = 0  # requests whose blocks stay here while their KV is copied out
        self.incoming = 0  # blocks taken for KV copies on their way in
        self.evicting: list[tuple[Request, Evicted]] = []  # leave at the next step boundary
        # told when the scheduler takes a request whose KV was copied here into the batch, and at what time (the
        # step it joins starts then): disaggregation's decode-side first token (`sim.cluster.disagg`)
        self.on_admit: Admitted | None = None

    @property
    def in_flight(self) -> bool:
        """Memory is held for copies out of or into here (it comes back when they end)."""
        return bool(self.outgoing or self.incoming)

    def settle(self) -> int:
        """Free blocks once the step in flight ends (a fast-forward run is cut there first), so that blocks
        taken from outside now — a KV copy coming in — cannot collide with the run's own growth."""
        inst = self.inst
        inst.cut_run()
        return inst.num_blocks - inst.kv_used_blocks()

    def reserve_incoming(self, blocks: int) -> bool:
        """Take `blocks` for a KV copy coming in, if they fit above the watermark after the step in flight."""
        if self.settle() - blocks < self.inst.watermark_blocks:
            return False
        self.inst.allocator.take(blocks)
        self.incoming += blocks
        return True

    def unreserve_incoming(self, blocks: int) -> None:
        """A copy coming in was called off: its blocks are free again."""
        self.inst.allocator.give(blocks)
        self.incoming -= blocks
        self.inst.nudge()

    def deliver(self, req: Request, front: bool = False, copied: bool = True) -> None:
        """Queue a request whose KV now sits here: copied in (`req.blocks` taken by `reserve_incoming`), or,
        `copied=False`, never gone (a migration called off after the stop). The scheduler admits it like a
        swap-in that copies nothing."""
        req.kv_here = True
        if copied:
            self.incoming -= req.blocks
        inst = self.inst
        waiting = inst.waiting
        if front:
            waiting.appendleft(req)
        else:
            waiting.append(req)
        if copied:
            # an engine that plans one step ahead (`overlap_admission`) hides a copy that lands while a step runs
            # from the plan already made, as it hides a new prompt (`Instance._lagged`); the run is cut at the
            # step in flight as without the lag (one plan more than needed, the same steps)
            inst.lag_arrival(req)
        inst.nudge()

    def admitted(self, req: Request, t: float) -> None:
        """The scheduler took `req`, whose KV is here (`deliver`), into the batch at `t` (the start of the step it
        joins)."""
        if self.on_admit is not None:
            self.on_admit(req, t)

    def release(self, req: Request) -> None:
        """`req`'s KV has been copied out: free the blocks it kept here."""
        inst = self.inst
        inst.give_blocks(req)
        self.outgoing -= 1
        inst.nudge()
        inst.released()

    def request_evict(self, req: Request, done: Evicted) -> None:
        """Take a decoding request out at the end of the step in flight (a migration's stop-and-copy); `done`
        gets it with exact fields and its blocks still held here (`outgoing`), or None if it is no longer
        running here."""
        self.evicting.append((req, done))
        self.inst.nudge()

    def evict(self) -> None:
        """At a step boundary: take out the requests asked for (called by the instance's loop)."""
        todo, self.evicting = self.evicting, []
        inst = self.inst
        for req, done in todo:
            if not req.in_prefill and req in inst.running:
                inst.remove_running(req)
                self.outgoing += 1
                done(req)
            else:
                done(None)

    def hand_off(self, reqs: list[Request], start: float, end: float) -> None:
        """Prefilled requests leave for a decode instance; their blocks stay until their KV is copied out."""
        inst = self.inst
        handoff = inst.handoff
        assert handoff is not None
        gone = set(map(id, reqs))
        inst.running = [r for r in inst.running if id(r) not in gone]
        self.outgoing += len(reqs)
        for req in reqs:
            handoff.prefilled(inst, req, start, end)
