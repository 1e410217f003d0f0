"""All-to-all pricing for expert parallelism: dispatch tokens to the GPUs holding their experts, combine
the results back (DeepEP / NCCL all-to-all). Each GPU sends the share of its tokens' expert copies that
live elsewhere; the link is NVLink inside the NVLink domain and the scale-out NIC beyond it.
"""

from __future__ import annotations

from hwprofiles.specs import GPUSpec

# fixed cost of one all-to-all (kernel launch, barrier, NVSHMEM signalling); DeepEP's low-latency kernels
# report ~10-20 us per dispatch or combine on H800 (deepseek-ai/DeepEP README)
ALLTOALL_LATENCY_S = 15e-6


def link_bandwidth(gpu: GPUSpec, group: int, efficiency: float) -> float:
    """Per-GPU per-direction bandwidth an all-to-all over `group` GPUs achieves."""
    if group <= gpu.nvlink_domain:
        return gpu.intra_node_bw * efficiency
    nic = gpu.inter_node_bw if gpu.inter_node_bw is not None else gpu.host_link_bw
    return nic * efficiency


def alltoall_s(
    tokens_per_gpu: float, k: int, hidden: int, elem_bytes: float, ep: int, gpu: GPUSpec, efficiency: float
) -> float:
    """One dispatch (or combine) of `tokens_per_gpu` tokens, each sent to `k` experts over `ep` ranks."""
    if ep <= 1 or tokens_per_gpu <= 0:
        return 0.0
    sent = tokens_per_gpu * k * hidden * elem_bytes * (ep - 1) / ep
    return ALLTOALL_LATENCY_S + sent / link_bandwidth(gpu, ep, efficiency)
