"""A cluster as pools of identical instances: one `colocated` pool, or a `prefill` and a `decode` pool.

Each pool has its own GPU, tensor-parallel degree, scheduler, router, KV capacity and cost model, so a
disaggregated cluster can put prefill on H100s and decode on A100s (Splitwise-HA). Instances are
numbered across pools (prefill first), so the `instance` columns of every table stay unique.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import simpy

from hwprofiles import catalog
from hwprofiles.specs import GPUSpec, ModelSpec
from sim.config.scenario import Scenario
from sim.core.collaborators import Collaborators
from sim.core.instance import Instance
from sim.core.kvcache import KVCapacity, kv_capacity
from sim.core.recorder import RequestLog
from sim.core.registry import ROUTERS, SCHEDULERS
from sim.core.swap import HostSwap
from sim.costmodel.models import COST_MODELS, CostModel
from sim.errors import ServesimError
from sim.output.perfetto import Tracer

if TYPE_CHECKING:
    from sim.cluster.disagg import Disaggregation

# schedulers that keep per-request state in `Request.sched`: a request handed from one pool to the other
# would carry one scheduler's state into a scheduler of another kind (and back into the first's lazy
# structures), so pools with different schedulers may use only the stateless kinds


@dataclass
class PoolSpec:
    """Everything needed to build one pool's instances."""

    role: str  # "colocated" | "prefill" | "decode"
    instances: int
    tp: int
    gpu: GPUSpec
    scheduler: Any  # the scheduler config section
    router: Any  # the router config section that picks an instance of this pool
    capacity: KVCapacity
    cost: CostModel

    @property
    def gpus(self) -> int:
        return self.instances * self.tp


def _gpu(hw: Any, default: GPUSpec) -> GPUSpec:
    if hw is None:
        return default
    return catalog.gpu(hw) if isinstance(hw, str) else hw


def build_cost_model(sc: Scenario, model: ModelSpec | None = None, gpu: GPUSpec | None = None) -> CostModel:
    """The scenario's cost model (on `model`/`gpu` instead of the scenario's, for what-if comparisons)."""
    return COST_MODELS.build(
        sc.cost_model,
        model=model or sc.model_spec,
        gpu=gpu or sc.gpu_spec,
        tp=sc.cluster.tp,
        base_dir=sc.base_dir,
    )


def capacity(sc: Scenario) -> KVCapacity:
    """KV blocks of one instance of a colocated cluster."""
    kv = sc.kv_cache
    return kv_capacity(
        sc.model_spec,
        sc.gpu_spec,
        sc.cluster.tp,
        kv.block_size,
        kv.gpu_memory_utilization,
        kv.reserve_gb * 1e9,
    )


def pool_specs(sc: Scenario) -> list[PoolSpec]:
    """The scenario's pools: `[colocated]`, or `[prefill, decode]` when `cluster.prefill/decode` are set."""
    c, kv, model = sc.cluster, sc.kv_cache, sc.model_spec
    if c.prefill is None or c.decode is None:
        return [
            PoolSpec(
                "colocated", c.instances, c.tp, sc.gpu_spec, sc.scheduler, c.router, capacity(sc), build_cost_model(sc)
            )
        ]
    specs = []
    for role, pool in (("prefill", c.prefill), ("decode", c.decode)):
        gpu = _gpu(pool.hardware, sc.gpu_spec)
        cap = kv_capacity(model, gpu, pool.tp, kv.block_size, kv.gpu_memory_utilization, kv.reserve_gb * 1e9)
        cost = COST_MODELS.build(sc.cost_model, model=model, gpu=gpu, tp=pool.tp, base_dir=sc.base_dir)
        router = pool.router or (c.router if role == "prefill" else ROUTERS.get("least_kv").config())
        specs.append(PoolSpec(role, pool.instances, pool.tp, gpu, pool.scheduler or sc.scheduler, router, cap, cost))
    kinds = {s.scheduler.kind for s in specs}
    stateful = sorted(k for k in kinds if SCHEDULERS.caps(k).stateful)  # declared by each scheduler
    if len(kinds) > 1 and stateful:
        raise ServesimError(
            f"cluster.prefill and cluster.decode use schedulers {sorted(kinds)}: "
            f"{stateful[0]!r} keeps per-request state that cannot cross the hand-off "
            "to a scheduler of another kind; use one kind in both pools, or stateless kinds only"
        )
    return specs


