"""The scenario schema (pydantic v2, `extra="forbid"`) and loading it from YAML with overrides.

Every `kind` section (policies, cost model, arrivals, lengths) is resolved through its family's registry
(`sim.core.registry`) at validation time, so the `kind` string chooses the config class, the JSON-schema
branch and the factory at once, for built-in and plugin kinds alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from hwprofiles import GPUSpec, ModelSpec, catalog
from policies.admission import AdmissionConfig
from sim.config.cluster import Cluster as Cluster
from sim.config.cluster import Link as Link
from sim.config.cluster import Pool as Pool
from sim.config.fields import (
    Arrival,
    CostModelConfig,
    Int,
    Lengths,
    PredictorConfig,
    SchedulerConfig,
    Strict,
    known_gpu_name,
    known_model_name,
)
from sim.config.limits import MAX_REQUESTS, MAX_SECONDS, MAX_TOKENS, check_name
from sim.core.registry import ARRIVALS, COST_MODELS, LENGTHS, SCHEDULERS
from sim.costmodel.engine import ServingEngineConfig
from sim.costmodel.layout import Layout, deployed
from sim.costmodel.quant import Quantization, support_error


# -- workload -------------------------------------------------------------------------------------------
class RequestClass(Strict):
    """A traffic class: a share of the requests with its own priority and SLOs (per-class metrics follow)."""

    name: str
    share: float = Field(gt=0, le=1e9, description="relative weight; shares are normalised over the classes")
    priority: Int = Field(
        default=0, ge=-1_000_000, le=1_000_000, description="lower is served first by the `priority` scheduler"
    )
    slo: SLO | None = Field(default=None, description="this class's targets; unset ones fall back to `slo`")


class Workload(Strict):
    num_requests: Int | None = Field(default=None, ge=1, le=MAX_REQUESTS, description="stop generating after this many")
    duration_s: float | None = Field(
        default=None, gt=0, le=MAX_SECONDS, description="stop generating arrivals after this time"
    )
    arrival: Arrival = Field(default_factory=lambda: ARRIVALS.get("poisson").config(rate=1.0))
    lengths: Lengths | None = None
    classes: list[RequestClass] | None = Field(
        default=None, description="traffic classes, drawn per request from the `classes` stream by share"
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="a client gives up on a request not completed this long after its arrival: it is counted "
        "`abandoned` and its queue slot, batch slot and KV blocks are released",
    )

    @model_validator(mode="after")
    def _complete(self) -> Workload:
        if self.classes is not None:
            names = [c.name for c in self.classes]
            if not names or len(set(names)) != len(names):
                raise ValueError(f"classes need distinct names, got {names}")
        if not ARRIVALS.caps(self.arrival.kind).replays_trace:
            if self.lengths is None:
                *rest, last = LENGTHS.kinds()
                known = f"{', '.join(rest)} or {last}" if rest else last
                raise ValueError(f"lengths are required with a synthetic arrival process ({known})")
            if self.num_requests is None and self.duration_s is None:
                raise ValueError("give num_requests or duration_s for a synthetic arrival process")
            if self.num_requests is None and self.duration_s is not None:
                expected = self.duration_s * float(getattr(self.arrival, "rate", 0.0) or 0.0)
                if expected > MAX_REQUESTS:
                    raise ValueError(
                        f"duration_s x rate = {expected:.3g} requests, more than the {MAX_REQUESTS:,} a run may "
                        "simulate; shorten duration_s or set num_requests"
                    )
        if ARRIVALS.caps(self.arrival.kind).follows_completions and (
            self.num_requests is None or self.duration_s is not None
        ):
            raise ValueError(
                "a closed-loop workload takes num_requests (the clients stop after that many), not duration_s "
                "(to stop the clock early, set engine.horizon_s)"
            )
        return self


# -- cluster (sim.config.cluster) and instance ----------------------------------------------------------
class PrefixCache(Strict):
    """Automatic prefix caching: full prompt blocks are keyed by the prompt's block ids (Mooncake `hash_ids`)
    or, for traces without them, by a shared system prompt; a hit skips those blocks' prefill compute."""

    enabled: bool = True
    block_tokens: Int = Field(
        default=512, ge=1, le=1_000_000, description="prompt tokens per trace block id (Mooncake: 512)"
    )
    system_prompt_tokens: Int = Field(
        default=0,
        ge=0,
        le=MAX_TOKENS,
        description="traces without block ids: every prompt starts with this many shared tokens",
    )
    host_memory_gb: float = Field(
        default=0.0,
        ge=0,
        le=1e6,
        description="per GPU: a host-memory tier for blocks evicted from the GPU (Mooncake); "
        "a hit there is copied back over the host link instead of recomputed",
    )


