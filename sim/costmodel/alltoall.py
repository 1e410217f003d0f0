"""All-to-all pricing for expert parallelism with attention data parallelism: dispatch each token to the GPUs
holding its experts, combine the experts' partial outputs back. How depends on the engine
(`serving_engine.moe_all2all`, `MoeComm`):

- `one_sided` (TensorRT-LLM NVLinkOneSided, FlashInfer `MoeAlltoAll`; `trtllm` preset): a token travels at most
  once to each rank that owns any of its experts, and the combine reads one partial sum per such rank; the fixed
  latencies below. Only inside one NVLink domain (blog 18: "within a single NVLink domain"); an EP group that
  spans nodes is priced as `deepep` (TensorRT-LLM's DeepEP low-latency path beyond the domain).
- `allgather_reducescatter` (vLLM's default `--all2all-backend`, `ParallelConfig.all2all_backend`; SGLang's
  default `--moe-a2a-backend none`, DP attention's gather / scatter): every DP rank's tokens are all-gathered to
  every GPU, each GPU runs its experts over all of them, and the outputs are reduce-scattered back - NCCL ring
  collectives over the DP group, (dp - 1) x the busiest rank's tokens each way, nothing deduplicated
  (blog 18's "pattern 1"); with tp > 1 inside a DP rank the TP all-reduce of the MoE output follows.
- `deepep` (DeepEP low-latency kernels, SGLang `--moe-a2a-backend deepep`, `--deepep-mode low_latency` in its
  decode recipes): one message per (token, expert) - the LL dispatch writes each of a token's top-k selections into
  its expert's slot on the owning rank (csrc/kernels/internode_ll.cu `dst_expert_idx`, 9249c25), nothing
  deduplicated per rank - on the link the EP group crosses (`deepep_ll_s`).

Which method TensorRT-LLM runs depends on its release (`serving_engine.moe_alltoall_above_topk`): up to 1.2.0rc2
(2025-11-07; PR #8950 "Adjust select_alltoall_method_type" changed it after, review of 2025-11-12) its
`CutlassFusedMoE.select_alltoall_method_type` (tensorrt_llm/_torch/modules/fused_moe/fused_moe_cutlass.py; the
DeepGEMM backend subclasses it) returned `NotEnabled` unless `moe_ep_size > experts_per_token` and
`MnnvlMemory.supports_mnnvl()`, and with the all-to-all not enabled the MoE all-gathers the DP ranks' tokens and
reduce-scatters the outputs (`allgather(..., sizes=None if use_dp_padding else all_rank_num_tokens)`,
`reducescatter_or_allreduce`), NCCL collectives; issue #5824 (2025-07) quotes the same `moe_ep_size <= top_k`
rule ("the communication cost of allreduce is less than that of all2all" below it). So under that flag an EP group
no larger than a token's expert count (DeepSeek's 8 on one node, gpt-oss's 4) is priced as
`allgather_reducescatter`; a larger one keeps the engine's method. Later releases choose in
`CommunicationFactory.create_strategy` (NVLinkOneSided first, the `trtllm` preset's `one_sided`).

The link is NVLink inside the NVLink domain and the scale-out NIC beyond it. DeepEP's low-latency kernels use
NVLink wherever NVSHMEM reports the peer reachable: `nvshmemi_get_p2p_ptr(dst) != 0` -> plain warp stores over
NVLink, else IBGDA RDMA puts (DeepEP PR #173 "LL nvlink p2p", 68ae8b3, 2025-05-23); `Buffer(...,
allow_nvlink_for_low_latency_mode=True)` is the default (deep_ep/buffer.py, `NVSHMEM_DISABLE_P2P=0`), and across
the trays of a GB200 / GB300 NVL72 rack NVSHMEM's multi-node NVLink is kept on when `allow_mnnvl=True` (added
4cd9517, 2025-06-07), which SGLang always passes (python/sglang/srt/layers/moe/token_dispatcher/deepep.py,
`DeepEPBuffer.get_deepep_buffer`). So an EP group inside one NVLink domain exchanges over NVLink; the README's
low-latency table ("pure RDMA", H800 + CX7, measured before #173) prices only a group that spans domains.

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
min(ep_size, top_k) copies per token. DeepEP's normal kernels likewise send a token once per destination rank; its
low-latency kernels do not (one message per expert).

Kernel mode per step (`deepep`): SGLang resolves `--deepep-mode` per batch - `auto` (the default) runs the normal
kernels when any DP rank's batch extends (carries prompt tokens) and the low-latency kernels otherwise
(python/sglang/srt/utils.py `DeepEPMode.resolve(is_extend_in_batch)`), and its disaggregated recipes pin the
prefill workers to `normal` and the decode workers to `low_latency`. So a step that carries prompt tokens is priced
with the normal kernels (`deepep_normal_s`), a decode-only step with the low-latency ones (`deepep_ll_s`).
TensorRT-LLM's `one_sided` beyond the NVLink domain stays on the low-latency line for every step (left: its
context steps' DeepEP mode was not read in its source).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import TYPE_CHECKING, Literal

from hwprofiles.specs import GPUSpec, ModelSpec

if TYPE_CHECKING:
    from sim.costmodel.comm import AllReduce
    from sim.costmodel.engine import ServingEngineConfig
    from sim.costmodel.layout import Layout

MoeAll2All = Literal["one_sided", "allgather_reducescatter", "deepep"]

DISPATCH_LATENCY_S = 18e-6  # blog 18, ep_size 8, 1-32 tokens per rank: 17.6-18.9 us (see module doc)
COMBINE_LATENCY_S = 31e-6  # blog 18, ep_size 8, 1-32 tokens per rank: 31.0-32.7 us
# DeepEP README (deepseek-ai/DeepEP, "Low-latency kernels with pure RDMA", table of 2025-04-22 3b1045d, now
# docs/legacy.md): H800 + CX7 400 Gb/s, 128 tokens per rank, hidden 7168, top-8, FP8 dispatch / BF16 combine.
# Its bandwidths count every selected (token, expert) message, local ones included (tests/test_low_latency.py:
# `num_dispatch_comm_bytes += num_fp8_bytes * num_selections`), so its latencies are 128 x 8 messages of 7168
# values at those rates (7.3 MB / 98 GB/s = 75 us, 77 us with the FP8 scales). (EP, dispatch GB/s, combine GB/s):
DEEPEP_LL_GBPS = ((8, 98.0, 127.0), (16, 63.0, 74.0), (32, 48.0, 53.0), (64, 43.0, 46.0), (128, 39.0, 39.0),
                  (256, 39.0, 40.0))  # fmt: skip
# (EP, dispatch us, combine us) of the same table: `deepep_ll_s` draws a line from blog 18's fixed parts at zero
# bytes to these at the README's load, so both the fixed kernel time and the measured point hold.
DEEPEP_LL_US = ((8, 77.0, 114.0), (16, 118.0, 195.0), (32, 155.0, 273.0), (64, 173.0, 314.0), (128, 192.0, 369.0),
                (256, 194.0, 360.0))  # fmt: skip
DEEPEP_LL_LOAD = 128 * 8 * 7168  # the README's load: messages x values
DEEPEP_README_NIC_BPS = 50e9  # the README's CX7 InfiniBand 400 Gb/s ("~50 GB/s maximum bandwidth")


# DeepEP README, "Normal kernels with NVLink and RDMA forwarding" (deepseek-ai/DeepEP docs/legacy.md, the V1 table):
# H800 ("~160 GB/s NVLink maximum bandwidth") + CX7 400 Gb/s ("~50 GB/s maximum bandwidth"), 4096 tokens per
# batch, hidden 7168, top-4 groups, top-8 experts, FP8 dispatch / BF16 combine. Bottleneck bandwidths (GB/s):
# EP 8 is the intranode kernel, its bottleneck NVLink; EP 16-64 the internode kernels, their bottleneck RDMA.
DEEPEP_NORMAL_NVL_GBPS = (153.0, 158.0)  # intranode, EP 8: (dispatch, combine)
DEEPEP_NORMAL_RDMA_GBPS = ((16, 43.0, 43.0), (32, 58.0, 57.0), (64, 51.0, 50.0))  # internode: (EP, dispatch, combine)
DEEPEP_README_NVLINK_BPS = 160e9  # the README's H800 NVLink maximum
# The normal kernels' NVLink buffer spans at most 8 peers (csrc/kernels/configs.cuh `NUM_MAX_NVL_PEERS = 8`): an EP
# group of more ranks runs the internode kernels, RDMA between groups of 8 and NVLink forwarding inside each.
DEEPEP_NVL_PEERS = 8


def deepep_normal_s(
    tokens_per_gpu: float, k: int, num_experts: int, ep: int, hidden: int, act_bytes: float, gpu: GPUSpec,
    groups: int | None = None, group_topk: int | None = None,
) -> float:  # fmt: skip
    """DeepEP normal-kernel dispatch + combine of `tokens_per_gpu` tokens (dispatch at `act_bytes`, combine in
    bf16), at the bottleneck bandwidths of the README's normal-kernel table, counting bytes as its tests count
    them (module doc for the mode per step):
    - EP within one NVLink buffer (<= 8 peers, all on NVLink): each rank receives one copy of every token that
      has an expert on it, local rows included (tests/test_intranode.py `dispatch_bf16_nvl_recv_bytes =
      recv_x.numel() * 2`): tokens x ep x `rank_hit` rows, at the README's 153 / 158 GB/s as a share of the
      H800's ~160 GB/s NVLink, applied to this GPU's NVLink (`intra_node_bw`).
    - Beyond it: one copy per destination group of 8 (RDMA rank) that owns one of the token's experts, its own
      included (tests/test_internode.py `dispatch_bf16_rdma_send_bytes = num_rdma_token_sent * hidden * 2`),
      at the README's RDMA bottleneck rate for the smallest measured EP >= ep (EP 64's beyond), slowed for a NIC
      slower than its CX7 (`_nic_slowdown`); the NVLink forwarding inside each group overlaps (the README names
      RDMA the bottleneck).
    The fixed parts are blog 18's, as on the low-latency path: the README gives the normal kernels bandwidths
    only, and their layout kernel and CPU wait for the receive counts (legacy docs: "the CPU will wait for GPU's
    signal to arrive") are not measured there."""
    if ep <= 1 or tokens_per_gpu <= 0:
        return 0.0
    fixed = DISPATCH_LATENCY_S + COMBINE_LATENCY_S
    peers = min(DEEPEP_NVL_PEERS, gpu.nvlink_domain)
    if ep <= peers:
        rows = tokens_per_gpu * ep * rank_hit(k, num_experts, ep, groups, group_topk) * hidden
        d_gbps, c_gbps = DEEPEP_NORMAL_NVL_GBPS
        nvl = gpu.intra_node_bw / DEEPEP_README_NVLINK_BPS
        return fixed + rows * act_bytes / (d_gbps * 1e9 * nvl) + rows * 2.0 / (c_gbps * 1e9 * nvl)
    nodes = -(-ep // peers)
    rows = tokens_per_gpu * nodes * rank_hit(k, num_experts, nodes, groups, group_topk) * hidden
    _, d_gbps, c_gbps = next((r for r in DEEPEP_NORMAL_RDMA_GBPS if r[0] >= ep), DEEPEP_NORMAL_RDMA_GBPS[-1])
    return fixed + (rows * act_bytes / (d_gbps * 1e9) + rows * 2.0 / (c_gbps * 1e9)) * _nic_slowdown(gpu)


def deepep_latencies(ep: int) -> tuple[float, float]:
    """The README's (dispatch, combine) seconds for its load at the smallest measured EP size >= ep."""
    row = next((r for r in DEEPEP_LL_US if r[0] >= ep), DEEPEP_LL_US[-1])
    return row[1] * 1e-6, row[2] * 1e-6


def deepep_rates(ep: int) -> tuple[float, float]:
    """DeepEP's achieved (dispatch, combine) bytes/s at the smallest measured EP size >= ep (EP 8's below it)."""
    row = next((r for r in DEEPEP_LL_GBPS if r[0] >= ep), DEEPEP_LL_GBPS[-1])
    return row[1] * 1e9, row[2] * 1e9


def deepep_ll_s(
    tokens_per_gpu: float, topk: int, ep: int, hidden: int, act_bytes: float, gpu: GPUSpec, group: int,
    efficiency: float,
) -> float:  # fmt: skip
    """DeepEP low-latency dispatch + combine of `tokens_per_gpu` tokens, each sent as one message per selected
    expert (dispatch at `act_bytes`, combine in bf16), over the EP group's `group` GPUs (module doc).
    Inside one NVLink domain: blog 18's fixed parts (a GPU-initiated one-sided NVLink kernel, as DeepEP's P2P
    path is) plus the messages to other ranks, topk x (ep - 1) / ep a token (the ones to its own rank stay in
    HBM), at the NVLink rate. Beyond it: a line from the same fixed parts at zero bytes to the README's measured
    latency at its load (`DEEPEP_LL_US`, all topk messages counted as the README counts them), slowed by the ratio
    of a slower NIC to the README's.
    Beyond the domain this is an upper bound: since #173 the messages to peers in the sender's own NVLink node go
    over NVLink, which the README's pure-RDMA line does not see (#173's H20 table: EP 16 dispatch 193 -> 119 us,
    combine 335 -> 199 us). Inside it, #173's EP 8 P2P figures are an independent check of the NVLink formula:
    dispatch 37 + combine 59 = 96 us at 128 tokens, hidden 7168, top-8 on H20 (450 GB/s NVLink a direction, as
    H100's); this prices the same load at 102.5 us on H100 at link efficiency 0.8 (tests/test_alltoall.py)."""
    if ep <= 1 or tokens_per_gpu <= 0:
        return 0.0
    if group <= gpu.nvlink_domain:
        sent = tokens_per_gpu * topk * (ep - 1) / ep * hidden * (act_bytes + 2.0)
        return DISPATCH_LATENCY_S + COMBINE_LATENCY_S + sent / link_bandwidth(gpu, group, efficiency)
    d_s, c_s = deepep_latencies(ep)
    values = tokens_per_gpu * topk * hidden
    dispatch = (d_s - DISPATCH_LATENCY_S) * act_bytes / DEEPEP_LL_LOAD * values  # the README's per FP8 byte
    combine = (c_s - COMBINE_LATENCY_S) / DEEPEP_LL_LOAD * values  # per BF16 value, as the README's combine
    return DISPATCH_LATENCY_S + COMBINE_LATENCY_S + (dispatch + combine) * _nic_slowdown(gpu)


def _nic_slowdown(gpu: GPUSpec) -> float:
    """How much slower than the README's ConnectX-7 (400 Gb/s, 50 GB/s a GPU) this GPU's scale-out link is (1 for
    one as fast or faster: nothing measured says DeepEP gains from a faster NIC)."""
    nic = gpu.inter_node_bw if gpu.inter_node_bw is not None else gpu.host_link_bw
    return max(1.0, DEEPEP_README_NIC_BPS / nic)


def link_bandwidth(gpu: GPUSpec, group: int, efficiency: float) -> float:
    """Per-GPU per-direction bandwidth an all-to-all over `group` GPUs achieves."""
    if group <= gpu.nvlink_domain:
        return gpu.intra_node_bw * efficiency
    nic = gpu.inter_node_bw if gpu.inter_node_bw is not None else gpu.host_link_bw
    return nic * efficiency


def rank_hit(k: int, num_experts: int, ep: int, groups: int | None = None, group_topk: int | None = None) -> float:
    """Probability that a given EP rank owns at least one of a token's k experts (experts laid out in contiguous
    blocks of num_experts / ep per rank). Uniform routing: 1 - C(E - E/ep, k) / C(E, k). Group-limited routing
    (DeepSeek-V3/R1: `n_group` contiguous groups, the token's experts in `group_topk` of them) when the rank
    blocks and the groups nest (`_group_hit`); any other split falls back to uniform routing."""
    if ep <= 1:
        return 1.0
    if groups and group_topk and group_topk < groups and (groups % ep == 0 or ep % groups == 0):
        return _group_hit(k, num_experts, ep, groups, group_topk)
    per_rank = num_experts // ep
    if num_experts - per_rank < k:
        return 1.0
    return 1.0 - comb(num_experts - per_rank, k) / comb(num_experts, k)


def _group_hit(k: int, num_experts: int, ep: int, groups: int, group_topk: int) -> float:
    """`rank_hit` under group-limited routing, chosen groups taken as uniform over the groups. A rank holding
    g = groups / ep whole groups is hit when one of them is chosen: 1 - C(groups - g, topk) / C(groups, topk)
    (topk / groups at g = 1). A group split over r = ep / groups ranks: its group chosen (topk / groups), then
    one of the j = k / topk experts it gets (spread evenly; DeepSeek scores a group by its two best experts, so a
    chosen group rarely gets fewer) in the rank's 1 / r of the group: 1 - C(Eg - Eg / r, j) / C(Eg, j). Both
    count a chosen group as holding one of the token's experts, so they bound the hit rate from above; they
    meet at ep = groups and change smoothly with ep, where a uniform fallback would jump."""
    if ep <= groups:
        g = groups // ep
        return 1.0 - comb(groups - g, group_topk) / comb(groups, group_topk)
    eg, r = num_experts // groups, ep // groups
    j = max(1, round(k / group_topk))
    inside = 1.0 if eg - eg // r < j else 1.0 - comb(eg - eg // r, j) / comb(eg, j)
    return group_topk / groups * inside


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


@dataclass(frozen=True)
class MoeComm:
    """One MoE layer's token exchange under attention DP + EP, as the engine's `moe_all2all` runs it (module
    doc). `nccl_latency_s`: the engine's NCCL fixed latency (`ServingEngineConfig.nccl_latency_s`), what vLLM's
    all_gatherv / reduce_scatterv pay; `efficiency`: the cost model's link efficiency."""

    method: MoeAll2All
    gpu: GPUSpec
    ep: int
    dp: int
    tp: int
    hidden: int
    act_bytes: float  # dispatched activations (the GEMMs' input precision); the combine returns bf16
    copies: float  # `remote_copies` of one token (one_sided inside the NVLink domain)
    efficiency: float
    nccl_latency_s: float
    topk: int  # experts a token selects: DeepEP's low-latency messages a token
    num_experts: int = 0  # routing, for DeepEP's normal kernels (`deepep_normal_s`): the model's experts,
    groups: int | None = None  # its expert groups
    group_topk: int | None = None  # and the groups a token's experts lie in

    def seconds(self, m: int, prompt: bool = False) -> float:
        """Dispatch + combine of one layer when the busiest DP rank holds m tokens (without the TP all-reduce
        that `allgather_reducescatter` adds at tp > 1: `tp_allreduce`). `prompt`: the step carries prompt tokens,
        which `deepep` runs with DeepEP's normal kernels (module doc)."""
        if self.ep <= 1 or self.dp <= 1 or m <= 0:
            return 0.0
        if prompt and self.method == "deepep":
            return deepep_normal_s(m / self.tp, self.topk, self.num_experts, self.ep, self.hidden, self.act_bytes,
                                   self.gpu, self.groups, self.group_topk)  # fmt: skip
        group = self.dp * self.tp  # the instance's GPUs: NVLink or NIC
        if self.method == "allgather_reducescatter":
            # ring all-gather then reduce-scatter over the DP group: each GPU receives every other DP rank's
            # tokens (padded to the busiest rank's count: vLLM pads DP ranks to one batch size for CUDA graphs)
            bw = link_bandwidth(self.gpu, group, self.efficiency)
            moved = (self.dp - 1) * m * self.hidden
            return 2 * self.nccl_latency_s + moved * (self.act_bytes + 2.0) / bw
        per_gpu = m / self.tp
        if self.method == "one_sided" and group <= self.gpu.nvlink_domain:
            return alltoall_s(per_gpu, self.copies, self.hidden, self.act_bytes, self.ep, self.gpu,
                              self.efficiency, DISPATCH_LATENCY_S) + alltoall_s(
                per_gpu, self.copies, self.hidden, 2.0, self.ep, self.gpu, self.efficiency, COMBINE_LATENCY_S
            )  # fmt: skip
        # `deepep`, and `one_sided` beyond the domain (TensorRT-LLM's DeepEP low-latency path there)
        return deepep_ll_s(per_gpu, self.topk, self.ep, self.hidden, self.act_bytes, self.gpu, group, self.efficiency)

    @property
    def tp_allreduce(self) -> bool:
        """Whether the MoE output is all-reduced over the DP rank's TP group after the combine (vLLM FusedMoE
        `maybe_all_reduce_tensor_model_parallel` on the naive / all-gather backends; the token all-to-all
        kernels return finished sums)."""
        return self.method == "allgather_reducescatter" and self.tp > 1 and self.dp > 1 and self.ep > 1


def moe_comm(
    engine: ServingEngineConfig | None, model: ModelSpec, gpu: GPUSpec, layout: Layout, hidden: int, act_bytes: float,
    efficiency: float, ar: AllReduce,
) -> MoeComm:  # fmt: skip
    """The engine's expert-parallel token exchange for a StructuredCost (`serving_engine.moe_all2all`; without an
    engine, the field's default) at the NCCL latency of its all-reduce (`comm.AllReduce.nccl_latency_s`)."""
    method: MoeAll2All = engine.moe_all2all if engine is not None else "allgather_reducescatter"
    if engine is not None and engine.moe_alltoall_above_topk and layout.ep <= model.experts_per_token:
        method = "allgather_reducescatter"  # TensorRT-LLM <= 1.2.0rc2: no all-to-all at ep <= top_k (module doc)
    copies = remote_copies(model.experts_per_token, model.num_experts, layout.ep, model.n_group, model.topk_group)
    return MoeComm(method, gpu, layout.ep, layout.attention_dp, layout.tp, hidden, act_bytes, copies, efficiency,
                   ar.nccl_latency_s, model.experts_per_token, model.num_experts, model.n_group,
                   model.topk_group)  # fmt: skip


def prompt_comm(
    engine: ServingEngineConfig | None, model: ModelSpec, gpu: GPUSpec, layout: Layout, hidden: int, act_bytes: float,
    efficiency: float, ar: AllReduce,
) -> MoeComm | None:  # fmt: skip
    """The exchange a StructuredCost prices on steps with prompt tokens apart from `_dense`'s (`MoeComm.seconds`
    with `prompt`): DeepEP's normal kernels under `deepep`, attention DP and EP (module doc); None otherwise."""
    if engine is None or engine.moe_all2all != "deepep" or not model.num_moe_layers:
        return None
    if layout.ep <= 1 or layout.attention_dp <= 1:
        return None
    return moe_comm(engine, model, gpu, layout, hidden, act_bytes, efficiency, ar)
