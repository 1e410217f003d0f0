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

`bw` is the per-GPU link bandwidth (`intra_node_bw × link_efficiency`). Between PCIe GPUs (no NVLink) the
collectives reach only `PCIE_ALLREDUCE_SHARE` of it; NCCL at its default settings also stops at a bus bandwidth
set by the box's PCIe topology (`cluster.pcie_topology`, else `GPUSpec.pcie_topology`: GPUs on the CPU's root
ports or behind PCIe switches, `PCIE_NCCL_DEFAULT_BUSBW`) whatever the PCIe generation; the custom kernel's peer
loads reach `PCIE_P2P_SHARE` of the link, and through a root complex at most `PCIE_P2P_ROOT_COMPLEX_BW`. The custom
all-reduce needs peer-to-peer access: where the GPU does not expose it (`GPUSpec.pcie_p2p` false, e.g. GeForce cards
on NVIDIA's stock driver) vLLM disables it
at start-up and every all-reduce goes to NCCL, which then stages through host memory (SHM transport:
`SHM_HOP_EXTRA_S` more latency per ring hop).

After the LM head, tensor parallelism gathers each sequence's vocabulary-parallel logits row on every rank
(`logits_terms`): an NCCL ring all-gather, `lat + (n-1)/n·m/bw` for m bytes gathered.

Not priced: the vocabulary-parallel embedding's all-reduce, one per step of tokens × hidden bytes (vLLM
`VocabParallelEmbedding.forward` ends in `tensor_model_parallel_all_reduce`). For Qwen3-32B TP2 on RTX PRO 6000
it is 977 us on a 2,048-token chunk (0.3 % of the chunk) and 73 us on a 128-sequence decode step (0.1 %); adding it
would move every TP > 1 output and must go into both cost classes (models.py and structured.py) at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hwprofiles.specs import GPUSpec
    from sim.costmodel.engine import ServingEngineConfig

