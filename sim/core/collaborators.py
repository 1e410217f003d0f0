"""What an instance works with besides its scheduler and cost model, handed over at construction.

Each collaborator is optional; left out (None), its mechanism is off and costs nothing. The cluster
builders (`sim.cluster.pools`, `sim.cluster.disagg`) decide which an instance gets; the instance never has
attributes patched on afterwards. Migration needs no hook inside the instance: it drives the instance's
`KVCopies` port (`sim.core.transfers`) from outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sim.core.request import Request
from sim.core.swap import HostSwap

if TYPE_CHECKING:
    from sim.core.instance import Instance
    from sim.core.speculative import Speculation
    from sim.output.perfetto import Tracer


class PrefixCaching(Protocol):
    """What an instance needs of a prefix cache (`sim.cluster.prefix_cache.PrefixCache`): it is the instance's
    block allocator (`sim.core.kvcache.BlockAllocator`), whose free blocks may still hold shared prompt blocks."""

    total: int
    free: int
    cache: dict[int, list[int]]  # prompt-block key -> [references, free-list token]: what is cached now

    def take(self, n: int) -> None: ...

    def give(self, n: int) -> None: ...

    def freeable(self, req: Request) -> int: ...

    @property
    def used(self) -> int: ...

    def admit_blocks(self, req: Request, tokens: int | None = None) -> int:
        """Blocks `req` takes on admission (with `tokens`: its first chunk's), less cached blocks others hold."""
        ...

    def admit(self, req: Request, tokens: int | None = None) -> int:
        """Take `req`'s blocks, sharing cached ones; returns blocks copied back from the host tier."""
        ...

    def insert(self, req: Request) -> None:
        """Register `req`'s full prompt blocks computed so far as shareable."""
        ...

    def free_request(self, req: Request) -> None:
        """Give back `req`'s own blocks and drop its references to shared ones."""
        ...


class HandOff(Protocol):
    """Where a prefill instance's prefilled requests go to decode (`sim.cluster.disagg.Disaggregation`)."""

    def prefilled(self, src: Instance, req: Request, start: float, end: float) -> None:
        """`req` finished its prefill in the iteration [start, end]; its blocks stay held on `src`."""
        ...


class ReleaseListener(Protocol):
    """Wants to know when an instance frees blocks (e.g. hand-offs waiting for decode memory)."""

    def released(self, inst: Instance) -> None: ...


@dataclass(frozen=True, slots=True)
class Collaborators:
    """The optional mechanisms of one instance (None: off)."""

    host: HostSwap | None = None  # host memory: swap on preemption, host-tier prefix copies; None = recompute
    prefix_cache: PrefixCaching | None = None  # shared prompt blocks; also the instance's block allocator
    handoff: HandOff | None = None  # set on a prefill instance: decoding happens elsewhere
    on_release: ReleaseListener | None = None  # told after finished or copied-out requests free blocks
    tracer: Tracer | None = None  # writes a Perfetto trace of the run
    speculative: Speculation | None = None  # speculative decoding: per-request decode steps, no cohort
