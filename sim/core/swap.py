"""KV blocks crossing an instance's host link (PCIe): swapped-out preemptions and host-tier prefix hits.

The copies are priced, not simulated as a separate resource: seconds incurred while planning an iteration
are added to that iteration (the link is serial, and the iteration cannot start on KV still in flight).
"""

from __future__ import annotations


class HostSwap:
    """Host memory behind one instance: `swap_preempted` chooses swap (keep progress) over recompute."""

    __slots__ = ("block_s", "pending", "swap_preempted", "total_s")

    def __init__(self, block_s: float = 0.0, swap_preempted: bool = False) -> None:
        self.block_s = block_s  # seconds to move one KV block over the host link, one way
        self.swap_preempted = swap_preempted
        self.pending = 0.0  # seconds incurred while planning, added to the next iteration
        self.total_s = 0.0  # all seconds of swap traffic priced into iterations

    def copy(self, blocks: int) -> None:
        """Book `blocks` KV blocks crossing the link (either way) before the next iteration."""
        self.pending += blocks * self.block_s

    def take(self) -> float:
        """The pending seconds, charged to the iteration about to run."""
        s, self.pending = self.pending, 0.0
        self.total_s += s
        return s
