"""Attention priced from measured efficiency, learned from FlashAttention timings on an A100 and carried to
other GPUs by their spec-sheet peaks.

Prefill of q new tokens over c cached ones (k = c + q keys), per layer per GPU with hq query / hkv KV width:

    t = t0 + 4·hq·q·k / (peak_flops · e_max · q/(q + q_half) · k/(k + k_half))

(the kernel's work is counted as every new token against every key: the measured times do not show the
causal half saved), and paged decode of sequences whose contexts sum to ctx:

    t = t0_decode + 2·hkv·bytes·ctx / (mem_bw · e_bw)

(one read of every cached K and V; t0_decode is the launch floor, ~15 µs). Five numbers in all, fitted in
log space to `hwprofiles/measured/vidur-attention-a100-llama-2-70b-tp2.csv` (the copy of
`../shared/data/gpu-profiles/a100/attention-llama-2-70b-tp2/attention.csv`) on the rows whose
`kv_cache_size` is not one of every fourth distinct value (ks[1::4] held out). On another GPU the same
efficiencies apply to its own peaks, and the floors stay (they are launch latencies, not work).
`fit()` refits them; `tests/test_attention_model.py` checks the held-out rows and hand cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE = Path(__file__).resolve().parents[2] / "hwprofiles" / "measured" / "vidur-attention-a100-llama-2-70b-tp2.csv"
A100_FLOPS, A100_BW = 312e12, 2.039e12  # catalogue a100-80g: the GPU the table was measured on
SHAPE = {"hq": 32 * 128, "hkv": 4 * 128, "dtype_bytes": 2}  # per GPU: Llama-2-70B at TP2


@dataclass(frozen=True)
class AttentionEfficiency:
    """Achieved fractions of peak and launch floors (fitted on the A100 table; see the module docstring)."""

    prefill_floor_s: float = 1.062e-05
    prefill_eff_max: float = 0.4703
    prefill_q_half: float = 20.45
    prefill_k_half: float = 693.1
    decode_floor_s: float = 1.547e-05
    decode_bw_eff: float = 0.7648

    def prefill_s(self, q: float, c: float, hq: float, flops: float) -> float:
        """One layer's prefill attention of q new tokens over c cached tokens on one GPU."""
        if q <= 0:
            return 0.0
        k = c + q
        eff = self.prefill_eff_max * q / (q + self.prefill_q_half) * k / (k + self.prefill_k_half)
        return self.prefill_floor_s + 4.0 * hq * q * k / (flops * eff)

    def decode_coeffs(self, hkv: float, dtype_bytes: float, bw: float) -> tuple[float, float]:
        """(floor, seconds per context token) of one layer's decode attention on one GPU: affine in the
        batch's context sum, so fast-forward prices whole runs elementwise."""
        return self.decode_floor_s, 2.0 * hkv * dtype_bytes / (bw * self.decode_bw_eff)


DEFAULT = AttentionEfficiency()


def load_table(path: Path = TABLE) -> tuple[np.ndarray, np.ndarray]:
    """(prefill rows [q, c, seconds], decode rows [batch, kv per sequence, seconds]) of the measured table."""
    import pandas as pd

    d = pd.read_csv(path)
    p, q = d[d["phase"] == "prefill"], d[d["phase"] == "decode"]
    pre = np.column_stack([p["prefill_chunk_size"], p["kv_cache_size"], p["time_ms"] * 1e-3]).astype(np.float64)
    dec = np.column_stack([q["batch_size"], q["kv_cache_size"], q["time_ms"] * 1e-3]).astype(np.float64)
    return pre, dec


def held_out(kv: np.ndarray) -> np.ndarray:
    """The held-out split: rows whose kv size is every fourth distinct value, starting at the second."""
    ks = np.unique(kv)
    return np.isin(kv, ks[1::4])


def predict(eff: AttentionEfficiency, pre: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model seconds for the table's prefill and decode rows (on the A100 shape they were measured with)."""
    hq, hkv, a = SHAPE["hq"], SHAPE["hkv"], SHAPE["dtype_bytes"]
    tp = np.array([eff.prefill_s(q, c, hq, A100_FLOPS) for q, c, _ in pre])
    floor, per_tok = eff.decode_coeffs(hkv, a, A100_BW)
    td = floor + per_tok * dec[:, 0] * dec[:, 1]
    return tp, td


def fit(pre: np.ndarray, dec: np.ndarray) -> AttentionEfficiency:
    """Least squares in log time on the given rows (pass the training split)."""
    from scipy.optimize import least_squares

    hq, hkv, a = SHAPE["hq"], SHAPE["hkv"], SHAPE["dtype_bytes"]
    q, c, t = pre[:, 0], pre[:, 1], pre[:, 2]
    k = q + c

    def pres(x: np.ndarray) -> np.ndarray:
        t0, emax, qh, kh = np.exp(x)
        return np.log(t0 + 4 * hq * q * k / (A100_FLOPS * emax * q / (q + qh) * k / (k + kh))) - np.log(t)

    rp = least_squares(pres, np.log([1.5e-5, 0.5, 64.0, 256.0]))
    ctx, td = dec[:, 0] * dec[:, 1], dec[:, 2]

    def dres(x: np.ndarray) -> np.ndarray:
        t0, eb = np.exp(x)
        return np.log(t0 + 2 * hkv * a * ctx / (A100_BW * eb)) - np.log(td)

    rd = least_squares(dres, np.log([1e-5, 0.5]))
    t0, emax, qh, kh = (float(v) for v in np.exp(rp.x))
    d0, eb = (float(v) for v in np.exp(rd.x))
    return AttentionEfficiency(t0, emax, qh, kh, d0, eb)