class KVCache(Strict):
    block_size: Int = Field(default=16, ge=1, le=1_000_000)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    reserve_gb: float | None = Field(
        default=None,
        ge=0,
        le=1e6,
        description="per GPU: activations, CUDA context, graphs; unset: vLLM's profiled budget with the `vllm` "
        "scheduler (sim/costmodel/kv_memory.py), else 2 GB",
    )
    watermark: float = Field(default=0.01, ge=0, lt=1, description="fraction of blocks kept free at admission")
    preemption: Literal["recompute", "swap"] = Field(
        default="recompute", description="a preempted request's KV: dropped and recomputed, or swapped to host"
    )
    prefix_cache: PrefixCache | None = Field(
        default=None, description="share KV blocks of common prompt prefixes across requests (LRU eviction)"
    )


class SLO(Strict):
    ttft_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    tpot_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    e2el_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS)


class Engine(Strict):
    fast_forward: bool = Field(default=True, description="exact multi-step decode; off = one event per iteration")
    horizon_s: float | None = Field(
        default=None, gt=0, le=MAX_SECONDS, description="stop the clock here; the rest is in flight"
    )
    timeline_interval_s: float | None = Field(
        default=None, ge=1e-4, description="sampling period; auto if unset (a huge one turns sampling off)"
    )
    max_events: Int | None = Field(
        default=None,
        ge=1,
        description="stop with an error after this many simulation events (default 5e7 + 5000 per request): "
        "every run is bounded, so a scenario that would never end says so instead of hanging",
    )
    cohort_decoding: bool | None = Field(
        default=None,
        description="deprecated, ignored: decoders are always kept as a cohort (results never depended on it)",
    )


class Speculative(Strict):
    """Speculative decoding: each decode step drafts `num_tokens` tokens and verifies them in one wider step."""

    kind: Literal["draft_model", "eagle", "mtp"] = Field(
        description="draft_model: a smaller model drafts (k sequential decode steps); eagle / mtp: a one-layer "
        "head on the target's hidden states drafts (one head step per token)"
    )
    num_tokens: int = Field(ge=1, le=64, description="k: draft tokens per step")
    acceptance: float | list[float] = Field(
        description="probability that draft token i is accepted given the ones before it were: one i.i.d. rate, "
        "or one per position (num_tokens values)"
    )
    draft_model: str | ModelSpec | None = Field(default=None, description="kind draft_model: the drafting model")

    @field_validator("draft_model", mode="before")
    @classmethod
    def _known_draft(cls, v: Any) -> Any:
        return known_model_name(v)

    @model_validator(mode="after")
    def _consistent(self) -> Speculative:
        rates = self.acceptance if isinstance(self.acceptance, list) else [self.acceptance]
        if isinstance(self.acceptance, list) and len(rates) != self.num_tokens:
            raise ValueError(f"acceptance has {len(rates)} values; expected one per draft token ({self.num_tokens})")
        if any(not 0.0 <= a <= 1.0 for a in rates):
            raise ValueError(f"acceptance rates are probabilities in [0, 1]; found {rates}")
        if (self.kind == "draft_model") != (self.draft_model is not None):
            raise ValueError("give draft_model exactly when kind is draft_model")
        return self

    @property
    def rates(self) -> list[float]:
        """Acceptance per draft position."""
        a = self.acceptance
        return list(a) if isinstance(a, list) else [a] * self.num_tokens