CUSTOM_WORLD_SIZES = (2, 4, 6, 8)
KIB = 1024
# All-reduce between PCIe-attached GPUs runs well below the link's rate: peer traffic goes through the CPU root
# complex ("on PCI systems, the performance you get is usually determined by the bandwidth your CPU and memory can
# deliver", NCCL maintainer in NVIDIA/nccl#1639). Published nccl-tests bus bandwidths: 2 GPUs on PCIe Gen4 x16
# (32 GB/s per direction) ~21 GB/s (NVIDIA/nccl#340); 4 RTX 5090 on PCIe Gen5 x16 (64 GB/s) 35 GB/s
# (NVIDIA/nccl#1639): 0.55-0.66 of the raw rate, i.e. about 0.75 of the 0.8 `link_efficiency` already applied.
PCIE_ALLREDUCE_SHARE = 0.75
# ... and with NCCL's default settings the ring stops at a bus bandwidth set by the box's PCIe topology, not by the link
# generation. github.com/voipmonitor/rtx6kpro hardware/pcie-bandwidth.md ("NCCL AllReduce Bus Bandwidth", 8 RTX PRO
# 6000 on Gen5, `all_reduce_perf -b 32M` with NCCL's defaults): 22.2 GB/s on a dual-socket box whose GPUs sit on the
# CPUs' root ports (Festr, dual Turin, "direct-attach"), 40.1 GB/s on a single-CPU box behind four PCIe switches
# (Grimulkan). Tuning is a separate sweep (8 MB-2 GB with NCCL_MIN_NCHANNELS=8): 37.6 on the root-complex box, 39.4 /
# 41.1 on switched ones; the 35 GB/s of nccl#1639 (4 RTX 5090, Gen5) was also tuned (MIN_NCHANNELS=8, NTHREADS=256).
# A Gen4 report with defaults is close to the 22.2: 2 GPUs, 20.1-21.9 GB/s from 16 to 128 MB (NVIDIA/nccl#340,
# topology not stated). vLLM sets no NCCL channel variable, so NCCL runs at min(PCIE_ALLREDUCE_SHARE x link, the
# topology's figure), scaled with the rest by `serving_engine.allreduce_bw_scale`. `GPUSpec.pcie_topology` picks it;
# the default is `root_complex`, the path PCIE_P2P_SHARE already assumes and the common 2-GPU server. What is not
# known: both figures are 8-GPU rings (a TP2 pair on one socket may do better than 22.2), and the root-complex box is
# also cross-socket. Binds on Gen5 only: a Gen4 link gives 32 x 0.8 x 0.75 = 19.2 GB/s, below both; Gen5 64 x 0.6 =
# 38.4 GB/s, above the root-complex figure and below the switched one.
NCCL_DEFAULT_BUSBW_ROOT_COMPLEX = 22.2e9
NCCL_DEFAULT_BUSBW_SWITCH = 40.1e9
PCIE_NCCL_DEFAULT_BUSBW: dict[str, float] = {
    "root_complex": NCCL_DEFAULT_BUSBW_ROOT_COMPLEX,
    "switch": NCCL_DEFAULT_BUSBW_SWITCH,
}
# The custom (one-/two-shot) all-reduce has each GPU load its peer's buffer directly: on PCIe these are peer-to-peer
# reads, whose rate depends on the path, not on the GPU. Through a CPU root complex they run far below the link:
# p2pBandwidthLatencyTest on an AMD PCIe Gen4 server (RTX 4090s) shows ~10 GB/s for P2P reads and writes where
# host-staged copies reach 22 GB/s (NVIDIA/nccl#814), 0.31 of the 32 GB/s link.
# Behind a PCIe switch they approach the link: ~52 GB/s peer reads on RTX PRO 6000s (local-inference-lab/b12x#139).
# The share is the root-complex path's on a Gen4 link (GPUs on CPU root ports: the common 2-GPU server); behind
# switches it is kept too (the switched peer-read figure is one report, not yet a default; a switched box is
# `serving_engine.allreduce_bw_scale` away). Relative to the 0.8 `link_efficiency`: 0.3 / 0.8.
PCIE_P2P_SHARE = 0.3 / 0.8
# ... and through a root complex that rate is taken as the CPU's, not the link's: on a `root_complex` box the peer
# loads stop at this rate whatever the PCIe generation; Gen4 links are unchanged (32 x 0.3 = 9.6 GB/s, below it).
# Scaled with the rest by `serving_engine.allreduce_bw_scale`. What the value rests on, precisely: the one published
# root-complex peer-load figure is ~10 GB/s on Gen4 (RTX 4090s, AMD host; NVIDIA/nccl#814). The direct figure for
# the GPU of the LLMServingSim runs is far higher: on 4 x RTX PRO 6000 Server Edition (PCIe P2P, no NVLink; the
# box's switch/root-complex wiring is not stated) a 1.3 MB payload moves at 42.8 GB/s for one rank's loads from one
# peer and 20.6 GB/s per link when every rank loads from all three peers at once (vllm-project/vllm#56128, p50 over
# the 12 directed links). 12 GB/s is therefore not a sourced rate for this GPU: it was chosen while diagnosing the
# Qwen3-32B TP2 LLMServingSim run (benchmarks/VALIDATION.md, branch s7-engine), whose timings read ~140 us for the
# 1.3 MB one-shot, and stands only on the assumption that that box routes peer loads through a root complex.
PCIE_P2P_ROOT_COMPLEX_BW = 12e9
# Without peer access NCCL moves data through host memory (its SHM transport, "used between devices when
# peer-to-peer cannot happen", NCCL docs on NCCL_SHM_DISABLE): the host-staged copy rate is about what
# PCIE_ALLREDUCE_SHARE already allows (20-22 GB/s on a 32 GB/s Gen4 link, NVIDIA/nccl#814), but every hop pays
# the staging latency: p2pBandwidthLatencyTest measures ~14 us GPU to GPU with P2P off against 0.36-0.45 us
# with it on RTX PRO 6000 systems (github.com/voipmonitor/rtx6kpro hardware/pcie-bandwidth.md; 11-20 us on
# RTX 3090s, NVIDIA/nccl#1127). A ring all-reduce makes 2(n-1) hops, a ring all-gather n-1.
SHM_HOP_EXTRA_S = 14e-6 - 0.4e-6


