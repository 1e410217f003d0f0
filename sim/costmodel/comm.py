"""All-reduce time: the repository's one home for collective formulas.

Tensor parallelism all-reduces each layer's activations twice (after attention and after the MLP). Two
implementations are modelled, chosen per message the way vLLM's `CudaCommunicator` does:

- custom all-reduce (vLLM/SGLang/TRT-LLM): for messages up to `custom_allreduce_max_bytes` on world sizes
  2, 4, 6, 8 within a node, when the GPUs are fully connected by NVLink (on PCIe only for 2 GPUs).
  One-shot (every rank reads every peer's whole buffer and reduces locally): `lat + (n-1)·m/bw`;
  two-shot (reduce-scatter then all-gather through peer buffers): `2·lat + 2·(n-1)/n·m/bw`. One-shot for
  2 GPUs always, else below 512 KiB (n ≤ 4) or 256 KiB (n ≤ 8), as in vLLM csrc/custom_all_reduce.cuh.
- NCCL ring: `lat + 2·(n-1)/n·m/bw`; when the GPU has a measured all-reduce curve (bytes, seconds) it sets
  the time, and the ring formula only scales it beyond the measured sizes.

`bw` is the per-GPU link bandwidth (`intra_node_bw × link_efficiency`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CUSTOM_WORLD_SIZES = (2, 4, 6, 8)
KIB = 1024


def ring_s(msg_bytes: float, n: int, bw: float, latency_s: float) -> float:
    """NCCL ring all-reduce of `msg_bytes` over n GPUs: reduce-scatter + all-gather, 2(n-1)/n of the bytes each."""
    if n <= 1:
        return 0.0
    return latency_s + 2.0 * (n - 1) / n * msg_bytes / bw


def one_shot_s(msg_bytes: float, n: int, bw: float, latency_s: float) -> float:
    """Custom one-shot all-reduce: each rank reads the n-1 peer buffers whole."""
    if n <= 1:
        return 0.0
    return latency_s + (n - 1) * msg_bytes / bw


def two_shot_s(msg_bytes: float, n: int, bw: float, latency_s: float) -> float:
    """Custom two-shot all-reduce: reduce-scatter then all-gather through peer buffers (two barriers)."""
    if n <= 1:
        return 0.0
    return 2.0 * latency_s + 2.0 * (n - 1) / n * msg_bytes / bw


def uses_one_shot(msg_bytes: float, n: int) -> bool:
    """vLLM's custom all-reduce dispatch: one-shot for 2 GPUs, or small messages on 4 / 8."""
    return n == 2 or (n <= 4 and msg_bytes < 512 * KIB) or (n <= 8 and msg_bytes < 256 * KIB)


@dataclass(frozen=True)
class AllReduce:
    """All-reduce pricing for one tensor-parallel group."""

    n: int
    bw: float  # bytes/s per GPU
    impl: str = "nccl"  # "custom" or "nccl"
    nvlink: bool = True  # GPUs fully connected by NVLink (else PCIe)
    custom_max_bytes: float = 8 * 1024 * KIB
    custom_latency_s: float = 5e-6
    nccl_latency_s: float = 3.2e-5
    measured: tuple[np.ndarray, np.ndarray] | None = None  # NCCL (bytes, seconds) for this n

    def regime(self, msg_bytes: float) -> str:
        """'one_shot', 'two_shot' or 'nccl' for a message of this size."""
        custom_ok = (
            self.impl == "custom"
            and self.n in CUSTOM_WORLD_SIZES
            and (self.nvlink or self.n == 2)
            and msg_bytes <= self.custom_max_bytes
        )
        if not custom_ok:
            return "nccl"
        return "one_shot" if uses_one_shot(msg_bytes, self.n) else "two_shot"

    def nccl(self, msg_bytes: float) -> float:
        """NCCL ring time; the measured curve where there is one (scaled by the formula outside it)."""
        model = ring_s(msg_bytes, self.n, self.bw, self.nccl_latency_s)
        if self.measured is None:
            return model
        sizes, secs = self.measured
        x = min(max(msg_bytes, float(sizes[0])), float(sizes[-1]))
        at = math.exp(float(np.interp(math.log(x), np.log(sizes), np.log(secs))))
        return at * model / ring_s(x, self.n, self.bw, self.nccl_latency_s)

    def seconds(self, msg_bytes: float) -> float:
        """One all-reduce of `msg_bytes`."""
        if self.n <= 1:
            return 0.0
        r = self.regime(msg_bytes)
        if r == "one_shot":
            return one_shot_s(msg_bytes, self.n, self.bw, self.custom_latency_s)
        if r == "two_shot":
            return two_shot_s(msg_bytes, self.n, self.bw, self.custom_latency_s)
        return self.nccl(msg_bytes)
