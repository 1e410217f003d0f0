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
from sim.core.speculative import DraftCost, Speculation
from sim.core.swap import HostSwap
from sim.costmodel.build import prices_serving_engine
from sim.costmodel.kv_memory import reserve_bytes
from sim.costmodel.layout import deployed
from sim.costmodel.memo import memoised
from sim.costmodel.models import COST_MODELS, CostModel
from sim.costmodel.pipeline import gpu_only
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
    pp: int = 1  # pipeline stages, each of tp GPUs
    attention_dp: int = 1  # attention data-parallel ranks inside an instance (engine context holds count them)

    @property
    def gpus(self) -> int:
        return self.instances * self.tp * self.pp


def _gpu(hw: Any, default: GPUSpec) -> GPUSpec:
    if hw is None:
        return default
    return catalog.gpu(hw) if isinstance(hw, str) else hw


def build_cost_model(sc: Scenario, model: ModelSpec | None = None, gpu: GPUSpec | None = None) -> CostModel:
    """The scenario's cost model (on `model`/`gpu` instead of the scenario's, for what-if comparisons)."""
    return _cost(sc, model or sc.model_spec, gpu or sc.gpu_spec, sc.cluster.tp, sc.cluster.pp, sc.cluster.layout)


def _cost(sc: Scenario, model: ModelSpec, gpu: GPUSpec, tp: int, pp: int, layout: Any) -> CostModel:
    """One instance's cost model; with pp > 1 a pipeline of per-stage cost models (`sim.costmodel.pipeline`)."""
    kw: dict[str, Any] = {"gpu": gpu, "tp": tp, "base_dir": sc.base_dir, "engine": sc.serving_engine}
    kw.update(layout=layout, quant=sc.quantization)
    # MLA: query chunks up to a verification's 1 + k run the absorbed decode kernels (`structured.DECODE_QUERY`)
    kw["decode_query"] = 1 + (sc.speculative.num_tokens if sc.speculative is not None else 0)
    if pp == 1:
        return COST_MODELS.build(sc.cost_model, model=model, **kw)
    from sim.cluster.links import link_bandwidth
    from sim.costmodel.pipeline import activation_hop, build_pipeline

    if sc.cost_model.kind == "linear":
        raise ServesimError(
            "cluster.pp: the linear cost model has no layers to split over stages; use kind roofline or table"
        )

    def stage(layers: int) -> CostModel:
        part = model.model_copy(update={"num_layers": layers})
        return COST_MODELS.build(sc.cost_model, model=part, **kw)

    link = sc.cluster.pp_link
    hop = activation_hop(model.hidden_size, model.dtype_bytes, link_bandwidth(link, gpu, gpu), link.latency_s)
    return build_pipeline(stage, model.num_layers, pp, hop)


def capacity(sc: Scenario) -> KVCapacity:
    """KV blocks of one instance of a colocated cluster."""
    kv = sc.kv_cache
    m, g, tp = sc.model_spec, sc.gpu_spec, sc.cluster.tp
    reserve = reserve_bytes(kv.reserve_gb, m, g, tp, sc.scheduler, sc.serving_engine, kv.gpu_memory_utilization)
    return kv_capacity(
        m, g, tp, kv.block_size, kv.gpu_memory_utilization, reserve + _draft_weights(sc, tp), sc.cluster.pp
    )


def _draft_weights(sc: Scenario, tp: int) -> float:
    """Per GPU: a draft model's weights (kind draft_model), held beside the target's; 0 without one."""
    spec = sc.speculative
    if spec is None or spec.draft_model is None:
        return 0.0
    draft = catalog.model(spec.draft_model) if isinstance(spec.draft_model, str) else spec.draft_model
    return draft.weight_bytes(tp)