def build_instances(
    env: simpy.Environment,
    sc: Scenario,
    specs: list[PoolSpec],
    log: RequestLog,
    policy_rng: np.random.Generator,
    *,
    tracer: Tracer | None = None,
    disagg: Disaggregation | None = None,
) -> list[Instance]:
    """All instances of all pools, numbered across pools (in `specs` order), each with its collaborators:
    host memory, a prefix cache when enabled, and — disaggregated — the hand-off (prefill pool) or the
    hand-off's wait for memory (decode pool)."""
    out: list[Instance] = []
    model = sc.model_spec
    pc = sc.kv_cache.prefix_cache
    for spec in specs:
        for _ in range(spec.instances):
            prefix = None
            if pc is not None and pc.enabled:
                from sim.cluster.prefix_cache import PrefixCache

                host_blocks = int(pc.host_memory_gb * 1e9 // spec.capacity.bytes_per_block)  # per GPU, like KV shards
                prefix = PrefixCache(
                    spec.capacity.num_blocks, spec.capacity.block_size, pc.block_tokens, pc.system_prompt_tokens,
                    host_blocks,
                )  # fmt: skip
            collaborators = Collaborators(
                # each GPU of the TP group moves its shard of a block over its own host link
                host=HostSwap(spec.capacity.bytes_per_block / spec.gpu.host_link_bw, sc.kv_cache.preemption == "swap"),
                prefix_cache=prefix,
                handoff=disagg if disagg is not None and spec.role == "prefill" else None,
                on_release=disagg if disagg is not None and spec.role == "decode" else None,
                tracer=tracer,
            )
            inst = Instance(
                env,
                len(out),
                SCHEDULERS.build(spec.scheduler, rng=policy_rng, cost=spec.cost),
                spec.cost,
                spec.capacity,
                log,
                max_context=model.max_context,
                watermark=sc.kv_cache.watermark,
                fast_forward=sc.engine.fast_forward,
                role=spec.role,
                max_kv_tokens=disagg.max_kv_tokens if disagg is not None and spec.role == "prefill" else 1 << 62,
                collaborators=collaborators,
            )
            out.append(inst)
    return out


def cluster_label(sc: Scenario) -> str:
    """`4 x 1 x h100-sxm`, or `prefill 2 x 1 x h100-sxm + decode 2 x 1 x a100-80g`."""
    c = sc.cluster
    if c.prefill is None or c.decode is None:
        return f"{c.instances} x {c.tp} x {sc.gpu_spec.name}"
    return " + ".join(
        f"{role} {p.instances} x {p.tp} x {_gpu(p.hardware, sc.gpu_spec).name}"
        for role, p in (("prefill", c.prefill), ("decode", c.decode))
    )


class Feature(Protocol):
    """A cluster mechanism attached to a run: it adds per-request columns and a summary section."""

    name: str

    def columns(self) -> dict[str, np.ndarray]: ...

    def summary(self) -> dict[str, Any]: ...


class PrefixStats:
    """Collects prefix-cache hits per request and per instance."""

    name = "prefix_cache"

    def __init__(self, sim: Any) -> None:
        self.caches = [inst.prefix_cache for inst in sim.instances if inst.prefix_cache is not None]
        self.hits = np.zeros(sim.log.n, dtype=np.int64)
        for p in self.caches:
            p.hit_log = self.hits

    def columns(self) -> dict[str, np.ndarray]:
        return {"prefix_hit_tokens": self.hits}

    def summary(self) -> dict[str, Any]:
        hit = sum(p.hit_tokens for p in self.caches)
        looked = sum(p.lookup_tokens for p in self.caches)
        return {
            "hit_tokens": hit,
            "host_hit_tokens": sum(p.host_hit_tokens for p in self.caches),
            "prompt_tokens_admitted": looked,
            "hit_rate": hit / looked if looked else math.nan,
            "admissions": sum(p.admissions for p in self.caches),
            "blocks_registered": sum(p.inserted for p in self.caches),
            "evictions": sum(p.evictions for p in self.caches),
            "cached_blocks_at_end": sum(p.cached_blocks for p in self.caches),
        }


def cluster_features(sim: Any) -> list[Feature]:
    """The optional mechanisms the scenario asks for, wired to the run's instances."""
    sc = sim.scenario
    out: list[Feature] = []
    if any(inst.prefix_cache is not None for inst in sim.instances):
        out.append(PrefixStats(sim))
    if sim.disagg is not None:
        sim.disagg.bind(sim.instances)
        out.append(sim.disagg)
    if sc.cluster.migration is not None:
        from sim.cluster.migration import Migrator

        out.append(Migrator(sim))
    return out
