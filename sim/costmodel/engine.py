"""The serving engine around the kernels: physically named overheads that a kernel roofline misses.

A real engine spends time outside the model's kernels, and how much depends on the engine, not the GPU:

- `scheduler_s`: CPU time per iteration that the GPU waits for (scheduling, input preparation, output
  processing that is not overlapped with the next step);
- `launch_per_layer_s`: host-side kernel-launch time per decoder layer in eager mode. The GPU runs
  asynchronously, so an eager iteration takes max(kernel time, L × launch_per_layer_s): launch-bound at
  small batches, kernel-bound at large ones. CUDA graphs replay a captured iteration with one launch, so
  a decode-only batch of at most `cuda_graph_max_batch` sequences (with `piecewise_graphs`, any batch of
  at most that many tokens) pays no launch term;
- `sample_per_seq_s`: per sequence producing a token per iteration (sampling, detokenisation, stop checks);
- `async_scheduling`: the two CPU terms above overlap the GPU step (vLLM V1's default): charged only beyond
  the step's kernels, max(0, CPU - kernels), instead of in series;
- `sampler_bytes_per_logit`: the GPU sampler's passes over each sampled sequence's vocabulary row (10 bytes per
  entry for greedy decoding, the default; 46 for vLLM's random sampling), priced after the LM head together
  with the tensor-parallel logits all-gather (`sim.costmodel.comm.logits_terms`);
- the all-reduce implementation (`sim.costmodel.comm`): custom one-/two-shot all-reduce for small
  messages where the engine has one, NCCL ring otherwise, each with its own fixed latency;
- `frontend_s`: per request, outside the engine loop (HTTP, tokenisation, streaming the tokens back). It
  is not part of any iteration: it is added to each request's TTFT and E2E as a client sees them
  (`sim.output.metrics.requests_frame`), and leaves TPOT/ITL alone (tokens stream at the engine's pace);
- `stream_interval` / `stream_first_token`: how the server groups tokens into streamed chunks; the client
  sees a token when its chunk is sent, so TTFT (and TPOT = (E2E - TTFT)/(output - 1)) as clients see them
  follow (`sim.output.metrics.client_first_token`); engine-side timestamps stay as they are.

The terms apply with the physical cost models (`roofline`, `table`; a fitted `profile` replaces the
per-iteration ones, having measured them); the analytic `linear` kind ignores them, front end included.

`kind` names a preset (`servesim list engines`); any term given next to it overrides the preset's value.
Every fittable float carries `json_schema_extra={"fit_bounds": [lo, hi]}`: `calibrate fit-run` fits exactly
those fields, so keep the names stable."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from sim.core import admission, registry
from sim.costmodel.engine_presets import DESCRIPTIONS, PRESETS

MIB = 1024 * 1024


def _fit(lo: float, hi: float, default: bool = False) -> dict[str, Any]:
    """Schema extra of a fittable term: its physical bounds, and whether `calibrate fit-run` fits it by default
    (the few terms end-to-end logs identify; the others are fitted only when named with --param)."""
    return {"fit_bounds": [lo, hi], "fit_default": default}


class ServingEngineConfig(admission.OverlapAdmission):  # `overlap_admission`: when a prompt is admitted (no price)
    """`serving_engine:` — a preset by `kind`, with any term overridden. Defaults below are vLLM V1's."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(default="vllm-v1", description="engine preset (`servesim list engines`)")
    # The V1 engine core runs scheduling and output processing in a busy loop beside the GPU and overlaps
    # most of it (vLLM blog "vLLM V1: A Major Upgrade to vLLM's Core Architecture", Jan 2025); what is left
    # on the critical path is a few hundred microseconds per step.
    scheduler_s: float = Field(
        default=3e-4,
        ge=0,
        description="CPU time per iteration the GPU waits for",
        json_schema_extra=_fit(0.0, 5e-3, default=True),
    )
    # Async scheduling (vLLM's `async_scheduling`, NanoFlow-style): the engine core schedules step N+1 and
    # processes step N-1's output while the GPU runs step N, so the CPU terms above and below cost the GPU only
    # what exceeds its own step: max(0, CPU - kernels). Off in this field (SGLang's and TensorRT-LLM's presets
    # keep their own overlap residues in `scheduler_s`); the `vllm-v1` preset turns it on (see PRESETS).
    async_scheduling: bool = Field(
        default=False, description="CPU work per step overlaps the GPU step (charged only beyond it)"
    )
    # Eager PyTorch issues ~12 kernels per decoder layer (2 norms, QKV, RoPE, cache write, attention, O,
    # all-reduce, gate/up, activation, down, residual adds) at ~4-5 us of host time each (CUDA launch
    # latency): ~50 us per layer. Only matters outside CUDA graphs.
    launch_per_layer_s: float = Field(
        default=5e-5, ge=0, description="host launch time per layer, eager mode", json_schema_extra=_fit(0.0, 3e-4)
    )
    # Python-side time of an eager forward that the GPU waits for, per decoder layer, charged in series on every
    # iteration with prompt tokens that no CUDA graph covers (`graph_captured(tokens, False)` false): module calls,
    # custom-op dispatch, Triton launchers, per-layer routing set-up. Unlike `launch_per_layer_s` it is not hidden
    # behind long kernels (COVERAGE.md "TTFT at low load": the silicon rows' miss at 8k prompts is not smaller
    # than at 1k, which max(kernels, host) would make it). 0 for engines that compile the forward (vLLM V1's
    # torch.compile + piecewise graphs); see PRESETS for the measured values.
    eager_host_per_layer_s: float = Field(
        default=0.0,
        ge=0,
        description="per layer: host time of an eager (no CUDA graph) forward with prompt tokens, in series",
        json_schema_extra=_fit(0.0, 3e-3),
    )
    # The same host time, more per MoE layer (a MoE layer's routing, expert dispatch and quantisation launch many
    # more kernels than a dense MLP): charged with `eager_host_per_layer_s`, on the same uncaptured prompt steps, on
    # the model's MoE layers only (`ModelSpec.num_moe_layers`). See the `vllm-v1` preset for the measured value.
    eager_host_per_moe_layer_s: float = Field(
        default=0.0,
        ge=0,
        description="per MoE layer: more host time of an uncaptured forward with prompt tokens, in series",
        json_schema_extra=_fit(0.0, 3e-3),
    )
    # vLLM V1 captures batch sizes 1, 2, 4, 8, 16, ... up to min(2 x max_num_seqs, 512)
    # (vllm/config/vllm.py `_set_cudagraph_sizes`; compilation_config.max_cudagraph_capture_size).
    cuda_graph_max_batch: int = Field(default=512, ge=0, description="largest graph-captured batch (0: eager)")
    # V1 compiles the model piecewise (torch.compile splitting at attention): mixed prefill/decode batches
    # up to the capture size replay graphs too (vLLM docs "CUDA Graphs", cudagraph_mode FULL_AND_PIECEWISE).
    piecewise_graphs: bool = Field(default=True, description="mixed batches up to the capture size use graphs")
    # Sampling and detokenisation per sequence: V1 samples on the GPU and detokenises in the front-end
    # process, overlapped (same blog); a few microseconds remain per sequence.
    sample_per_seq_s: float = Field(
        default=5e-6,
        ge=0,
        description="per sequence per iteration (sampling, stop checks)",
        json_schema_extra=_fit(0.0, 1e-4),
    )
    # The sampler's GPU passes over each sampled sequence's full vocabulary row (sim.costmodel.comm.logits_terms).
    # Default: greedy decoding (temperature 0), what the validated runs sent: the LLMServingSim runner that
    # recorded the RTX PRO 6000 runs sets SamplingParams(temperature=0.0) (v1.1.0, 3012eb1,
    # bench/core/runner.py:229), and vLLM's `bench serve` set temperature 0.0 unless asked ("Default to greedy
    # decoding", vllm/benchmarks/serve.py) until a later version left it to the server ("no longer sets
    # temperature==0 (greedy) in requests by default", 009e6d4), whose default comes from the model's generation
    # config. vLLM V1's sampler on an all-greedy batch (vllm/v1/sample/sampler.py) casts the logits to float32
    # (read 2 + write 4 bytes) and returns `logits.argmax(-1)` (read 4) before any temperature, softmax or noise:
    # 10 bytes per entry (penalties, bad words and logits processors run only when a request sets them;
    # min_tokens masks a few stop-token entries, not the row). SGLang also argmaxes the full row of an all-greedy
    # batch (python/sglang/srt/layers/sampler.py, `is_all_greedy`); the other presets take the same default (an
    # engine that samples on the GPU reads each row at least once).
    # Random sampling (temperature > 0): set 46, vLLM V1's path without top-k/top-p (more with them): 2 + 4
    # (cast), 4 + 4 (temperature), 8 + 4 (two-pass softmax), 4 (exponential noise), 8 + 4 (divide), 4 (argmax).
    sampler_bytes_per_logit: float = Field(
        default=10.0, ge=0, description="bytes the GPU sampler moves per vocabulary entry per sampled sequence"
    )
    allreduce: Literal["custom", "nccl"] = Field(
        default="custom", description="custom: vLLM/SGLang/TRT-LLM one-/two-shot all-reduce for small messages"
    )
    # vLLM CustomAllreduce(max_size=8192 * 1024), world sizes 2, 4, 6, 8 (vllm/distributed/
    # device_communicators/custom_all_reduce.py); larger messages go to NCCL.
    custom_allreduce_max_bytes: int = Field(default=8 * MIB, ge=0, description="custom all-reduce up to this size")
    # One NVLink/PCIe peer write plus a flag barrier: a few microseconds (no measurement in the shared data).
    custom_allreduce_latency_s: float = Field(
        default=5e-6, ge=0, description="fixed latency of one custom all-reduce", json_schema_extra=_fit(1e-6, 5e-5)
    )
    # From data: the median all-reduce times of the two smallest sizes (2 KiB, 10 KiB) in ../shared/data/
    # gpu-profiles/network/{a100,h100}_{dgx,pairwise_nvlink}/all_reduce.csv (torch.distributed/NCCL) are
    # 7-56 us; their median, 32 us.
    nccl_latency_s: float = Field(
        default=3.2e-5, ge=0, description="fixed latency of one NCCL all-reduce", json_schema_extra=_fit(5e-6, 1e-4)
    )
    # The all-reduce's achieved share of `intra_node_bw × link_efficiency`: 1 on NVLink and on PCIe with
    # peer-to-peer access; well below 1 where PCIe GPUs have no P2P (NCCL then stages through host memory).
    allreduce_bw_scale: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="scales the link bandwidth all-reduces achieve",
        json_schema_extra=_fit(0.05, 1.0, default=True),
    )
    # The kernels' achieved rates relative to the cost model's (measured tables, or curves transferred from the
    # nearest measured GPU): an engine's own GEMM/attention kernels (cuBLAS vs CUTLASS/Triton, fused
    # epilogues, torch.compile fusion of element-wise ops) differ from the ones profiled. 1 = as profiled;
    # bounded to +-50 %, beyond which the shape of the curves, not their scale, is wrong. `compute_*` scales
    # FLOP/s (prefill, large batches), `memory_*` bandwidth (decode: weights and KV), `attention_*` attention
    # on top of both. End-to-end logs separate them: TTFT of long prompts is compute-bound, TPOT memory-bound.
    compute_efficiency_scale: float = Field(
        default=1.0,
        gt=0,
        description="multiplies the kernels' achieved FLOP/s",
        json_schema_extra=_fit(0.5, 1.5, default=True),
    )
    memory_efficiency_scale: float = Field(
        default=1.0,
        gt=0,
        description="multiplies the kernels' achieved memory bandwidth",
        json_schema_extra=_fit(0.5, 1.5, default=True),
    )
    attention_efficiency_scale: float = Field(
        default=1.0,
        gt=0,
        description="multiplies attention's achieved rates (on top of the two above)",
        json_schema_extra=_fit(0.5, 1.5, default=True),
    )
    # HTTP request parsing, tokenising the prompt and streaming tokens back through the OpenAI server: about a
    # millisecond each on a local client (no measurement in the shared data; fit it with `calibrate fit-run`).
    frontend_s: float = Field(
        default=2e-3,
        ge=0,
        description="per request: HTTP, tokenisation, streaming (added to TTFT and E2E)",
        json_schema_extra=_fit(0.0, 0.05, default=True),
    )

    # Streaming in groups: the server sends a request's new tokens to the client every `stream_interval` tokens
    # (and at the end). Every engine ships 1 (SGLang `ServerArgs.stream_interval = 1`, TensorRT-LLM
    # `stream_interval` 1, vLLM `--stream-interval` 1 where it exists); recipes raise it (InferenceX launches
    # SGLang with `--stream-interval 10`) to save detokenisation and HTTP work.
    stream_interval: int = Field(
        default=1,
        ge=1,
        description="tokens per streamed chunk: the client sees tokens in groups of this many (1 = every token)",
    )
    # Where the groups start. True: the first token goes out at once, then every N-th (token counts 1, N + 1,
    # 2N + 1, ...: SGLang's scheduler output processor today, `len(req.output_ids) % stream_interval == 1`;
    # TensorRT-LLM's PyExecutor answers at `py_decoding_iter == 1`). False: chunks at counts N, 2N, ... and the
    # first token waits for the N-th (earlier SGLang releases, `len(req.output_ids) % stream_interval == 0`).
    stream_first_token: bool = Field(
        default=True, description="the first token is streamed at once (else it waits for the stream_interval-th)"
    )

    # Disaggregated pools: which worker streams the first token to the client. "prefill": TTFT ends where the
    # prefill does (Splitwise / DistServe's definition, servesim's default). "decode": the client's stream comes
    # from the decode worker, so its first token arrives after the KV copy and the decode worker's first step —
    # TensorRT-LLM returns it from the generation worker (PR #6512, closed unmerged: "other frameworks return the
    # first token via generation worker and calculate TTFT based on that"); SGLang under Dynamo routes to the
    # decode worker first and streams from it (Dynamo docs, "SGLang Disaggregated Serving"); vLLM's P/D proxy
    # streams the decode instance's response. "decode_admission": from the decode worker, but as it takes the
    # request into its batch, with no step of its own: SGLang's decode scheduler admits a transferred request as a
    # `PrebuiltExtendBatch` and streams the token the prefill computed without a forward
    # (`process_batch_result_prebuilt` -> `stream_output`, python/sglang/srt/managers/
    # scheduler_output_processor_mixin.py, sgl-project/sglang@004ec010d), one decode step before "decode".
    disagg_first_token: Literal["prefill", "decode", "decode_admission"] = Field(
        default="prefill",
        description="disaggregated: the first token reaches the client from the prefill worker, the decode worker "
        "after its first step (decode), or the decode worker as it admits the request (decode_admission)",
    )

    # Context holds (TensorRT-LLM PyExecutor `_balance_adp_requests` / `_waiting_requests`; the mechanism is in
    # policies/context_hold.py, obeyed by the `sarathi` scheduler). Defaults are TensorRT-LLM's own: balance off
    # (`AttentionDpConfig.enable_balance = False`, `timeout_iters = 50`, `batching_wait_iters = 10`, LLM API
    # reference 1.3.0rc27) and batch waiting off (`batch_wait_timeout_iters = 0`, `batch_wait_max_tokens_ratio
    # = 0`). Serving recipes switch them on: InferenceX's DeepSeek-R1 TensorRT-LLM recipes with attention DP
    # set `attention_dp_config: {enable_balance: true, batching_wait_iters: 0, timeout_iters: 60}`.
    attention_dp_balance: bool = Field(
        default=False, description="attention DP: hold context requests until every DP rank has one (TRT-LLM)"
    )
    attention_dp_timeout_iters: int = Field(
        default=50, ge=1, description="attention-DP balance: most iterations a context request is held"
    )
    attention_dp_batching_wait_iters: int = Field(
        default=10, ge=0, description="attention-DP balance: iterations to wait for more once every rank has one"
    )
    # SGLang under `--enable-dp-attention`: one scheduler per DP rank, each with `chunked_prefill_size // dp_size`
    # prompt tokens per step, requests dispatched to one rank each on arrival (policies/dp_chunks.py cites the
    # sources). On: the `sarathi` scheduler of an instance with attention DP splits its token budget over the
    # ranks and plans each prompt's chunks on its own rank. Off (TensorRT-LLM, vLLM: each rank's own budget is
    # the recipe's, `coverage.rank_budget`): the instance's budget goes to prompts in FCFS order.
    attention_dp_rank_chunks: bool = Field(
        default=False, description="attention DP: token budget // dp per rank, each prompt on one rank (SGLang)"
    )
    batch_wait_timeout_iters: int = Field(
        default=0, ge=0, description="no attention DP: iterations context requests wait to batch (0: off)"
    )
    batch_wait_max_tokens_ratio: float = Field(
        default=0.0, ge=0, le=1, description="no attention DP: stop waiting at this share of the token budget"
    )

    # SGLang's `--scheduler-recv-interval` (`SchedulerRecvSkipper`, python/sglang/srt/managers/
    # scheduler_recv_skipper.py): the scheduler polls the tokenizer for new requests only when a counter reaches
    # the interval; a decode-only iteration adds 1 to it, any other iteration 1000 (so a receive follows every
    # prefill at once), and it restarts from 0 at each receive. A prompt arriving while the batch only decodes
    # waits up to that many decode iterations before it can be scheduled. Default 1: every iteration (SGLang's
    # default); serving recipes raise it (InferenceX's SGLang DeepSeek-R1 / Qwen3.5 recipes: 10 below 16
    # clients, 30 from 16).
    scheduler_recv_interval: int = Field(
        default=1, ge=1, description="SGLang: decode iterations between polls for new requests (1: every iteration)"
    )

    # How expert-parallel ranks exchange tokens under attention DP (sim.costmodel.alltoall, `MoeComm`). Default:
    # vLLM's `--all2all-backend` default `allgather_reducescatter` (vllm/config/parallel.py
    # `ParallelConfig.all2all_backend`; docs "Expert Parallel Deployment"); InferenceX's vLLM Kimi-K2.5 /
    # MiniMax-M2.5 recipes pass `--data-parallel-size N --enable-expert-parallel` and no `--all2all-backend` or
    # VLLM_ALL2ALL_BACKEND, on HEAD or in their history. SGLang's default `--moe-a2a-backend none` gathers DP
    # attention's tokens to every rank and scatters them back (python/sglang/srt/layers/dp_attention.py), the same
    # pattern (InferenceX's single-node SGLang recipes pass no backend but for DSv4 / GLM-5.2 `megamoe`; many
    # multi-node disagg recipes pass `--moe-a2a-backend deepep`: set `deepep` for those; priced over NVLink where the
    # instance fits the GPU's NVLink domain; prompt steps on DeepEP's normal kernels, alltoall). TensorRT-LLM: PRESETS.
    moe_all2all: Literal["one_sided", "allgather_reducescatter", "deepep"] = Field(
        default="allgather_reducescatter",
        description="attention DP + EP token exchange: one_sided (TRT-LLM NVLink), allgather_reducescatter, deepep",
    )
    # TensorRT-LLM up to 1.2.0rc2 ran its all-to-all only when ep > experts per token, else all-gather +
    # reduce-scatter (`CutlassFusedMoE.select_alltoall_method_type` before PR #8950; sim.costmodel.alltoall).
    moe_alltoall_above_topk: bool = Field(
        default=False, description="the all-to-all only when ep > experts per token (TensorRT-LLM <= 1.2.0rc2)"
    )
    # KV reserved on admission for the outputs still to come (policies/reserve.py; colocated instances). `none`: vLLM,
    # which admits on the prompt's blocks and preempts by recompute when KV runs out. `guaranteed_no_evict`:
    # TensorRT-LLM's default capacity policy (`SchedulerConfig.capacity_scheduler_policy`, llmapi/llm_args.py): a
    # request starts only if the blocks of prompt + max_tokens fit beside what the running requests still need to
    # reach theirs (`getRemainingBlocksToCompletion`). `sglang_new_token_ratio`: SGLang's `PrefillAdder`
    # (managers/schedule_policy.py, sgl-project/sglang@ad0119f): prompt + min(max_new_tokens, clip) must stay
    # below free KV less min(remaining, clip) x new_token_ratio per running request; the ratio starts at `init`,
    # falls by (init - init x min_factor) / decay_steps per step, resets to `init` when idle and to (decoded + 20 x
    # n) / (max_new + 1) after a retraction (SGLANG_* defaults, srt/environ.py). `sglang_ignore_eos`: SGLang with
    # `--disable-radix-cache` serving ignore_eos requests (`add_one_req_ignore_eos`: full outputs, in completion order).
    admission_reserve: Literal["none", "guaranteed_no_evict", "sglang_new_token_ratio", "sglang_ignore_eos"] = Field(
        default="none", description="KV reserved on admission for future output tokens (engine admission policy)"
    )
    init_new_token_ratio: float = Field(default=0.7, gt=0, le=1, description="SGLang: initial new_token_ratio")
    min_new_token_ratio_factor: float = Field(default=0.14, gt=0, le=1, description="SGLang: floor / initial ratio")
    new_token_ratio_decay_steps: int = Field(default=600, ge=1, description="SGLang: steps from initial to floor")
    clip_max_new_tokens: int = Field(default=4096, ge=1, description="SGLang: outputs counted up to this many tokens")
    retract_decode_steps: int = Field(default=20, ge=0, description="SGLang: steps per request in the retract ratio")
    # Routed experts as per-expert GEMMs, one grouped launch, or one launch plus vLLM fused_moe's unpriced launches (the
    # note above `StructuredCost`, the only reader; every MoE scenario of the roofline / table kinds builds one). No
    # preset sets `one_launch` (s10-vllm) or `fused_moe` (its derived part misses PR #24700, COVERAGE.md s12-tpot2).
    moe_grouped_gemm: Literal["per_expert", "one_launch", "fused_moe"] = Field(
        default="per_expert", description="routed experts: per_expert, one_launch, fused_moe (one launch + fixed part)"
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        """Fill unset terms from the preset that `kind` names (`engine_presets.PRESETS`; an explicit term wins)."""
        if not isinstance(data, dict):
            return data
        kind = data.get("kind", "vllm-v1")
        if kind not in registry.ENGINES:
            raise ValueError(f"unknown serving engine {kind!r}; expected one of {', '.join(registry.ENGINES.kinds())}")
        return {**PRESETS[kind], **data}

    def cpu_s(self, seqs: int) -> float:
        """CPU time of one step of `seqs` sequences (scheduling, input preparation, output processing)."""
        return self.scheduler_s + seqs * self.sample_per_seq_s

    def host_s(self, seqs: int, kernels: float) -> float:
        """The part of a step's CPU time the GPU waits for, when its kernels take `kernels` seconds."""
        cpu = self.cpu_s(seqs)
        return max(0.0, cpu - kernels) if self.async_scheduling else cpu

    def graph_captured(self, tokens: int, decode_only: bool) -> bool:
        """True when an iteration of `tokens` tokens replays a CUDA graph (no per-layer launch term)."""
        if tokens > self.cuda_graph_max_batch:
            return False
        return decode_only or self.piecewise_graphs


def kernel_scales(engine: ServingEngineConfig | None) -> dict[str, float]:
    """`ProfileParams` scales of the engine's kernel-efficiency terms (empty without an engine)."""
    if engine is None:
        return {}
    return {
        "compute_scale": engine.compute_efficiency_scale,
        "memory_scale": engine.memory_efficiency_scale,
        "attention_scale": engine.attention_efficiency_scale,
    }


def fit_fields() -> dict[str, tuple[float, float]]:
    """The fittable terms and their bounds (the `fit_bounds` contract with `calibrate fit-run`)."""
    out: dict[str, tuple[float, float]] = {}
    for name, f in ServingEngineConfig.model_fields.items():
        extra = f.json_schema_extra
        bounds: Any = extra.get("fit_bounds") if isinstance(extra, dict) else None
        if bounds is not None:
            out[name] = (float(bounds[0]), float(bounds[1]))
    return out


def _register(kind: str) -> None:
    def factory(cfg: ServingEngineConfig, **_: object) -> ServingEngineConfig:
        return cfg

    factory.__doc__ = DESCRIPTIONS[kind]
    registry.ENGINES.register(kind, ServingEngineConfig)(factory)


for _kind in PRESETS:
    _register(_kind)


def preset(kind: str = "vllm-v1", **overrides: Any) -> ServingEngineConfig:
    """A preset's terms, with overrides."""
    return ServingEngineConfig.model_validate({"kind": kind, **overrides})
