"""Paged KV cache: capacity from GPU memory, and a block allocator that never goes negative.

Capacity follows vLLM: `gpu_memory_utilization × memory − weights − activation reserve`, per GPU of a
tensor-parallel group, divided by one block's bytes (block_size tokens × per-token K/V bytes / tp).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwprofiles.specs import GPUSpec, ModelSpec
from sim.core.native import mypyc_attr
from sim.errors import ServesimError

GB = 1e9


@dataclass(frozen=True)
class KVCapacity:
    num_blocks: int
    block_size: int
    bytes_per_block: float
    weight_bytes_per_gpu: float
    usable_bytes_per_gpu: float

    @property
    def tokens(self) -> int:
        return self.num_blocks * self.block_size


def kv_capacity(
    model: ModelSpec,
    gpu: GPUSpec,
    tp: int,
    block_size: int,
    gpu_memory_utilization: float,
    reserve_bytes: float,
    pp: int = 1,
) -> KVCapacity:
    """Blocks one instance holds; a clear error with the numbers when the model does not fit.

    With `pp` pipeline stages each GPU holds 1/pp of the weights (the stage's share of the tp shard) and the
    KV of its stage's layers; the stage with the most layers (ceil(L / pp)) sets how many blocks fit."""
    weights = model.weight_bytes(tp)
    per_token = model.kv_bytes_per_token(tp)
    if pp > 1:
        weights /= pp
        per_token *= -(-model.num_layers // pp) / model.num_layers
    budget = gpu.memory_bytes * gpu_memory_utilization
    free = budget - weights - reserve_bytes
    per_block = per_token * block_size
    if free < per_block:
        shape = f"{tp} x {gpu.name}" if pp == 1 else f"{tp} x {pp} (tp x pp) x {gpu.name}"
        raise ServesimError(
            f"model {model.name} does not fit on {shape}: per GPU, weights need {weights / GB:.1f} GB "
            f"+ {reserve_bytes / GB:.1f} GB reserve, but only {budget / GB:.1f} GB "
            f"({gpu_memory_utilization:.0%} of {gpu.memory_bytes / GB:.0f} GB) is usable; short by "
            f"{(weights + reserve_bytes + per_block - budget) / GB:.1f} GB — raise cluster.tp or pick a larger GPU"
        )
    return KVCapacity(int(free // per_block), block_size, per_block, weights, free)


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled (`sim.core.native`): `PrefixCache` extends it
class BlockAllocator:
    """Counts free blocks. Per-request ownership lives on the request (`Request.blocks`)."""

    __slots__ = ("free", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total

    def take(self, n: int) -> None:
        if n > self.free:
            raise AssertionError(f"KV blocks over-allocated: want {n}, free {self.free}")
        self.free -= n

    def give(self, n: int) -> None:
        self.free += n
        if self.free > self.total:
            raise AssertionError(f"KV blocks over-freed: free {self.free} > total {self.total}")

    @property
    def used(self) -> int:
        return self.total - self.free
