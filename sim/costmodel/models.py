"""Iteration cost models: how long one batch (prefill chunks + decodes) takes on one instance.

Every kind answers three questions: `iteration()` for any batch, `decode_run()` for k consecutive
decode-only steps at once (the fast-forward path; vectorised), and `breakdown()` by operator for
`servesim estimate`. Decode-only steps always go through `decode_run` so stepping one iteration at a
time and fast-forwarding give bit-identical times: `decode_run` is elementwise in `ctx_sums` (no
reductions, no SIMD-sensitive transcendental calls on the array).

Kinds: `linear` (analytic), `roofline` (per-operator roofline; on a GPU with measured tables each
operator's achieved fraction of peak comes from efficiency curves learned from them, see
`hwprofiles.efficiency`, else spec-sheet efficiencies), `table` (the model's own measured operator
tables, interpolated in log-space of tokens, the roofline beyond them). `roofline` and `table` accept a
fitted `profile` (see `calibrate.fit`) of engine-level overheads and efficiency scales.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hwprofiles.interp import exp_interp_log
from hwprofiles.specs import GPUSpec, ModelSpec
from sim.costmodel import attention as _attention
from sim.costmodel import comm
from sim.costmodel.base import COST_MODELS, Chunks, CostModel, decode_coeffs
from sim.costmodel.config import RooflineCostConfig, TableCostConfig, _PhysicalCostConfig
from sim.costmodel.curves import _efficiency, _own_efficiency, _resolve, capped
from sim.costmodel.eager import busiest_rank, charge
from sim.costmodel.engine import ServingEngineConfig, kernel_scales
from sim.costmodel.linear import LinearCost, LinearCostConfig
from sim.costmodel.profile import CostProfile, ProfileParams, load_profile

__all__ = [
    "COST_MODELS",
    "Chunks",
    "CostModel",
    "CostProfile",
    "LinearCost",
    "LinearCostConfig",
    "ProfileParams",
    "RooflineCost",
    "RooflineCostConfig",
    "TableCostConfig",
    "_efficiency",
    "_own_efficiency",
    "_resolve",
    "decode_coeffs",
    "load_profile",
]


_CURVE_LISTS: dict[int, tuple[Any, list[float], list[float]]] = {}  # curve id -> (curve, log sizes, log ratios)

# memory-bound class -> the measured operator whose launch floor bounds it
_CLASS_OP = {
    "norm": "input_layernorm",
    "norm2": "post_attention_layernorm",
    "add": "add",
    "rope": "attn_rope",
    "act": "mlp_act",
    "kv_save": "attn_kv_cache_save",
    "emb": "emb",
}
# memory-bound classes priced per layer, with how many times each runs per layer
_ELEMENTWISE = (("norm", 1), ("norm2", 1), ("add", 2), ("rope", 1), ("act", 1), ("kv_save", 1))


class RooflineCost:
    """Roofline per operator, summed over layers (see DESIGN.md "Cost model").

    Linear layers are GEMMs with M = tokens in the batch and (K, N) from the model sharded by `tp`;
    attention prefill is q new tokens over c cached + q new (causal), decode attention reads every
    context token's K and V once; two ring all-reduces per layer when tp > 1; LM head over the
    sequences that produce a token; a fixed per-iteration and per-layer overhead.

    With `eff` (learned efficiency curves, `hwprofiles.efficiency.Efficiency`) each operator costs
    `ratio(size) × roofline at peak`, the ratio interpolated in log size and held flat beyond the
    measured range (so far from the tables it is the roofline scaled to the nearest measurement).
    Without it, constant `compute_efficiency` / `memory_efficiency` apply (spec-sheet defaults).
    `fallback` supplies curves for operators `eff` lacks; `collectives` is `hwprofiles.tables`'s
    all-reduce (bytes, seconds) curve for this tp.
    """

    def __init__(
        self,
        cfg: _PhysicalCostConfig,
        model: ModelSpec,
        gpu: GPUSpec,
        tp: int = 1,
        *,
        eff: Any = None,
        fallback: Any = None,
        collectives: tuple[np.ndarray, np.ndarray] | None = None,
        params: ProfileParams | None = None,
        engine: ServingEngineConfig | None = None,
        floors: dict[str, float] | None = None,
        transferred_from: str | None = None,
    ) -> None:
        self._floors = floors or {}  # launch floors of transferred curves (sim.costmodel.transfer)
        self._transferred = transferred_from
        p = params or ProfileParams(
            iteration_overhead_s=cfg.iteration_overhead_s,
            layer_overhead_s=cfg.layer_overhead_s,
            seq_overhead_s=cfg.seq_overhead_s,
            **kernel_scales(engine),  # the serving engine's kernel-efficiency terms (1 by default)
        )
        self.cfg, self.model, self.gpu, self.tp, self.params = cfg, model, gpu, tp, p
        # kernel scales (fitted terms, bounds 0.5-1.5) may lift an efficiency, never past the spec peak: every
        # effective rate below is capped at what the silicon can do (scales of 1 leave the floats unchanged)
        self.flops = min(gpu.bf16_flops * cfg.compute_efficiency * p.compute_scale, gpu.bf16_flops)
        self.bw = min(gpu.mem_bw * cfg.memory_efficiency * p.memory_scale, gpu.mem_bw)
        self.link = gpu.intra_node_bw * cfg.link_efficiency
        self.peak_flops = gpu.bf16_flops * p.compute_scale  # curves are ratios to the spec peaks
        self.peak_bw = gpu.mem_bw * p.memory_scale
        # a scale above 1 lifts curve-priced operators only up to the spec roofline (`curves.capped`, per operator
        # and size); with no scale above 1 nothing is capped and the floats are the unscaled model's
        self._lifted = p.compute_scale > 1.0 or p.memory_scale > 1.0
        self._attn_lifted = p.attention_scale * max(p.compute_scale, p.memory_scale) > 1.0
        sa = p.attention_scale
        self.attn_flops, self.attn_bw = min(self.flops * sa, gpu.bf16_flops), min(self.bw * sa, gpu.mem_bw)
        # measured attention reaches at most prefill_eff_max of these (decode: decode_bw_eff): cap so it stays <= 1
        top = _attention.DEFAULT
        self.attn_peak_flops = min(self.peak_flops * sa, gpu.bf16_flops / top.prefill_eff_max)
        self.attn_peak_bw = min(self.peak_bw * sa, gpu.mem_bw / top.decode_bw_eff)
        self.overhead = p.iteration_overhead_s + model.num_layers * p.layer_overhead_s
        m, a = model, float(model.dtype_bytes)
        self.a = a
        self.L = m.num_layers
        self.h = m.hidden_size
        self.hq = max(1, m.num_heads // tp) * m.head_dim  # query width per GPU
        self.hkv = max(1, m.num_kv_heads // tp) * m.head_dim  # KV width per GPU
        self.inter = m.intermediate_size / tp
        self.up_out = (2 if m.gated_mlp else 1) * self.inter
        self.vocab = m.vocab_size / tp
        # decode attention per layer per context token: 4·hq FLOPs (QK and SV), K+V bytes
        self._attn_tok = max(4.0 * self.hq / self.attn_flops, 2.0 * self.hkv * a / self.attn_bw)
        self._attn_coef = self.L * self._attn_tok
        self._attn_floor = 0.0  # decode attention launch floor, all layers (measured-efficiency attention)
        self._dense_cache: dict[int, dict[str, float]] = {}
        self._decode_attn_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._setup_curves(eff, fallback, collectives)
        self._setup_engine(engine)

    # -- serving engine (sim.costmodel.engine, comm, attention) ------------------------------------------
    def _setup_engine(self, engine: ServingEngineConfig | None) -> None:
        """Engine terms, all-reduce implementation and measured attention efficiency. `engine` None: kernels
        and the config's/profile's own overheads only (what `calibrate fit` and fitted profiles use)."""
        self.engine = engine
        gpu, cfg = self.gpu, self.cfg
        self.ar = comm.build(self.tp, self.link, gpu, engine, cfg.allreduce_latency_s, self._coll)
        # after the LM head: the TP logits gather and the sampler, (fixed, per sequence) seconds
        self._logits = comm.logits_terms(engine, self.ar, self.model.vocab_size, self.a, self.bw)
        # attention from measured efficiency, unless the tables carry attention or efficiency is constant
        self.attn_eff = _attention.DEFAULT if cfg.efficiency == "curves" else None
        if self.attn_eff is not None and not (self.curves and self._attn_grids.get("decode") is not None):
            floor, per_tok = self.attn_eff.decode_coeffs(self.hkv, self.a, self.attn_peak_bw)
            self._attn_floor, self._attn_coef = self.L * floor, self.L * per_tok

    def _engine_s(self, tokens: int, seqs: int, decode_only: bool, kernels: float) -> tuple[float, float]:
        """(engine CPU time, launch-bound excess) of one iteration whose kernels take `kernels` seconds."""
        e = self.engine
        if e is None or tokens == 0:
            return 0.0, 0.0
        cpu = e.host_s(seqs, kernels)
        if e.graph_captured(busiest_rank(self, tokens), decode_only) or not e.launch_per_layer_s:
            return cpu, 0.0
        return cpu, max(0.0, self.L * e.launch_per_layer_s - kernels)

    @property
    def provenance(self) -> dict[str, str]:
        """Where each part of the cost comes from: measured tables, transferred from another GPU, or the
        spec sheet (constant efficiencies); what summary.json and the run table report."""
        if not self.curves:
            kern = "spec-sheet (constant efficiency)"
        elif self._transferred:
            kern = f"transferred from {self._transferred} (scaled by peaks, with launch floors)"
        else:
            kern = f"measured ({self.gpu.name} tables)"
        if self.curves and self._attn_grids.get("decode") is not None:
            attn = kern
        elif getattr(self, "attn_eff", None) is not None and type(self)._prefill_attn is RooflineCost._prefill_attn:
            attn = "transferred (measured A100 FlashAttention efficiency, scaled by peaks)"
        else:
            attn = "spec-sheet (roofline)"
        return {
            "gemm": kern,
            "elementwise": kern,
            "attention": attn,
            "collectives": "measured" if self._coll is not None else "formula (link bandwidth)",
        }

    # -- learned curves -----------------------------------------------------------------------------------
    def _setup_curves(self, eff: Any, fallback: Any, collectives: tuple[np.ndarray, np.ndarray] | None) -> None:
        from hwprofiles.efficiency import Widths

        self.curves = eff is not None or fallback is not None
        self._w = Widths.of(self.model, self.tp)
        self._gemm_curves: dict[str, Any] = {}
        self._mem_curves: dict[str, Any] = {}
        self._attn_grids: dict[str, Any] = {}
        sources = [s for s in (eff, fallback) if s is not None]
        for op in ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj", "lm_head"):
            k, n = self._w.gemm(op)
            self._gemm_curves[op] = next((c for s in sources if (c := s.gemm_curve(k, n, op)) is not None), None)
        for cls in ("norm", "norm2", "add", "rope", "act", "kv_save", "emb"):
            width, _ = self._w.mem(cls)
            self._mem_curves[cls] = next((c for s in sources if (c := s.mem_curve(cls, width)) is not None), None)
        for phase in ("prefill", "decode"):
            self._attn_grids[phase] = next((g for s in sources if (g := s.attention_grid(phase)) is not None), None)
        self._coll = collectives if self.tp > 1 else None

    @staticmethod
    def _ratio(x: float, curve: Any) -> float:
        """exp(interp(log x)) on a learned curve, held flat outside it; plain Python (np.interp on one
        scalar costs microseconds and this runs for every operator of every new batch size)."""
        got = _CURVE_LISTS.get(id(curve))
        if got is None or got[0] is not curve:
            got = _CURVE_LISTS[id(curve)] = (curve, [float(v) for v in curve[0]], [float(v) for v in curve[1]])
        return exp_interp_log(x, got[1], got[2])

    # -- operators -----------------------------------------------------------------------------------
    def _gemm(self, m: float, k: float, n: float, weight_copies: float = 1.0) -> float:
        flops = 2.0 * m * k * n
        byts = (k * n * weight_copies + m * k + m * n) * self.a
        return max(flops / self.flops, byts / self.bw)

    def _linear(self, op: str, m: float, k: float, n: float, weight_copies: float = 1.0) -> float:
        """One linear operator: the learned curve when there is one, else the constant-efficiency roofline."""
        curve = self._gemm_curves.get(op) if self.curves and weight_copies == 1.0 else None
        if curve is None:
            return self._gemm(m, k, n, weight_copies)
        flops, byts = 2.0 * m * k * n, (k * n + m * k + m * n) * self.a
        ratio = self._ratio(m, curve)
        t = max(flops / self.peak_flops, byts / self.peak_bw) * ratio
        if self._lifted:
            t = capped(t, max(flops / self.gpu.bf16_flops, byts / self.gpu.mem_bw), ratio)
        if self._floors:
            return max(t, self._floors.get(op, self._floors.get("gemm", 0.0)))
        return t

    def _mem(self, byts: float) -> float:
        return byts / self.bw

    def _elementwise(self, m: int, act_tokens: float) -> float:
        mod, h, a = self.model, self.h, self.a
        act = (3 if mod.gated_mlp else 2) * act_tokens * self.inter * a
        if not self.curves:
            return self.L * self._mem(2 * 2 * m * h * a + 2 * 3 * m * h * a + act + 2 * m * (self.hq + self.hkv) * a)
        per_layer = 0.0
        for cls, times in _ELEMENTWISE:
            per_tok = self._w.mem(cls)[1]
            curve = self._mem_curves.get(cls)
            if cls == "act" and (curve is None or act_tokens != m):
                per_layer += self._mem(act)
                continue
            if curve is None:
                if cls != "kv_save":  # the constant model has no separate KV write
                    per_layer += times * self._mem(m * per_tok)
                continue
            t = self._mem_curve(m * per_tok, m, curve, times)
            per_layer += max(t, times * self._floors.get(_CLASS_OP[cls], 0.0)) if self._floors else t
        total = self.L * per_layer
        emb = self._mem_curves.get("emb")
        if emb is not None:
            total += self._mem_curve(m * self._w.mem("emb")[1], m, emb)
        return total

    def _mem_curve(self, byts: float, m: float, curve: Any, times: int = 1) -> float:
        """`times` memory-bound operators of `byts` bytes on m tokens priced by their learned curve (scales capped)."""
        ratio = self._ratio(m, curve)
        t = times * (byts / self.peak_bw) * ratio
        return capped(t, times * byts / self.gpu.mem_bw, ratio) if self._lifted else t

    def _allreduce(self, m: int) -> float:
        """One all-reduce of m tokens' activations (`sim.costmodel.comm`)."""
        return self.ar.seconds(m * self.h * self.a) + self.params.comm_latency_s

    def _dense(self, m: int) -> dict[str, float]:
        """Per-iteration seconds of token-count-dependent operators (all layers) for M = m tokens."""
        got = self._dense_cache.get(m)
        if got is not None:
            return got
        mod, L, h = self.model, self.L, self.h
        ops: dict[str, float] = {}
        ops["qkv_proj"] = L * self._linear("attn_pre_proj", m, h, self.hq + 2 * self.hkv)
        ops["o_proj"] = L * self._linear("attn_post_proj", m, self.hq, h)
        if mod.num_experts > 1:
            routed = m * mod.experts_per_token
            active = min(mod.num_experts, routed)
            ops["mlp_up"] = L * self._linear("mlp_up_proj", routed, h, self.up_out, active)
            ops["mlp_down"] = L * self._linear("mlp_down_proj", routed, self.inter, h, active)
            act_tokens = routed
        else:
            ops["mlp_up"] = L * self._linear("mlp_up_proj", m, h, self.up_out)
            ops["mlp_down"] = L * self._linear("mlp_down_proj", m, self.inter, h)
            act_tokens = m
        ops["elementwise"] = self._elementwise(m, act_tokens)
        if self.tp > 1:
            ops["allreduce"] = 2 * L * self._allreduce(m)
        else:
            ops["allreduce"] = 0.0
        ops["overhead"] = self.overhead
        if len(self._dense_cache) < 65536:
            self._dense_cache[m] = ops
        return ops

    def _lm_head(self, seqs: int) -> float:
        """The LM head GEMM, then the logits' TP gather and the sampler (`comm.logits_terms`)."""
        if not seqs:
            return 0.0
        return self._linear("lm_head", seqs, self.h, self.vocab) + self._logits[0] + seqs * self._logits[1]

    def _prefill_attn(self, q: int, c: int) -> float:
        flops = 4.0 * self.hq * q * (c + 0.5 * q)  # causal: new tokens see the cache and half of themselves
        byts = ((c + q) * 2 * self.hkv + 2 * q * self.hq) * self.a
        grid = self._attn_grids.get("prefill") if self.curves else None
        if grid is None:
            if self.attn_eff is not None:  # measured FlashAttention efficiency on this GPU's peaks
                return self.L * self.attn_eff.prefill_s(q, c, self.hq, self.attn_peak_flops)
            return self.L * max(flops / self.attn_flops, byts / self.attn_bw)
        from hwprofiles.efficiency import bilinear

        roof = max(flops / self.attn_peak_flops, byts / self.attn_peak_bw)
        ratio = math.exp(bilinear(math.log(q), math.log(c + 1), grid))
        if self._attn_lifted:
            return self.L * capped(roof * ratio, max(flops / self.gpu.bf16_flops, byts / self.gpu.mem_bw), ratio)
        return self.L * roof * ratio

    def _decode_attn_table(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """For n sequences: (per-sequence context grid, ratio) densified so pricing needs no logarithms."""
        got = self._decode_attn_cache.get(n)
        if got is None:
            from hwprofiles.efficiency import bilinear

            _, ys, _ = grid = self._attn_grids["decode"]
            dense = np.linspace(ys[0], ys[-1], max(2, int((ys[-1] - ys[0]) / math.log(2) * 16) + 1))
            ratio = np.exp([bilinear(math.log(n), float(y), grid) for y in dense])
            got = (np.exp(dense), ratio)
            if len(self._decode_attn_cache) < 4096:
                self._decode_attn_cache[n] = got
        return got

    def _decode_attn(self, n: int, ctx: np.ndarray) -> np.ndarray:
        """Decode attention over all layers, elementwise in the context sums `ctx`."""
        if not self.curves or self._attn_grids.get("decode") is None or n == 0:
            return self._attn_coef * ctx  # the launch floor (`_attn_floor`) is in `_decode_base`
        cgrid, ratio = self._decode_attn_table(n)
        flops = 4.0 * self.hq * ctx
        byts = (ctx * 2 * self.hkv + 2 * n * self.hq) * self.a
        roof = np.maximum(flops / self.attn_peak_flops, byts / self.attn_peak_bw)
        r = np.interp(ctx / n, cgrid, ratio)
        if self._attn_lifted:  # `curves.capped`, elementwise: no scale lifts attention past the spec roofline
            spec = np.maximum(flops / self.gpu.bf16_flops, byts / self.gpu.mem_bw)
            return self.L * np.maximum(roof * r, spec * np.minimum(r, 1.0))
        return self.L * roof * r

    def operator(self, op: str, m: int) -> float:
        """Seconds of one measured-table operator (Vidur's names) on m tokens, one layer's worth
        (`emb`, `lm_head`: per iteration); what fidelity checks and tests compare with table rows."""
        from hwprofiles.efficiency import MEM_CLASS

        if op in ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj", "lm_head"):
            k, n = self._w.gemm(op)
            return self._linear(op, m, k, n)
        cls = MEM_CLASS[op]
        per_tok = self._w.mem(cls)[1]
        curve = self._mem_curves.get(cls) if self.curves else None
        if curve is None:
            return self._mem(m * per_tok)
        t = self._mem_curve(m * per_tok, m, curve)
        return max(t, self._floors.get(op, 0.0)) if self._floors else t

    # -- public ----------------------------------------------------------------------------------------
    def breakdown(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> dict[str, float]:
        if not prefill:  # decode-only: exactly what decode_run charges (fast-forward equality)
            return self._decode_breakdown(n_decode, float(decode_ctx))
        tokens = sum(q for q, _ in prefill) + n_decode
        ops = dict(self._dense(tokens))
        seqs = len(prefill) + n_decode
        if self.params.seq_overhead_s:
            ops["overhead"] = ops["overhead"] + seqs * self.params.seq_overhead_s
        ops["attn_prefill"] = sum(self._prefill_attn(q, c) for q, c in prefill)
        ops["attn_decode"] = float(self._decode_attn(n_decode, np.array([float(decode_ctx)]))[0])
        ops["attn_decode"] += self._attn_floor if n_decode else 0.0
        ops["lm_head"] = self._lm_head(seqs)
        charge(self, ops, prefill, n_decode)  # CPU step, launch-bound excess, eager host time in series (eager.py)
        return ops

    def _decode_breakdown(self, n: int, ctx: float) -> dict[str, float]:
        ops = dict(self._dense(n))
        ops["lm_head"] = self._lm_head(n)
        if self.params.seq_overhead_s:
            ops["overhead"] = ops["overhead"] + n * self.params.seq_overhead_s
        ops["attn_decode"] = float(self._decode_attn(n, np.array([ctx]))[0]) + (self._attn_floor if n else 0.0)
        ops["engine_cpu"], ops["launch"] = self._engine_s(n, n, True, sum(ops.values()) - ops["overhead"])
        return ops

    def iteration(self, prefill: Chunks, n_decode: int, decode_ctx: int) -> float:
        if not prefill:
            return float(self.decode_run(n_decode, np.array([float(decode_ctx)]))[0])
        return sum(self.breakdown(prefill, n_decode, decode_ctx).values())

    def _decode_base(self, n: int) -> float:
        """Context-independent seconds of a decode step of n sequences (dense operators, LM head, overheads)."""
        base = sum(self._dense(n).values()) + self._lm_head(n)
        if self.params.seq_overhead_s:
            base += n * self.params.seq_overhead_s
        if n:
            base += self._attn_floor
        if self.engine is not None and n and not self.engine.async_scheduling:
            base += self.engine.cpu_s(n)  # async: charged in decode_run beyond the kernels only
        return base

    def _launch_bound(self, n: int) -> bool:
        e, m = self.engine, busiest_rank(self, n)  # graphs are captured per attention-DP rank
        return e is not None and n > 0 and bool(e.launch_per_layer_s) and not e.graph_captured(m, True)

    def decode_run(self, n: int, ctx_sums: np.ndarray) -> np.ndarray:
        base = self._decode_base(n)
        attn = self._decode_attn(n, np.asarray(ctx_sums, dtype=np.float64))
        e, eager = self.engine, self._launch_bound(n)
        hidden = e is not None and n > 0 and e.async_scheduling
        if not (eager or hidden):
            return base + attn
        # the host works while the GPU runs (eager launches of L layers; async scheduling's CPU step): the slower
        # of the two sets the pace
        assert e is not None
        kernels = (base - (0.0 if hidden else e.cpu_s(n)) - self.overhead) + attn  # GPU time: what the host races
        out = base + attn
        if hidden:
            out = out + np.maximum(0.0, e.cpu_s(n) - kernels)
        return out + np.maximum(0.0, self.L * e.launch_per_layer_s - kernels) if eager else out

    def _host_paced(self, n: int) -> bool:
        """Whether the host can set the pace of a decode step of n sequences, which then is not a + b·context:
        eager launches (`_launch_bound`), or async scheduling's CPU step outlasting the kernels at zero context
        (`decode_run` charges max(0, CPU - kernels)). The one gate of every class's `decode_coeffs`."""
        if self._launch_bound(n):
            return True
        e = self.engine
        return e is not None and n > 0 and e.async_scheduling and e.cpu_s(n) > self._decode_base(n) - self.overhead

    def decode_coeffs(self, n: int) -> tuple[float, float] | None:
        """(a, b) when a decode step costs exactly a + b·context (no measured decode-attention curve, and the host
        never sets the pace: `_host_paced`)."""
        if (self.curves and self._attn_grids.get("decode") is not None and n) or self._host_paced(n):
            return None
        return self._decode_base(n), self._attn_coef
