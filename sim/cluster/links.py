"""KV-cache links between instances: one FIFO link per sending instance, priced by bandwidth and latency.

A copy of b blocks takes `b × bytes per block per GPU / bandwidth` on the wire (every GPU of a tensor-
parallel group sends its own shard over its own lane, in parallel; when the two ends have different tp,
the end with fewer GPUs carries the larger shard and sets the pace), plus the link's latency once. Copies
from one instance go one after another, so a busy link shows up as queueing (`kv_transfer_wait_s`).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwprofiles.specs import GPUSpec
from sim.config.scenario import Link as LinkConfig


def link_bandwidth(cfg: LinkConfig, a: GPUSpec, b: GPUSpec, gpus: int = 1) -> float:
    """Bytes/s per GPU lane: the configured Gbit/s; else, when the two pools (`gpus` GPUs in all, one GPU model)
    fit one NVLink domain (`nvlink_domain`: an 8-GPU HGX board, a 72-GPU GB200/GB300 NVL72 rack), the slower end's
    intra-node (NVLink/PCIe) bandwidth; otherwise the pools sit on different nodes and the KV crosses the scale-out
    NICs (`inter_node_bw`, one 400/800 Gb/s ConnectX NIC per GPU on the catalogued boards), the slower end's.

    Why the NIC: TensorRT-LLM's cache transceiver (UCX or NIXL backend) and SGLang's PD transfer (mooncake /
    NIXL) move KV between nodes with GPU-direct RDMA over those NICs, each rank's shard from its own GPU (TensorRT-
    LLM tech blog 5, "Disaggregated Serving in TensorRT-LLM", "KV Cache Exchange"; Dynamo docs, "SGLang
    Disaggregated Serving": "Efficient KV cache transfer between workers using RDMA"). GPUs without a catalogued
    NIC keep the intra-node figure (as before)."""
    if cfg.bandwidth_gbps is not None:
        return cfg.bandwidth_gbps * 1e9 / 8
    one_domain = a.name == b.name and gpus <= min(a.nvlink_domain, b.nvlink_domain)
    if one_domain or a.inter_node_bw is None or b.inter_node_bw is None:
        return min(a.intra_node_bw, b.intra_node_bw)
    return min(a.inter_node_bw, b.inter_node_bw)


@dataclass
class Link:
    """The outgoing link of one instance: when it is next free, and what it has carried."""

    latency_s: float
    free_at: float = 0.0
    busy_s: float = 0.0
    copies: int = 0
    blocks: int = 0

    def book(self, ready: float, seconds: float, blocks: int, earliest_end: float = 0.0) -> tuple[float, float]:
        """Book a copy that may start at `ready` and lasts `seconds` on the wire, ending no earlier than
        `earliest_end` (data still being produced). Returns (start, end of data); the copy lands at
        `end + latency_s`."""
        start = max(ready, self.free_at)
        end = max(start + seconds, earliest_end)
        self.free_at = end
        self.busy_s += end - start
        self.copies += 1
        self.blocks += blocks
        return start, end