def pool_specs(sc: Scenario) -> list[PoolSpec]:
    """The scenario's pools: `[colocated]`, or `[prefill, decode]` when `cluster.prefill/decode` are set."""
    c, kv, model = sc.cluster, sc.kv_cache, sc.model_spec
    if c.prefill is None or c.decode is None:
        gpus = c.tp * c.attention_dp  # GPUs per instance and pipeline stage
        cost = build_cost_model(sc)
        cap = capacity(sc)
        dp = c.attention_dp
        spec = PoolSpec("colocated", c.instances, gpus, sc.gpu_spec, sc.scheduler, c.router, cap, cost, c.pp, dp)
        return [spec]
    specs = []
    for role, pool in (("prefill", c.prefill), ("decode", c.decode)):
        gpu = c.in_box(_gpu(pool.hardware, sc.gpu_spec))  # the box wiring holds for every pool
        pool_model = deployed(model, pool.layout, sc.quantization)
        sched = pool.scheduler or sc.scheduler
        util = kv.gpu_memory_utilization
        reserve = reserve_bytes(kv.reserve_gb, pool_model, gpu, pool.tp, sched, sc.serving_engine, util)
        reserve += _draft_weights(sc, pool.tp)
        cap = kv_capacity(pool_model, gpu, pool.tp, kv.block_size, util, reserve, pool.pp)
        cost = _cost(sc, pool_model, gpu, pool.tp, pool.pp, pool.layout)
        router = pool.router or (c.router if role == "prefill" else ROUTERS.get("least_kv").config())
        gpus = pool.tp * pool.attention_dp  # GPUs per instance (power, cost, KV-transfer lanes)
        spec = PoolSpec(role, pool.instances, gpus, gpu, sched, router, cap, cost, pool.pp, pool.attention_dp)
        specs.append(spec)
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
    spec_rng: np.random.Generator | None = None,
) -> list[Instance]:
    """All instances of all pools, numbered across pools (in `specs` order), each with its collaborators:
    host memory, a prefix cache when enabled, and — disaggregated — the hand-off (prefill pool) or the
    hand-off's wait for memory (decode pool)."""
    out: list[Instance] = []
    model = sc.model_spec
    for spec in specs:
        cost = memoised(spec.cost)  # one pricing cache per pool, shared by its instances
        draft = _draft_cost(sc, spec) if sc.speculative is not None else None
        pc = _prefix_cache(sc, spec.scheduler)
        max_len = getattr(spec.scheduler, "max_model_len", None)  # `vllm`: the API server's length limit
        # the engine plans one step ahead (`serving_engine.overlap_admission`; physical cost models only, like the
        # engine's other terms: `linear` is an exact service time)
        overlap = sc.serving_engine.overlap_admission and prices_serving_engine(sc.cost_model)
        if spec.role == "prefill" and sc.serving_engine.kind == "trtllm":
            # TensorRT-LLM's context servers run without the overlap scheduler: every `disable_overlap_scheduler:
            # true` in the InferenceX disagg recipes sits in a `prefill:` section (e.g. SemiAnalysisAI/InferenceX
            # benchmarks/multi_node/srt-slurm-recipes/trtllm/glm5/disagg/trtllm_dynamo/gb200_nvfp4/ISL1K_OSL1K/MTP/
            # ctx1dep4_gen1dep16_batch32_eplb0_mtp3.yaml, line 41), the generation servers keep it on; TensorRT-LLM
            # refused context-only requests with overlap on until NVIDIA/TensorRT-LLM#10755 (Jan 2026)
            overlap = False
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
                speculative=None
                if draft is None or sc.speculative is None
                else Speculation(sc.speculative.rates, spec_rng or np.random.default_rng(sc.seed), draft),
            )
            inst = Instance(
                env,
                len(out),
                SCHEDULERS.build(
                    spec.scheduler,
                    rng=policy_rng,
                    cost=cost,
                    gpu=spec.gpu,
                    engine=sc.serving_engine,
                    attention_dp=spec.attention_dp,
                    model=model,  # the reservation's per-window counts (policies/reserve.py NoEvict)
                ),
                cost,
                spec.capacity,
                log,
                max_context=min(model.max_context, max_len) if max_len else model.max_context,
                watermark=sc.kv_cache.watermark,
                fast_forward=sc.engine.fast_forward,
                overlap_admission=overlap,
                role=spec.role,
                max_kv_tokens=disagg.max_kv_tokens if disagg is not None and spec.role == "prefill" else 1 << 62,
                collaborators=collaborators,
            )
            out.append(inst)
    return out