class Scenario(Strict):
    name: str = Field(default="scenario", description="plain name of the run directory (runs/<name>)")
    seed: Int = Field(default=0, ge=0, le=2**63 - 1)
    model: str | ModelSpec
    hardware: str | GPUSpec
    workload: Workload
    cluster: Cluster = Field(default_factory=Cluster)
    scheduler: SchedulerConfig = Field(default_factory=lambda: SCHEDULERS.get("vllm").config())
    kv_cache: KVCache = Field(default_factory=KVCache)
    cost_model: CostModelConfig = Field(default_factory=lambda: COST_MODELS.get("roofline").config())
    serving_engine: ServingEngineConfig = Field(
        default_factory=ServingEngineConfig,
        description="engine overheads around the kernels: a preset `kind` (vllm-v1, vllm-v0, sglang, trtllm) "
        "with any term overridden (`servesim list engines`)",
    )
    quantization: Quantization = Field(
        default_factory=Quantization, description="weights / activations / kv_cache precision (default bf16)"
    )
    slo: SLO = Field(default_factory=SLO)
    engine: Engine = Field(default_factory=Engine)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    predictor: PredictorConfig | None = Field(
        default=None, description="output-length predictor; its prediction is stored on each request"
    )
    speculative: Speculative | None = Field(default=None, description="speculative decoding (off when unset)")
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        return check_name(v)

    @field_validator("model", mode="before")
    @classmethod
    def _known_model(cls, v: Any) -> Any:
        v = known_model_name(v)
        if isinstance(v, dict) and "num_params" in v:  # a dump of an inline spec carries the computed count
            v = {k: x for k, x in v.items() if k != "num_params"}
        return v

    @field_validator("hardware", mode="before")
    @classmethod
    def _known_gpu(cls, v: Any) -> Any:
        return known_gpu_name(v)

    @model_validator(mode="after")
    def _deployment_supported(self) -> Scenario:
        """Precision the GPU lacks, or a parallel layout the model cannot use: one line before any run."""
        model, c = self.base_model_spec, self.cluster
        pools: list[tuple[str, Layout, GPUSpec | None]] = [("cluster", c.layout, self.gpu_spec)]
        if c.prefill is not None and c.decode is not None:
            pools = [
                (f"cluster.{role}", p.layout, catalog.gpu(p.hardware) if isinstance(p.hardware, str) else p.hardware)
                for role, p in (("prefill", c.prefill), ("decode", c.decode))
            ]
        for where, layout, gpu in pools:
            msg = layout.error(model) or support_error(self.quantization, gpu or self.gpu_spec, model)
            if msg is not None:
                raise ValueError(msg.replace("cluster", where, 1) if msg.startswith("cluster") else msg)
        return self

    @model_validator(mode="after")
    def _holds_need_sarathi(self) -> Scenario:
        """The engine's context holds (`serving_engine.attention_dp_balance`, `batch_wait_*`) are obeyed by the
        `sarathi` scheduler only: with another kind they would be silently ignored, so say so before any run."""
        from policies.context_hold import HOLD_KINDS, hold_terms

        c, eng = self.cluster, self.serving_engine
        pools = [(c.attention_dp, self.scheduler)]
        if c.prefill is not None and c.decode is not None:
            pools = [(p.attention_dp, p.scheduler or self.scheduler) for p in (c.prefill, c.decode)]
        for dp, sched in pools:
            if sched.kind not in ("sarathi", "sglang") and eng is not None and eng.scheduler_recv_interval > 1:
                raise ValueError(
                    f"serving_engine.scheduler_recv_interval: the receive interval needs scheduler kind 'sarathi' or "
                    f"'sglang', not {sched.kind!r}"
                )
            if sched.kind not in HOLD_KINDS and hold_terms(eng, dp, 1).active:
                field = "attention_dp_balance" if dp > 1 else "batch_wait_timeout_iters"
                if dp == 1 and eng.batch_wait_timeout_iters <= 0:
                    field = "batch_wait_max_tokens_ratio"
                raise ValueError(
                    f"serving_engine.{field}: context holds (attention_dp_balance, batch_wait_*) need scheduler "
                    f"kind {' or '.join(repr(k) for k in HOLD_KINDS)}, not {sched.kind!r}"
                )
        return self

    @model_validator(mode="after")
    def _reserve_needs_its_scheduler(self) -> Scenario:
        """`serving_engine.admission_reserve` is obeyed by the schedulers that declare it (`SchedulerCaps`) on
        colocated instances (policies/reserve.py): a preset's reservation meeting another kind would be silently
        ignored."""
        eng = self.serving_engine
        kind = getattr(eng, "admission_reserve", "none") if eng is not None else "none"
        if kind == "none" or self.cluster.disaggregated or SCHEDULERS.caps(self.scheduler.kind).admission_reserve:
            return self
        obey = " or ".join(repr(k) for k in SCHEDULERS.kinds() if SCHEDULERS.caps(k).admission_reserve)
        raise ValueError(
            f"serving_engine.admission_reserve: {kind!r} (the {eng.kind!r} preset's or yours) is obeyed by "
            f"scheduler kind {obey}, not {self.scheduler.kind!r}; pick one of them or set admission_reserve: none"
        )

    @model_validator(mode="after")
    def _timeouts_colocated(self) -> Scenario:
        if self.workload.timeout_s is not None and (self.cluster.disaggregated or self.cluster.migration):
            raise ValueError(
                "workload.timeout_s is supported on colocated clusters without migration (a request in a KV "
                "copy between instances cannot be abandoned yet)"
            )
        return self

    @model_validator(mode="after")
    def _predictor_present(self) -> Scenario:
        if getattr(self.scheduler, "needs_predictor", False) and self.predictor is None:
            raise ValueError(
                f"scheduler {self.scheduler.kind!r} orders by predicted lengths: add a `predictor` section, "
                "e.g. predictor: {kind: rank, tau: 0.6} (or {kind: oracle})"
            )
        return self

    @property
    def model_spec(self) -> ModelSpec:
        """The model as the colocated cluster deploys it (layout and quantization, see `deployed`)."""
        base = self.base_model_spec
        return base if self.cluster.disaggregated else deployed(base, self.cluster.layout, self.quantization)

    @property
    def base_model_spec(self) -> ModelSpec:
        """The model as its config describes it."""
        return catalog.model(self.model) if isinstance(self.model, str) else self.model

    @property
    def gpu_spec(self) -> GPUSpec:
        """The scenario's GPU in its box (`cluster.pcie_topology` applied, see `Cluster.in_box`)."""
        return self.cluster.in_box(catalog.gpu(self.hardware) if isinstance(self.hardware, str) else self.hardware)

    @property
    def base_dir(self) -> Path:
        """Directory relative paths in the scenario are resolved against (the YAML file's)."""
        return self._base_dir


def scenario_json_schema() -> dict[str, Any]:
    return Scenario.model_json_schema()


def load_scenario(source: Any, overrides: list[str] | None = None, feasibility: bool | None = None) -> Scenario:
    """A validated Scenario from a YAML path, a dict or a Scenario, with `a.b=value` overrides applied (the
    work is in sim.config.loading, imported here lazily: it imports this module)."""
    from sim.config.loading import load_scenario as load

    return load(source, overrides, feasibility)


def validate_scenario(data: Any, label: str, pos: Any, base: Path, feasibility: bool = True) -> Scenario:
    """Plain data to a Scenario, every mistake one line naming label:line:col (see sim.config.loading)."""
    from sim.config.loading import validate_scenario as validate

    return validate(data, label, pos, base, feasibility)
