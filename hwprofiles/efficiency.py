"""Efficiency curves: how far measured kernels sit from the roofline, learned from a device's tables.

For every measured operator row we take the ratio `r = measured / roofline_at_peak`, where the roofline
is `max(FLOPs / peak FLOP/s, bytes / peak bandwidth)`; `1/r` is the achieved fraction of peak. The ratio
depends on the operator's size: small GEMMs pay launch latency and low occupancy, token counts just
past a tile boundary waste a wave (Vidur's A100 tables: r ≈ 1.5 at M = 128 but ≈ 2.3 at M = 136).

A new shape's curve is predicted from the measured shapes nearest to it: GEMMs by inverse-distance
weighting in (log K, log N) at each token count M of the union grid, so tile and wave effects in M carry
over; memory-bound operators (norms, rotary, activation, residual add, embedding, KV write) by width in
the same class. Held out whole models, this reproduces Vidur's A100/H100 GEMMs within a few per cent
(`servesim fidelity`). Nothing here imports torch or the simulator.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hwprofiles.interp import exp_interp_log
from hwprofiles.specs import ModelSpec
from hwprofiles.tables import GEMM_OPS, MeasuredTables, spec_from_shape

# memory-bound operator classes: table op name -> class
MEM_CLASS = {
    "input_layernorm": "norm",
    "post_attention_layernorm": "norm2",
    "attn_rope": "rope",
    "mlp_act": "act",
    "add": "add",
    "emb": "emb",
    "attn_kv_cache_save": "kv_save",
}
RatioCurve = tuple[np.ndarray, np.ndarray]  # (sizes ascending, log ratio)
Columns = dict[str, np.ndarray]  # measured rows as named numpy columns


@dataclass(frozen=True)
class Widths:
    """Per-GPU widths of one model under `tp`-way tensor parallelism (the cost model's shapes)."""

    h: float
    hq: float
    hkv: float
    inter: float
    up_out: float
    vocab: float
    a: float

    @classmethod
    def of(cls, m: ModelSpec, tp: int) -> Widths:
        inter = m.intermediate_size / tp
        return cls(
            h=float(m.hidden_size),
            hq=float(max(1, m.num_heads // tp) * m.head_dim),
            hkv=float(max(1, m.num_kv_heads // tp) * m.head_dim),
            inter=inter,
            up_out=(2 if m.gated_mlp else 1) * inter,
            vocab=m.vocab_size / tp,
            a=float(m.dtype_bytes),
        )

    def gemm(self, op: str) -> tuple[float, float]:
        """(K, N) of a linear operator."""
        return {
            "attn_pre_proj": (self.h, self.hq + 2 * self.hkv),
            "attn_post_proj": (self.hq, self.h),
            "mlp_up_proj": (self.h, self.up_out),
            "mlp_down_proj": (self.inter, self.h),
            "lm_head": (self.h, self.vocab),
        }[op]

    def mem(self, cls: str) -> tuple[float, float]:
        """(width, bytes per token) of a memory-bound operator class."""
        a = self.a
        return {
            "norm": (self.h, 2 * self.h * a),
            "norm2": (self.h, 2 * self.h * a),
            "add": (self.h, 3 * self.h * a),
            "rope": (self.hq + self.hkv, 2 * (self.hq + self.hkv) * a),
            "act": (self.inter, (self.up_out + self.inter) * a),
            "emb": (self.h, 2 * self.h * a),
            "kv_save": (self.hkv, 4 * self.hkv * a),
        }[cls]


def gemm_roof(m: np.ndarray | float, k: float, n: float, a: float, flops: float, bw: float) -> np.ndarray:
    """Roofline seconds of an (m x k) @ (k x n) GEMM at the given peak rates."""
    m = np.asarray(m, dtype=np.float64)
    return np.maximum(2.0 * m * k * n / flops, (k * n + m * k + m * n) * a / bw)


def attention_roof(
    phase: str, batch: np.ndarray, q: np.ndarray, kv: np.ndarray, w: Widths, flops: float, bw: float
) -> np.ndarray:
    """Roofline seconds of one layer's attention: prefill (per sequence, causal) or decode (batch x kv)."""
    if phase == "prefill":
        f = 4.0 * w.hq * q * (kv + 0.5 * q)
        b = ((kv + q) * 2 * w.hkv + 2 * q * w.hq) * w.a
    else:
        f = 4.0 * w.hq * batch * kv
        b = (batch * kv * 2 * w.hkv + 2 * batch * w.hq) * w.a
    return np.maximum(f / flops, b / bw)


def interp_log(x: float, curve: RatioCurve) -> float:
    """exp of log-ratio interpolated linearly in log size, flat beyond the ends (`hwprofiles.interp`)."""
    xs, ly = curve
    return exp_interp_log(x, [float(v) for v in xs], [float(v) for v in ly])


class Efficiency:
    """Ratio curves learned from one device's tables at its peak rates (`flops`, `bw`)."""

    def __init__(
        self,
        tables: MeasuredTables,
        flops: float,
        bw: float,
        *,
        k: int = 4,
        power: float = 2.0,
        eps: float = 0.1,
        per_op: bool = False,
    ) -> None:
        self.tables, self.flops, self.bw = tables, flops, bw
        self.k, self.power, self.eps = k, power, eps
        gemm, mem = self._ratios()
        self._gemm = _pivot(gemm, ["K", "N"])
        # one model's own tables: each linear operator keeps its own curve (two may share a shape)
        self._by_op = {op: _pivot(g, ["K", "N"]) for op, g in _split(gemm, "op")} if per_op else {}
        self._mem = {c: _pivot(g, ["W"]) for c, g in _split(mem, "cls")}
        self._attn = {ph: self._attention_grid(ph) for ph in ("prefill", "decode")}

    # -- learning -------------------------------------------------------------------------------------
    def _ratios(self) -> tuple[Columns, Columns]:
        """Log ratios of every measured GEMM row (op, K, N, M, lr) and memory-bound row (cls, W, M, lr), as
        numpy columns: framing and grouping them with pandas cost most of start-up."""
        ops = self.tables.operators
        a = self.tables.dtype_bytes
        gemm: dict[str, list[Any]] = {"op": [], "K": [], "N": [], "M": [], "lr": []}
        mem: dict[str, list[Any]] = {"cls": [], "W": [], "M": [], "lr": []}
        if ops.empty:
            return _columns(gemm), _columns(mem)
        cols = {op: ops[op].to_numpy(np.float64) for op in ops.columns if op in GEMM_OPS or op in MEM_CLASS}
        tokens = ops["num_tokens"].to_numpy(np.float64)
        for (_, tp), idx in sorted(ops.groupby(["model", "tp"]).indices.items()):
            w = Widths.of(spec_from_shape("t", ops.iloc[idx[0]], dtype_bytes=a), int(tp))
            m = tokens[idx]
            for op in ops.columns:
                if op not in cols:
                    continue
                t = cols[op][idx] * 1e-3
                ok = np.isfinite(t) & (t > 0)
                n_ok = int(ok.sum())
                if op in GEMM_OPS:
                    kk, nn = w.gemm(op)
                    roof = gemm_roof(m, kk, nn, a, self.flops, self.bw)
                    for col, v in (("op", [op] * n_ok), ("K", np.full(n_ok, kk)), ("N", np.full(n_ok, nn))):
                        gemm[col].append(v)
                    gemm["M"].append(m[ok])
                    gemm["lr"].append(np.log(t[ok] / roof[ok]))
                else:
                    cls = MEM_CLASS[op]
                    width, per_tok = w.mem(cls)
                    roof = m * per_tok / self.bw
                    mem["cls"].append([cls] * n_ok)
                    mem["W"].append(np.full(n_ok, width))
                    mem["M"].append(m[ok])
                    mem["lr"].append(np.log(t[ok] / roof[ok]))
        return _columns(gemm), _columns(mem)

    def _attention_grid(self, phase: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Median log ratio on the (x, y) grid pooled over models: prefill (q, kv+1), decode (batch, kv)."""
        att = self.tables.attention
        if att.empty:
            return None
        rows = att[att["phase"] == phase]
        if rows.empty:
            return None
        parts = []
        for (_, tp), g in rows.groupby(["model", "tp"]):
            w = Widths.of(spec_from_shape("t", g.iloc[0], dtype_bytes=self.tables.dtype_bytes), int(tp))
            b, q, kv = (g[c].to_numpy(np.float64) for c in ("batch", "q_tokens", "kv_tokens"))
            roof = attention_roof(phase, b, q, kv, w, self.flops, self.bw)
            x, y = (q, kv + 1) if phase == "prefill" else (b, kv)
            parts.append(pd.DataFrame({"x": x, "y": y, "lr": np.log(g["time_ms"].to_numpy() * 1e-3 / roof)}))
        return grid2d(pd.concat(parts, ignore_index=True))

    # -- predicting ----------------------------------------------------------------------------------------
    def gemm_curve(self, k: float, n: float, op: str | None = None) -> RatioCurve | None:
        """Log ratio vs log M for a (K, N) GEMM, by inverse-distance weighting of the nearest shapes
        (with `per_op`, the named operator's own measured curve)."""
        if self._by_op:
            piv = self._by_op.get(op or "")
            return None if piv is None else self._idw(piv, np.array([math.log(k), math.log(n)]))
        return self._idw(self._gemm, np.array([math.log(k), math.log(n)]))

    def mem_curve(self, cls: str, width: float) -> RatioCurve | None:
        """Log ratio vs log M for a memory-bound operator class at this width."""
        piv = self._mem.get(cls)
        return None if piv is None else self._idw(piv, np.array([math.log(width)]))

    def attention_grid(self, phase: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(log x, log y, log ratio) grid for attention, or None when the tables have no attention rows."""
        return self._attn.get(phase)

    def _idw(self, piv: tuple[np.ndarray, np.ndarray, np.ndarray] | None, at: np.ndarray) -> RatioCurve | None:
        if piv is None:
            return None
        keys, logm, lr = piv
        d = np.sqrt(((keys - at) ** 2).sum(axis=1))
        idx = np.argsort(d, kind="stable")[: self.k]
        w = 1.0 / (d[idx] + self.eps) ** self.power
        return logm, (w[:, None] * lr[idx]).sum(axis=0) / w.sum()


def _columns(cols: dict[str, list[Any]]) -> Columns:
    """One array per column from per-part pieces (string columns as numpy strings: `_split` compares them in C)."""
    return {c: np.array([x for part in v for x in part], dtype=str) if c in ("op", "cls") else
            np.concatenate(v) if v else np.empty(0) for c, v in cols.items()}  # fmt: skip


def _split(cols: Columns, by: str) -> list[tuple[str, Columns]]:
    """The rows of each value of column `by`, in sorted order (pandas `groupby`)."""
    keys = cols[by]
    return [(k, {c: v[keys == k] for c, v in cols.items()}) for k in sorted(set(keys.tolist()))]


def _pivot(cols: Columns, keys: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(log key matrix, log M grid, log ratio matrix) with every shape filled onto the union M grid: the
    median log ratio per (shape, M) (as pandas' groupby median: the middle value, or the mean of the two),
    each shape's medians interpolated in log M onto the union of measured M."""
    lr = cols["lr"]
    if not len(lr):
        return None
    key_cols = [cols[k] for k in keys]
    order = np.lexsort((lr, cols["M"], *reversed(key_cols)))  # by shape, then M, then value
    ks, m, v = [c[order] for c in key_cols], cols["M"][order], lr[order]
    new = np.ones(len(v), dtype=bool)
    for c in (*ks, m):
        new[1:] &= c[1:] == c[:-1]
    starts = np.flatnonzero(~new | (np.arange(len(v)) == 0))
    counts = np.diff(np.append(starts, len(v)))
    lo, hi = v[starts + (counts - 1) // 2], v[starts + counts // 2]
    med = np.where(counts % 2 == 1, hi, (lo + hi) / 2)
    gk, gm = [c[starts] for c in ks], m[starts]
    grid = np.unique(gm)
    lgrid = np.log(grid)
    shape_new = np.ones(len(gm), dtype=bool)
    for c in gk:
        shape_new[1:] &= c[1:] == c[:-1]
    bounds = [*np.flatnonzero(~shape_new | (np.arange(len(gm)) == 0)).tolist(), len(gm)]
    shapes, rows = [], []
    for s, e in itertools.pairwise(bounds):
        shapes.append([math.log(float(c[s])) for c in gk])
        rows.append(np.interp(lgrid, np.log(gm[s:e].copy()), med[s:e].copy()))
    return np.array(shapes), lgrid, np.array(rows)


def grid2d(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median of `lr` on the (x, y) grid, gaps filled along y then x: (log xs, log ys, values[x, y])."""
    piv = df.groupby(["x", "y"])["lr"].median().unstack("y").sort_index().sort_index(axis=1)
    piv = piv.interpolate(axis=1, limit_direction="both").interpolate(axis=0, limit_direction="both")
    return (
        np.log(piv.index.to_numpy(np.float64)),
        np.log(piv.columns.to_numpy(np.float64)),
        piv.to_numpy(np.float64),
    )


def bilinear(lx: float, ly: float, grid: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """Bilinear interpolation on a log grid, clamped to its box."""
    xs, ys, v = grid
    if len(xs) == 1:
        return float(np.interp(ly, ys, v[0]))
    i = int(np.clip(np.searchsorted(xs, lx) - 1, 0, len(xs) - 2))
    fx = float(np.clip((lx - xs[i]) / (xs[i + 1] - xs[i]), 0.0, 1.0))
    lo = float(np.interp(ly, ys, v[i]))
    hi = float(np.interp(ly, ys, v[i + 1]))
    return lo + fx * (hi - lo)
