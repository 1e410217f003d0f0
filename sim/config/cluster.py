"""The cluster's shape in a scenario: instances × tp (× pp, attention DP, EP), or prefill and decode pools
(disaggregated), the KV-copy link between instances, the router and live migration."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hwprofiles import GPUSpec
from sim.config.fields import Int, MigrationConfig, RouterConfig, SchedulerConfig, Strict, known_gpu_name
from sim.config.limits import MAX_INSTANCES, MAX_TP
from sim.core.registry import ROUTERS
from sim.costmodel.layout import Layout


class Link(Strict):
    """The path a KV cache takes between instances (prefill → decode, or a migration): one FIFO link per
    sending instance; each GPU of a tensor-parallel group sends its shard over its own lane."""

    bandwidth_gbps: float | None = Field(
        default=None,
        ge=1e-3,
        le=1e6,
        description="Gbit/s per GPU lane; unset: the GPUs' intra_node_bw (NVLink) when both pools fit one NVLink "
        "domain, else their inter_node_bw (scale-out NIC)",
    )
    latency_s: float = Field(default=0.0, ge=0, le=3600, description="fixed cost per copy (setup, last-hop latency)")


class Pool(Strict):
    """One pool of a disaggregated cluster: its own instance count, tp, GPU and (optionally) policies."""

    instances: Int = Field(default=1, ge=1, le=MAX_INSTANCES)
    tp: Int = Field(default=1, ge=1, le=MAX_TP, description="tensor-parallel GPUs per instance")
    pp: Int = Field(default=1, ge=1, le=1024, description="pipeline stages per instance (each of tp GPUs)")
    attention_dp: Int = Field(
        default=1, ge=1, le=MAX_INSTANCES, description="attention data-parallel ranks per instance (MoE)"
    )
    ep: Int = Field(
        default=1, ge=1, le=MAX_INSTANCES, description="expert-parallel ranks (MoE); moe_tp x ep = tp x attention_dp"
    )
    moe_tp: int | None = Field(
        default=None, ge=1, description="tensor parallelism inside each expert; unset: tp x attention_dp / ep"
    )
    hardware: str | GPUSpec | None = Field(default=None, description="unset: the scenario's `hardware`")
    scheduler: SchedulerConfig | None = Field(default=None, description="unset: the scenario's `scheduler`")
    router: RouterConfig | None = Field(
        default=None,
        description="picks an instance of this pool (prefill: on arrival, default cluster.router; decode: when "
        "a prefill ends, once: the request waits at that instance for room; default least_kv)",
    )

    @field_validator("hardware", mode="before")
    @classmethod
    def _known_gpu(cls, v: Any) -> Any:
        return known_gpu_name(v)

    @property
    def layout(self) -> Layout:
        return Layout(self.tp, self.attention_dp, self.ep, self.moe_tp)


class Cluster(Strict):
    instances: Int = Field(default=1, ge=1, le=MAX_INSTANCES)
    tp: Int = Field(default=1, ge=1, le=MAX_TP, description="tensor-parallel GPUs per instance")
    attention_dp: Int = Field(
        default=1, ge=1, le=MAX_INSTANCES, description="attention data-parallel ranks per instance (MoE)"
    )
    ep: Int = Field(
        default=1, ge=1, le=MAX_INSTANCES, description="expert-parallel ranks (MoE); moe_tp x ep = tp x attention_dp"
    )
    moe_tp: int | None = Field(
        default=None, ge=1, description="tensor parallelism inside each expert; unset: tp x attention_dp / ep"
    )
    pp: Int = Field(
        default=1, ge=1, le=1024, description="pipeline stages per instance: layers split over pp groups of tp GPUs"
    )
    pp_link: Link = Field(
        default_factory=Link, description="activations between pipeline stages (default: the GPUs' NVLink/PCIe)"
    )
    router: RouterConfig = Field(default_factory=lambda: ROUTERS.get("round_robin").config())
    prefill: Pool | None = Field(default=None, description="disaggregated: the prefill pool (with `decode`)")
    decode: Pool | None = Field(default=None, description="disaggregated: the decode pool (with `prefill`)")
    link: Link = Field(default_factory=Link, description="KV copies between instances")
    kv_transfer: Literal["layerwise", "serialized"] = Field(
        default="layerwise",
        description="prefill→decode copy: overlapped layer by layer with the prefill, or after it",
    )
    migration: MigrationConfig | None = Field(
        default=None, description="live migration of running requests between instances of a pool (Llumnix)"
    )
    idle_power_fraction: float = Field(
        default=0.2, ge=0, le=1, description="GPU power when idle, as a fraction of TDP (power model)"
    )
    pcie_topology: Literal["root_complex", "switch"] | None = Field(
        default=None,
        description="the box's PCIe wiring for every pool's GPUs: on the CPU's root ports (root_complex) or behind "
        "PCIe switches (switch); sets untuned NCCL's ceiling (sim/costmodel/comm.py); unset: the GPU spec's",
    )

    @model_validator(mode="after")
    def _pools(self) -> Cluster:
        if (self.prefill is None) != (self.decode is None):
            raise ValueError("a disaggregated cluster needs both `prefill` and `decode` pools")
        if self.prefill is not None and (self.instances, self.tp, self.pp) != (1, 1, 1):  # unset, or a dumped run
            raise ValueError("with prefill/decode pools, give instances, tp and pp per pool, not on the cluster")
        return self

    @property
    def disaggregated(self) -> bool:
        return self.prefill is not None

    def in_box(self, gpu: GPUSpec) -> GPUSpec:
        """`gpu` as wired in this cluster's box: the PCIe topology belongs to the server, not to the GPU model, so
        `cluster.pcie_topology` (when set) wins over the spec's; unset, the very same spec object."""
        if self.pcie_topology is None or self.pcie_topology == gpu.pcie_topology:
            return gpu
        return gpu.model_copy(update={"pcie_topology": self.pcie_topology})

    @property
    def layout(self) -> Layout:
        return Layout(self.tp, self.attention_dp, self.ep, self.moe_tp)
