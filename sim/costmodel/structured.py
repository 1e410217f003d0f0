"""The roofline for model structures and layouts the dense-GQA picture misses: MoE (routed + shared experts,
expert parallelism with all-to-all and load imbalance), MLA (compressed latent cache, absorbed decode),
local-window / linear / sparse attention layers, quantised GEMMs, and attention data parallelism.

`RooflineCost` prices a bf16 dense model on a plain tp layout exactly as before; the builder switches to
`StructuredCost` only when the model, the layout or the precision needs it. The instance's batch is split
over `attention_dp` ranks in lockstep: a step costs what its busiest rank costs (ceil(n / dp) decodes,
chunks placed whole largest-first, for attention and dense layers alike: `_busiest_tokens`), while routed
experts see every rank's tokens. The attention terms live in the base class,
`sim.costmodel.structured_attention` (split off to keep each module within the layout limit).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwprofiles.specs import GPUSpec, ModelSpec
from sim.costmodel import moe
from sim.costmodel.alltoall import moe_comm, prompt_comm
from sim.costmodel.curves import capped
from sim.costmodel.eager import charge
from sim.costmodel.gdn import gdn_kernels
from sim.costmodel.layout import Layout
from sim.costmodel.models import Chunks, _PhysicalCostConfig
from sim.costmodel.quant import DEFAULT, MODULES, Module, Quantization
from sim.costmodel.structured_attention import DECODE_QUERY, FP8_ATTENTION_GPUS, StructuredAttention
from sim.costmodel.transfer import table_floors

# A grouped expert GEMM has two readings (`serving_engine.moe_grouped_gemm`). `per_expert`: the curve of one
# expert's (k, n) matrix at its tokens, each expert streamed like a small GEMM with its own ramp and tail.
# `one_launch`: the curve of the (k, n x experts) GEMM at the same tokens per expert, one kernel streaming every
# active expert's bytes. vLLM's `fused_moe_kernel` is one Triton launch per GEMM over all experts' token blocks
# (vllm/model_executor/layers/fused_moe/fused_moe.py); its H100 timings in vllm-project/vllm PR #24700 lie between
# the readings (benchmarks/moe_vllm_kernel_check.py: Qwen3-30B-A3B FP8 at 16-256 tokens, per_expert +64..+83 %,
# one_launch -13..-18 %; at 1-8 tokens -29..+40 % and -26..-46 %), as TensorRT-LLM's TRTLLM-Gen does (blog 24,
# moe_kernel_check.py). `fused_moe`: one_launch plus the launches it leaves unpriced (`moe.fixed_part`), 2 us against
# PR #24700's 18-46 us gap at 1-8 tokens, so every preset keeps `per_expert` (COVERAGE.md, branch s12-tpot2).


class StructuredCost(StructuredAttention):
    """Per-operator roofline over the model's actual layer structure (see module docstring)."""

    def __init__(
        self,
        cfg: _PhysicalCostConfig,
        model: ModelSpec,
        gpu: GPUSpec,
        tp: int = 1,
        *,
        layout: Layout | None = None,
        quant: Quantization = DEFAULT,
        decode_query: int = DECODE_QUERY,
        **parts: Any,
    ) -> None:
        self.layout = layout or Layout(tp=tp)
        self.decode_query = decode_query  # longest MLA query chunk priced in the absorbed form (DECODE_QUERY)
        self.quant = quant
        # (tokens, busiest rank's tokens) -> dense operators, for steps whose tokens are not evenly spread (`_dense`)
        self._dense_rank_cache: dict[tuple[int, int], dict[str, float]] = {}
        super().__init__(cfg, model, gpu, tp, **parts)
        m, lay = model, self.layout
        self.wa, self.aa = quant.weight_bits / 8.0, quant.act_bytes  # the top level's (attention reads `aa`)
        # each module's GEMMs at its own precision (`Quantization.module`: attention projections, routed experts,
        # the rest at the top level's): (weight bytes, activation bytes, peak, ridge factor, activation format)
        self._prec: dict[Module | None, tuple[float, float, float, float, str]] = {}
        for name in (None, *MODULES):
            mq = quant.module(name)
            p = gpu.peak_flops(mq.activations) or gpu.bf16_flops
            wa = mq.weight_bits / 8.0
            self._prec[name] = (
                wa,
                mq.act_bytes,
                p * self.params.compute_scale,
                (2.0 / wa) * (gpu.bf16_flops / p),
                mq.activations,
            )
        # Where a quantised GEMM of M tokens sits relative to its ridge point: it does 2M FLOPs per weight
        # element, so 2M / wa FLOPs per byte against the ridge peak / bandwidth of its tensor cores, while the
        # bf16 curves put 2M / 2 against the bf16 ridge. Reading the curve at M x (2 / wa) x (bf16 peak / peak)
        # keeps the memory-to-compute crossover where it is for this precision — the rule transfer.py applies
        # between GPUs, applied between precisions: 1 for W8A8 FP8, ~0.9 for NVFP4 on B200, 1.8 for FP4 weights
        # on FP8 cores (W4A8), 3.6 for int4 weight-only (whose dequant GEMMs stay memory-bound to larger M).
        self._ridge_m = self._prec[None][3]  # the top level's; each module's is in `_prec` (curves measured in bf16)
        self.kva = quant.kv_bits / 8.0
        # An FP8 KV cache runs prefill attention in FP8 (vLLM docs, "Quantized KV Cache": with FlashAttention 3
        # and an FP8 KV cache the queries are quantised too and attention runs in the FP8 domain; TensorRT-LLM's
        # FMHA takes FP8 inputs with an FP8 cache): the kernel's peak is the GPU's FP8 peak. Only where such
        # kernels exist: FlashAttention 3 is Hopper-only, TRT-LLM's FP8 FMHA targets Hopper and data-centre
        # Blackwell; elsewhere (Ada, GB202, Ampere, ROCm) the cache is dequantised and attention runs in BF16.
        fp8_fmha = gpu.name in FP8_ATTENTION_GPUS
        fp8 = gpu.peak_flops("fp8") if quant.kv_cache == "fp8" and fp8_fmha else None
        self.fmha_scale = fp8 / gpu.bf16_flops if fp8 else 1.0
        self.dp = lay.attention_dp
        self.L = lay.stage_layers(m)
        self.n_full, self.n_local, self.n_lin = (float(m.layer_count(k)) for k in "FLG")
        self.n_moe, self.n_dense = float(m.num_moe_layers), float(m.num_dense_layers)
        if lay.pp > 1:  # one stage's share of each kind
            f = self.L / m.num_layers
            self.n_full, self.n_local, self.n_lin = self.n_full * f, self.n_local * f, self.n_lin * f
            self.n_moe, self.n_dense = self.n_moe * f, self.n_dense * f
        self.heads = max(1, m.num_heads // tp)
        self.overhead = self.params.iteration_overhead_s + self.L * self.params.layer_overhead_s
        self._shape_curves: dict[tuple[str, float, float], Any] = {}
        src = self._fallback if self._fallback is not None else self._eff
        # launch floors of the memory-bound kernels (`_elementwise`): the transfer's, else the measured tables'
        tables = getattr(src, "tables", None)
        self._kfloor = dict(self._floors) if self._floors else (table_floors(tables) if tables is not None else {})
        e_aa = self._prec["experts"][1]  # tokens dispatched at the experts' activation precision
        self._prompt_a2a = prompt_comm(self.engine, m, gpu, lay, self.h, e_aa, self.cfg.link_efficiency, self.ar)
        self._setup_attention()

    # -- GEMMs at the deployment's precision -----------------------------------------------------------
    def _curve(self, op: str, k: float, n: float) -> Any:
        key = (op, k, n)
        if key not in self._shape_curves:
            srcs = [s for s in (self._eff, self._fallback) if s is not None]
            self._shape_curves[key] = next((c for s in srcs if (c := s.gemm_curve(k, n, op)) is not None), None)
        return self._shape_curves[key]

    def _setup_curves(self, eff: Any, fallback: Any, collectives: Any) -> None:
        self._eff, self._fallback = eff, fallback
        super()._setup_curves(eff, fallback, collectives)

    def gemm(
        self,
        op: str,
        m: float,
        k: float,
        n: float,
        copies: float = 1.0,
        *,
        unquantised: bool = False,
        group: bool = False,
        module: Module | None = None,
    ) -> float:
        """An (m x k) @ (k x n) GEMM over `copies` weight matrices (a grouped expert GEMM reads each active
        expert's weights once), at the deployment's precision (`unquantised`: in the model's own dtype, as
        quantised checkpoints keep the LM head and the router): the learned curve of one (k, n) matrix at the
        tokens per matrix when there is one, of the (k, n x copies) GEMM when `group` (the note above the class).
        `module`: "attention" or "experts" for the precision of that module (`Quantization.module`)."""
        if m <= 0:
            return 0.0
        wa, aa, peak, ridge, act = self._prec[module]
        if unquantised:
            wa, aa, peak, ridge, act = self.a, self.a, self.peak_flops, 1.0, "bf16"
        flops = 2.0 * m * k * n
        byts = k * n * copies * wa + (m * k + m * n) * aa
        # a kernel scale above 1 lifts the GEMM at most to the spec peak of its own precision (FP8 cores for W8A8)
        spec = 0.0
        if self._lifted:
            spec = self.gpu.peak_flops(act) or self.gpu.bf16_flops
        curve = self._curve(op, k, n * copies if group else n) if self.curves else None
        if curve is None:
            rate = peak * self.cfg.compute_efficiency
            return max(flops / (min(rate, spec) if spec else rate), byts / self.bw)
        roof = max(flops / peak, byts / self.peak_bw)
        ratio = self._ratio(max(1.0, m / copies * ridge), curve)
        t = roof * ratio
        if spec:  # `curves.capped`: at or above the spec roofline, or the unscaled measurement if that beat it
            t = capped(t, max(flops / spec, byts / self.gpu.mem_bw), ratio)
        return max(t, self._floors.get("gemm", 0.0)) if self._floors else t

    # -- per-step operators ----------------------------------------------------------------------------
    def _rank_tokens(self, m: int) -> int:
        return -(-m // self.dp)

    def _busiest_tokens(self, prefill: Chunks, n_decode: int) -> int:
        """The busiest attention-DP rank's tokens in a step: what its dense layers (projections, dense MLPs,
        shared experts, norms) and its MoE dispatch run on. A prompt's chunk sits on one rank (its KV cache is
        there: SGLang's `DataParallelController` and TensorRT-LLM's attention-DP scheduler assign a request to
        one rank), so chunks go largest-first onto the least-loaded rank, as `_prefill_ranks` places them for
        attention, and decodes spread evenly, ceil(n / dp) per rank as `_decode_attn` takes them; never below
        ceil(tokens / dp). dp = 1: every token."""
        tokens = sum(q for q, _ in prefill) + n_decode
        if self.dp == 1:
            return tokens
        loads = [0] * self.dp
        for q in sorted((q for q, _ in prefill), reverse=True):
            i = loads.index(min(loads))
            loads[i] += q
        return max(self._rank_tokens(tokens), max(loads) + self._rank_tokens(n_decode))

    def _proj(self, m: int) -> dict[str, float]:
        """Attention projections of one rank's m tokens (all layers of the stage)."""
        mod, h = self.model, self.h
        attn_layers = self.n_full + self.n_local
        if mod.is_mla:
            hd, lat, rope = self.heads, float(mod.kv_lora_rank or 0), mod.qk_rope_head_dim
            q = (
                self.gemm("attn_pre_proj", m, h, mod.q_lora_rank, module="attention")
                + self.gemm("q_b", m, mod.q_lora_rank, hd * mod.head_dim, module="attention")
                if mod.q_lora_rank
                else self.gemm("attn_pre_proj", m, h, hd * mod.head_dim, module="attention")
            )
            kv_a = self.gemm("kv_a", m, h, lat + rope, module="attention")
            # absorbed decode / prefill: W_UK folds into q, W_UV into the output (per-head batched GEMMs)
            absorb = self.gemm("uk", m, hd * (mod.head_dim - rope), lat, module="attention") + self.gemm(
                "uv", m, hd * lat, mod.value_dim, module="attention"
            )
            qkv = attn_layers * (q + kv_a + absorb) + self._indexer_proj(m)  # + DSA's replicated indexer
            o = attn_layers * self.gemm("attn_post_proj", m, hd * mod.value_dim, h, module="attention")
        else:
            qkv = attn_layers * self.gemm("attn_pre_proj", m, h, self.hq + 2 * self.hkv, module="attention")
            o = attn_layers * self.gemm("attn_post_proj", m, self.hq, h, module="attention")
        if self.n_lin:
            kd = mod.linear_num_key_heads * mod.linear_head_dim / self.tp
            vd = mod.linear_num_value_heads * mod.linear_head_dim / self.tp
            qkv += self.n_lin * self.gemm("lin_in", m, h, 2 * kd + 2 * vd, module="attention")
            o += self.n_lin * self.gemm("lin_out", m, vd, h, module="attention")
        return {"qkv_proj": qkv, "o_proj": o}

    def _mlp(self, m: int, m_all: int) -> dict[str, float]:
        """Dense MLP layers and MoE layers (shared experts on the rank's m tokens, routed experts on the
        busiest EP rank's share of all m_all tokens)."""
        mod, h, lay = self.model, self.h, self.layout
        mult = 2 if mod.gated_mlp else 1
        ops = {"mlp_up": 0.0, "mlp_down": 0.0, "moe_experts": 0.0, "moe_comm": 0.0, "pairs": 0.0}
        if self.n_dense:
            inter = mod.intermediate_size / self.tp
            ops["mlp_up"] += self.n_dense * self.gemm("mlp_up_proj", m, h, mult * inter)
            ops["mlp_down"] += self.n_dense * self.gemm("mlp_down_proj", m, inter, h)
        if not self.n_moe:
            return ops
        if mod.shared_width:
            sw = mod.shared_width / self.tp
            ops["mlp_up"] += self.n_moe * self.gemm("mlp_up_proj", m, h, mult * sw)
            ops["mlp_down"] += self.n_moe * self.gemm("mlp_down_proj", m, sw, h)
        k, E, ep = mod.experts_per_token, mod.num_experts, lay.ep
        pairs = m_all * k / ep * moe.imbalance(m_all, k, ep)
        active = moe.busiest_active_experts(m_all, k, E, ep, mod.n_group, mod.topk_group)  # slowest rank's reads
        width = mod.expert_width / lay.moe_tp_size
        router = self.gemm("router", m, h, E, unquantised=True)  # the gate stays bf16 in quantised checkpoints
        grouped = self.engine.moe_grouped_gemm if self.engine is not None else "per_expert"
        up = self.gemm("moe_up", pairs, h, mult * width, active, group=grouped != "per_expert", module="experts")
        down = self.gemm("moe_down", pairs, width, h, active, group=grouped != "per_expert", module="experts")
        e_aa = self._prec["experts"][1]  # the experts' activation precision: what fused_moe quantises to, dispatches
        ops["moe_experts"] = self.n_moe * (router + up + down + moe.fixed_part(grouped, self._kfloor, e_aa < 2))
        ops["pairs"] = pairs
        # Without attention DP every GPU already holds every token (tensor-parallel attention ends in an
        # all-reduce), so expert-parallel ranks run their own experts on the tokens routed to them and one
        # all-reduce sums the partial outputs, as with tp-sharded experts: EP is a remapping of the TP group for
        # the MoE layers (vLLM `--enable-expert-parallel` without DP; TensorRT-LLM docs "Expert Parallelism":
        # token all-to-all (MNNVL / DeepEP) is the attention-DP path). Counted in `_dense`'s all-reduces. With
        # attention DP each rank's tokens are its own and must travel.
        if ep > 1 and self.dp > 1:  # the engine's exchange (`alltoall.MoeComm`): dispatch at the activation precision
            a2a = moe_comm(self.engine, mod, self.gpu, lay, self.h, e_aa, self.cfg.link_efficiency, self.ar)
            ops["moe_comm"] = self.n_moe * (a2a.seconds(m) + (self._allreduce(m) if a2a.tp_allreduce else 0.0))
        elif lay.moe_tp_size > 1 and self.dp > 1:  # tokens gathered from all ranks, results scattered back
            ops["moe_comm"] = self.n_moe * self._allreduce(m_all)
        return ops

    def _elementwise(self, m: int, pairs: float) -> float:
        """The memory-bound kernels between the GEMMs, each a kernel of its own: max(bytes / bandwidth, that
        kernel's launch floor). Activations between GEMMs are in the model's dtype (dynamic FP8/FP4 quantisation
        touches only GEMM inputs). Floors: the fastest measured time of the same operator in the GPU's (or the
        transfer source's) tables (Vidur H100: RMSNorm 3-4 us, RoPE 2 us, activation and add 1 us), without
        which a small decode batch costs only its bytes although every kernel pays its launch and ramp-up.
        Per layer: two fused residual-add + RMSNorm kernels (read x and the residual, write both, read the
        norm's weight), RoPE and the KV-cache write on attention layers (MLA adds the q / kv latent RMSNorms),
        the MLP activation; per MoE layer also the router's top-k, the permutation of tokens to expert order
        and the weighted combine of each token's k expert outputs (vLLM fused_moe `moe_align_block_size` /
        `moe_sum`, TensorRT-LLM expand / finalize routing kernels)."""
        mod, h, e, floor = self.model, float(self.h), float(self.a), self._kfloor

        def kern(elems: float, op: str) -> float:
            return max(elems * e / self.bw, floor.get(op, 0.0))

        attn = self.n_full + self.n_local
        t = self.L * (kern(4 * h * m + h, "input_layernorm") + kern(4 * h * m + h, "post_attention_layernorm"))
        per_attn = kern(2.0 * (self.hq + self.hkv) * m, "attn_rope") + kern(
            2.0 * self._kv_elems * m, "attn_kv_cache_save"
        )
        if mod.is_mla:  # RMSNorm of the compressed kv latent, and of the q latent where q is compressed too
            per_attn += kern(2.0 * (mod.kv_lora_rank or 0) * m, "input_layernorm")
            if mod.q_lora_rank:
                per_attn += kern(2.0 * mod.q_lora_rank * m, "input_layernorm")
        t += attn * per_attn
        if self.n_lin:  # Gated DeltaNet layers: the kernels around the recurrence (`gdn.gdn_kernels`)
            t += self.n_lin * gdn_kernels(mod, self.tp, m, kern)
        if self.n_dense:
            t += self.n_dense * kern(3.0 * mod.intermediate_size / self.tp * m, "mlp_act")
        if self.n_moe:
            width = mod.expert_width / self.layout.moe_tp_size
            per_moe = kern(2.0 * mod.num_experts * m, "mlp_act")  # top-k over fp32 router logits
            # the permutation sorts token ids by expert (the GEMMs gather rows through it); the combine reads every
            # expert output row and writes one row per token
            per_moe += kern(2.0 * pairs, "add") + kern(h * (pairs + m), "add")
            per_moe += kern(3.0 * width * pairs, "mlp_act")
            if mod.shared_width:
                per_moe += kern(3.0 * mod.shared_width / self.tp * m, "mlp_act")
            t += self.n_moe * per_moe
        return t

    def _dense(self, m_all: int, m_rank: int | None = None) -> dict[str, float]:
        """The dense operators of a step of m_all tokens whose busiest rank runs m_rank of them (default: spread
        evenly, ceil(m_all / dp), as a decode-only step's are); cached by m_all when evenly spread, else by both."""
        m = self._rank_tokens(m_all)
        if m_rank is not None and m_rank != m:
            key = (m_all, m_rank)
            hit = self._dense_rank_cache.get(key)
            if hit is None:
                hit = self._dense_at(m_all, m_rank)
                if len(self._dense_rank_cache) < 65536:
                    self._dense_rank_cache[key] = hit
            return hit
        got = self._dense_cache.get(m_all)
        if got is not None:
            return got
        ops = self._dense_at(m_all, m)
        if len(self._dense_cache) < 65536:
            self._dense_cache[m_all] = ops
        return ops

    def _dense_at(self, m_all: int, m: int) -> dict[str, float]:
        ops = self._proj(m)
        mlp = self._mlp(m, m_all)
        pairs = mlp.pop("pairs")
        ops.update(mlp)
        ops["elementwise"] = self._elementwise(m, pairs)
        if self.tp > 1:  # after attention; after dense MLPs; after MoE layers when attention is not data-parallel
            n_ar = self.L + self.n_dense + (self.n_moe if self.dp == 1 else 0)
            ops["allreduce"] = n_ar * self._allreduce(m)
            qk = self.ar.seconds(m * 8.0) + self.params.comm_latency_s  # per-layer QK norm: 2 fp32 (`ModelSpec`)
            ops["allreduce"] += (self.n_full + self.n_local) * qk if self.model.qk_norm_per_layer else 0.0
        else:
            ops["allreduce"] = 0.0
        ops["overhead"] = self.overhead
        return ops

    def _lm_head(self, seqs: int) -> float:
        """The LM head stays in the model's dtype in quantised checkpoints (ModelOpt FP8/NVFP4 exports list
        `lm_head` in `exclude_modules`; DeepSeek's FP8 release and vLLM's FP8 online quantisation leave it
        unquantised), so it is priced with bf16 weights at the bf16 peak whatever the deployment's precision."""
        if not seqs:
            return 0.0
        # then the TP logits gather and the sampler (`comm.logits_terms`), for the busiest rank's sequences
        r = self._rank_tokens(seqs)
        return self.gemm("lm_head", r, self.h, self.vocab, unquantised=True) + self._logits[0] + r * self._logits[1]

    def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        if not prefill:  # decode-only: exactly what decode_run charges (RooflineCost's, with these operators)
            return self._decode_breakdown(n_decode, float(decode_ctx))
        tokens = sum(q for q, _ in prefill) + n_decode
        busiest = self._busiest_tokens(prefill, n_decode)  # the dense layers and MoE dispatch run on the busiest rank's
        ops = dict(self._dense(tokens, busiest))
        if self._prompt_a2a is not None:  # `deepep`: DeepEP's normal kernels on prompt steps (`alltoall.prompt_comm`)
            ops["moe_comm"] = self.n_moe * self._prompt_a2a.seconds(busiest, prompt=True)
        seqs = len(prefill) + n_decode
        ops["overhead"] = ops["overhead"] + seqs * self.params.seq_overhead_s  # + 0.0 without a per-sequence term
        ops["attn_prefill"] = self._prefill_ranks(prefill)
        ops["attn_decode"] = float(self._decode_attn(n_decode, np.array([float(decode_ctx)]))[0])
        # a speculative verifier's absorbed MLA chunks run the generation attention kernel (TensorRT-LLM's takes
        # 1 + MTP tokens per sequence, SGLang's target-verify the MLA decode kernel): its per-layer launch floor
        # is paid once per step, as a decode step pays it, whether or not plain decodes share the step
        ops["attn_decode"] += self._attn_floor if n_decode or self._generation_kernel(prefill) else 0.0
        ops["lm_head"] = self._lm_head(seqs)
        charge(self, ops, prefill, n_decode)  # CPU step, launch-bound excess, eager host time in series (eager.py)
        return ops

    # decode_run is RooflineCost's (`_decode_base`, the engine's per-step terms) + `_decode_attn`, same launch rule

    def decode_coeffs(self, n: int) -> tuple[float, float] | None:
        if self._capped or self.n_lin or self._host_paced(n):
            return None
        return self._decode_base(n), self._coef(n)


def needs_structure(model: ModelSpec, layout: Layout, quant: Quantization) -> bool:
    """Whether the plain roofline would misprice this deployment."""
    plain_attention = model.attention_pattern == "F" and model.attention_topk is None and not model.is_mla
    plain_attention &= not model.qk_norm_per_layer  # its all-reduce is priced here only
    return model.is_moe or not plain_attention or not layout.is_default or not quant.is_default
