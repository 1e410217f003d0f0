"""All-to-all pricing for expert parallelism with attention data parallelism: dispatch each token to the GPUs
holding its experts, combine the experts' partial outputs back (TensorRT-LLM NVLinkOneSided, DeepEP). A token
travels at most once to each rank that owns any of its experts, and the combine reads one partial sum per such
rank; the link is NVLink inside the NVLink domain and the scale-out NIC beyond it.

Fixed latencies: TensorRT-LLM tech blog 18 ("Optimizing MoE Communication with One-Sided AlltoAll Over NVLink",
docs/source/blogs/tech_blog/blog18_..., @22de8b34d), table "ep_size=8", DeepSeek-V3 profile (hidden 7168, top-8
of 256), BF16 payloads on GB200 NVL72: dispatch 17.6-18.9 us and combine 31.0-32.7 us at 1-32 tokens per rank,
where the bytes are negligible (growing only from 64 tokens: 22.3 / 34.1 us); ep_size 16 and 32 stay within
18.4-21.1 / 30.8-34.6 us there. The combine's extra ~13 us is its top-k reduction and the acquire barrier. The
kernel is TensorRT-LLM's default inside one NVLink domain and ships in FlashInfer (`MoeAlltoAll`). Earlier
servesim charged 15 us for either (a figure attributed to DeepEP's README, whose tables give bandwidths for
NVLink kernels and 77-194 us latencies only for its RDMA low-latency kernels, i.e. no NVLink latency).
Deduplication: the same blog, "Rank-Major Buffer Layout": "Each token is sent at most once per (src -> tgt) pair
- even if multiple of its top_k experts land on the same target rank"; its bandwidth formula counts
min(ep_size, top_k) copies per token. DeepEP's normal kernels likewise send a token once per destination rank.
"""

from __future__ import annotations

from math import comb

from hwprofiles.specs import GPUSpec

DISPATCH_LATENCY_S = 18e-6  # blog 18, ep_size 8, 1-32 tokens per rank: 17.6-18.9 us (see module doc)
COMBINE_LATENCY_S = 31e-6  # blog 18, ep_size 8, 1-32 tokens per rank: 31.0-32.7 us


def link_bandwidth(gpu: GPUSpec, group: int, efficiency: float) -> float:
    """Per-GPU per-direction bandwidth an all-to-all over `group` GPUs achieves."""
    if group <= gpu.nvlink_domain:
        return gpu.intra_node_bw * efficiency
    nic = gpu.inter_node_bw if gpu.inter_node_bw is not None else gpu.host_link_bw
    return nic * efficiency


def rank_hit(k: int, num_experts: int, ep: int, groups: int | None = None, group_topk: int | None = None) -> float:
    """Probability that a given EP rank owns at least one of a token's k experts (experts laid out in contiguous
    blocks of num_experts / ep per rank). Uniform routing: 1 - C(E - E/ep, k) / C(E, k). Group-limited routing
    (DeepSeek-V3/R1: `n_group`, `topk_group`) with one expert group per rank (ep == groups): the token's experts lie
    in `group_topk` of the groups, so a rank is hit at most when its group is chosen: group_topk / groups (an upper
    bound, reached when every chosen group holds one of the k experts; DeepSeek ranks groups by their own two best
    experts' scores, so a chosen group rarely gets none)."""
    if ep <= 1:
        return 1.0
    if groups and group_topk and ep == groups:
        return group_topk / groups
    per_rank = num_experts // ep
    if num_experts - per_rank < k:
        return 1.0
    return 1.0 - comb(num_experts - per_rank, k) / comb(num_experts, k)


def remote_copies(k: int, num_experts: int, ep: int, groups: int | None = None, group_topk: int | None = None) -> float:
    """Expected copies of one token that leave its GPU in a dispatch (and partial sums that come back in the
    combine): one per other rank that owns any of its experts, (ep - 1) x `rank_hit`."""
    if ep <= 1:
        return 0.0
    return (ep - 1) * rank_hit(k, num_experts, ep, groups, group_topk)


def alltoall_s(
    tokens_per_gpu: float, copies: float, hidden: int, elem_bytes: float, ep: int, gpu: GPUSpec, efficiency: float,
    latency_s: float,
) -> float:  # fmt: skip
    """One dispatch (or combine) of `tokens_per_gpu` tokens, each sent as `copies` remote copies (`remote_copies`)
    over `ep` ranks: the kernel's fixed latency plus the bytes on the link."""
    if ep <= 1 or tokens_per_gpu <= 0:
        return 0.0
    sent = tokens_per_gpu * copies * hidden * elem_bytes
    return latency_s + sent / link_bandwidth(gpu, ep, efficiency)