def _draft_cost(sc: Scenario, spec: PoolSpec) -> DraftCost:
    """Seconds of drafting k tokens for n sequences over Σ context: k sequential decode steps of the draft
    model (draft_model), or of a one-layer head shaped like one target layer as the pool deploys it (eagle, mtp;
    mtp: an MoE layer), on the pool's GPUs, each without the roofline's per-iteration overhead or the engine's
    CPU step (the verifier pays those once). A draft model's weights come off the KV memory
    (`_draft_weights`); its own KV cache is not modelled."""
    cfg = sc.speculative
    assert cfg is not None
    if cfg.draft_model is not None:
        model = catalog.model(cfg.draft_model) if isinstance(cfg.draft_model, str) else cfg.draft_model
        cost = COST_MODELS.build(sc.cost_model, model=model, gpu=spec.gpu, tp=spec.tp, base_dir=sc.base_dir)
    else:
        # the head is one layer of the target as the pool deploys it: its parallel layout (attention-DP ranks,
        # expert parallelism) and precision. DeepSeek-V3's MTP module is one decoder layer past the leading dense
        # ones, so an MoE layer (arXiv 2412.19437 §2.2; `model.layers.61` of the checkpoint, beyond
        # first_k_dense_replace = 3), with the shared embedding and output head; priced in the pool's cost model
        layout = sc.cluster.layout if spec.role == "colocated" else getattr(sc.cluster, spec.role).layout
        one = {"num_layers": 1} | ({"first_dense_layers": 0} if cfg.kind == "mtp" else {})  # MTP: an MoE layer
        head = deployed(sc.base_model_spec.model_copy(update=one), layout, sc.quantization)
        cost = _cost(sc, head, spec.gpu, spec.tp, 1, layout)
    # the draft loop runs on the GPU inside the engine's step (TensorRT-LLM's MTP and SGLang's EAGLE worker capture
    # draft and verify in CUDA graphs): the engine's CPU step (scheduling, sampling) is paid once, by the verifier
    cost = gpu_only(cost)
    k = cfg.num_tokens
    # the engine's per-iteration overhead (scheduling, sampling) is paid once by the step, not per draft token
    fixed = float(getattr(getattr(cost, "params", None), "iteration_overhead_s", 0.0))

    def draft(n: int, ctx: int) -> float:
        return sum(cost.iteration([], n, ctx + n * i) - fixed for i in range(k))

    return draft


def _prefix_cache(sc: Scenario, scheduler: Any) -> Any:
    """`kv_cache.prefix_cache`, or its defaults when the scheduler turns caching on itself (`vllm`)."""
    pc = sc.kv_cache.prefix_cache
    if pc is None and getattr(scheduler, "enable_prefix_caching", False):
        from sim.config.scenario import PrefixCache

        return PrefixCache()
    if pc is not None and getattr(scheduler, "enable_prefix_caching", True) is False:
        return None  # the scheduler's switch wins
    return pc


def cluster_label(sc: Scenario) -> str:
    """`4 x 1 x h100-sxm`, or `prefill 2 x 1 x h100-sxm + decode 2 x 1 x a100-80g`."""
    c = sc.cluster
    if c.prefill is None or c.decode is None:
        return f"{c.instances} x {_tp_pp(c.tp, c.pp)} x {sc.gpu_spec.name}"
    return " + ".join(
        f"{role} {p.instances} x {_tp_pp(p.tp, p.pp)} x {_gpu(p.hardware, sc.gpu_spec).name}"
        for role, p in (("prefill", c.prefill), ("decode", c.decode))
    )


def _tp_pp(tp: int, pp: int) -> str:
    """`tp`, or `tp·pp` (tp x pp GPUs per instance) when pipelined."""
    return str(tp) if pp == 1 else f"{tp}x{pp}pp"


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


class SpeculativeStats:
    """Speculative decoding's tokens per verified sequence-step, against the closed form."""

    name = "speculative"

    def __init__(self, sim: Any) -> None:
        self.specs = [inst.speculation for inst in sim.instances if inst.speculation is not None]

    def columns(self) -> dict[str, np.ndarray]:
        return {}

    def summary(self) -> dict[str, Any]:
        steps = sum(s.steps for s in self.specs)
        tokens = sum(s.tokens for s in self.specs)
        out: dict[str, Any] = self.specs[0].summary() if self.specs else {}
        out.update(sequence_steps=steps, tokens=tokens, tokens_per_step=tokens / steps if steps else math.nan)
        return out


def cluster_features(sim: Any) -> list[Feature]:
    """The optional mechanisms the scenario asks for, wired to the run's instances."""
    sc = sim.scenario
    out: list[Feature] = []
    if any(inst.prefix_cache is not None for inst in sim.instances):
        out.append(PrefixStats(sim))
    if sim.disagg is not None:
        sim.disagg.bind(sim.instances)
        out.append(sim.disagg)
    if sc.speculative is not None:
        out.append(SpeculativeStats(sim))
    if sc.cluster.migration is not None:
        from sim.cluster.migration import Migrator

        out.append(Migrator(sim))
    return out