def nccl_pcie_ceiling(topology: str) -> float:
    """Untuned NCCL's bus bandwidth on PCIe for a box of this topology (a name `GPUSpec` validated)."""
    try:
        return PCIE_NCCL_DEFAULT_BUSBW[topology]
    except KeyError:
        raise ValueError(
            f"pcie_topology must be one of {sorted(PCIE_NCCL_DEFAULT_BUSBW)}; found {topology!r}"
        ) from None


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
    nccl_latency_s: float = 3.2e-5  # NCCL's fixed latency with peer access (`ring_latency_s` adds SHM staging)
    measured: tuple[np.ndarray, np.ndarray] | None = None  # NCCL (bytes, seconds) for this n
    pcie: bool = False  # the GPUs reach each other over PCIe (peer traffic through the root complex)
    p2p_bw: float = 0.0  # set from bw and pcie: the rate of the custom all-reduce's peer loads
    p2p: bool = True  # peer-to-peer access works (else vLLM's `_can_p2p` fails and the custom all-reduce is off)
    bw_scale: float = 1.0  # the engine's `allreduce_bw_scale` (already in `bw`): scales the PCIe NCCL ceiling too
    topology: str = "root_complex"  # `GPUSpec.pcie_topology`: which PCIE_NCCL_DEFAULT_BUSBW ceiling applies

    def __post_init__(self) -> None:
        # custom all-reduce: peer loads; NCCL: its P2P/SHM transports at default channels (see PCIE_* above)
        object.__setattr__(self, "p2p_bw", self.bw * PCIE_P2P_SHARE if self.pcie else self.bw)
        if self.pcie and self.topology == "root_complex":
            object.__setattr__(self, "p2p_bw", min(self.p2p_bw, PCIE_P2P_ROOT_COMPLEX_BW * self.bw_scale))
        if self.pcie:
            ceiling = nccl_pcie_ceiling(self.topology) * self.bw_scale
            object.__setattr__(self, "bw", min(self.bw * PCIE_ALLREDUCE_SHARE, ceiling))

    def ring_latency_s(self, hops: int) -> float:
        """NCCL's fixed latency for a ring of `hops` steps: without peer access on PCIe (NCCL over host memory)
        each hop pays the staging latency `SHM_HOP_EXTRA_S` on top."""
        shm = self.pcie and not self.p2p
        return self.nccl_latency_s + (hops * SHM_HOP_EXTRA_S if shm else 0.0)

    def regime(self, msg_bytes: float) -> str:
        """'one_shot', 'two_shot' or 'nccl' for a message of this size."""
        custom_ok = (
            self.impl == "custom"
            and self.p2p
            and self.n in CUSTOM_WORLD_SIZES
            and (self.nvlink or self.n == 2)
            and msg_bytes <= self.custom_max_bytes
        )
        if not custom_ok:
            return "nccl"
        return "one_shot" if uses_one_shot(msg_bytes, self.n) else "two_shot"

    def nccl(self, msg_bytes: float) -> float:
        """NCCL ring time; the measured curve where there is one (scaled by the formula outside it)."""
        lat = self.ring_latency_s(2 * (self.n - 1))  # reduce-scatter + all-gather
        model = ring_s(msg_bytes, self.n, self.bw, lat)
        if self.measured is None:
            return model
        sizes, secs = self.measured
        x = min(max(msg_bytes, float(sizes[0])), float(sizes[-1]))
        at = math.exp(float(np.interp(math.log(x), np.log(sizes), np.log(secs))))
        return at * model / ring_s(x, self.n, self.bw, lat)

    def seconds(self, msg_bytes: float) -> float:
        """One all-reduce of `msg_bytes`."""
        if self.n <= 1:
            return 0.0
        r = self.regime(msg_bytes)
        if r == "one_shot":
            return one_shot_s(msg_bytes, self.n, self.p2p_bw, self.custom_latency_s)
        if r == "two_shot":
            return two_shot_s(msg_bytes, self.n, self.p2p_bw, self.custom_latency_s)
        return self.nccl(msg_bytes)


def build(
    tp: int,
    link_bw: float,
    gpu: GPUSpec,
    engine: ServingEngineConfig | None,
    nccl_latency_s: float,
    measured: tuple[np.ndarray, np.ndarray] | None,
) -> AllReduce:
    """The all-reduce a TP group of `gpu` runs: the engine's implementation (custom where it applies) at the
    engine's bandwidth share; without an engine (measured-iteration fits, fitted profiles) NCCL only."""
    pcie = gpu.intra_node_link == "pcie"
    if engine is None:
        return AllReduce(
            tp,
            link_bw,
            "nccl",
            nccl_latency_s=nccl_latency_s,
            measured=measured,
            pcie=pcie,
            p2p=gpu.pcie_p2p,
            topology=gpu.pcie_topology,
        )
    return AllReduce(
        tp,
        link_bw * engine.allreduce_bw_scale,
        engine.allreduce,
        gpu.intra_node_link == "nvlink",
        float(engine.custom_allreduce_max_bytes),
        engine.custom_allreduce_latency_s,
        engine.nccl_latency_s,
        measured,
        pcie=pcie,
        p2p=gpu.pcie_p2p,
        bw_scale=engine.allreduce_bw_scale,
        topology=gpu.pcie_topology,
    )


def logits_terms(
    engine: ServingEngineConfig | None, ar: AllReduce, vocab: int, dtype_bytes: float, mem_bw: float
) -> tuple[float, float]:
    """(fixed, per sequence) seconds after the LM head GEMM of a step that samples.

    Gather: the LM head is vocabulary-parallel, so each rank holds vocab/tp logits per sequence; vLLM V1 all-gathers
    them on every rank (`LogitsProcessor._gather_logits` -> `tensor_model_parallel_all_gather` where
    `Platform.use_all_gather()` is true, which it is under V1) and every rank samples the full row: an NCCL
    all-gather of `seqs × vocab` logits in the model's dtype (vLLM's custom all-reduce does not gather).
    Sampler: the engine's passes over each full row on the GPU (`sampler_bytes_per_logit`, at `mem_bw`).
    Without an engine (fitted profiles measured whole iterations) neither is added.
    """
    if engine is None:
        return 0.0, 0.0
    sample = vocab * engine.sampler_bytes_per_logit / mem_bw
    if ar.n <= 1:
        return 0.0, sample
    # ring all-gather: n-1 steps, each rank receives the (n-1)/n of every row it does not hold, at NCCL's rate
    return ar.ring_latency_s(ar.n - 1), (ar.n - 1) / ar.n * vocab * dtype_bytes / ar.bw + sample
