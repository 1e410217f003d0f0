"""Efficiency curves for GPUs without measured tables, transferred from the nearest GPU that has them.

A measured curve is a ratio `measured time / roofline at that GPU's peaks` as a function of size; applied
to another GPU's roofline it says "kernels reach the same fraction of peak at the same size". That holds
for large kernels (tile and wave effects scale with the machine) but not for small ones, which sit on a
launch-latency floor that does not shrink with peak FLOP/s: so every transferred operator is also held
above the source GPU's fastest measured time for that operator (its launch floor). The nearest source is
the measured GPU closest in log(peak FLOP/s) and log(bandwidth) (A40/L40S/L4 -> A100, Hopper/Blackwell/
AMD -> H100).

A GEMM's ratio is read at the same position relative to the ridge point (peak FLOP/s / bandwidth), not at the
same M: with M tokens a weight-streaming GEMM does about M FLOPs per weight byte, so it is memory-bound below
M ≈ ridge and compute-bound above, and the dip in efficiency where the two limits meet sits at the GPU's own
ridge. A100's ridge is 153 FLOP/byte, an RTX PRO 6000's 279: at M = 128 the A100 is at its ridge (efficiency
0.54-0.63 in the Vidur tables) while the RTX PRO 6000 still streams weights; the source is read at M × 153/279.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

from hwprofiles import catalog
from hwprofiles.specs import GPUSpec
from hwprofiles.tables import GEMM_OPS, MEASURED_DIR, load_tables


def measured_gpus() -> list[str]:
    """Catalogue GPUs with shipped measured tables."""
    return sorted(p.name for p in MEASURED_DIR.iterdir() if (p / "provenance.yaml").exists())


def nearest_measured(gpu: GPUSpec) -> GPUSpec | None:
    """The measured GPU closest to `gpu` in log peak FLOP/s and log memory bandwidth."""
    best: tuple[float, GPUSpec] | None = None
    for name in measured_gpus():
        try:
            src = catalog.gpu(name)
        except KeyError:
            continue
        d = math.hypot(math.log(gpu.bf16_flops / src.bf16_flops), math.log(gpu.mem_bw / src.mem_bw))
        if best is None or d < best[0]:
            best = (d, src)
    return best[1] if best else None


@cache
def launch_floors(root: Path) -> dict[str, float]:
    """Fastest measured time (seconds) of each operator in a table directory; `gemm`: of any linear op."""
    return table_floors(load_tables(root))


def table_floors(tables: Any) -> dict[str, float]:
    """`launch_floors` of loaded `MeasuredTables` (what a measured GPU's own curves carry implicitly; the
    structured cost model adds them to kernels it prices without a curve)."""
    ops = tables.operators
    if ops.empty:
        return {}
    floors = {op: float(ops[op].min()) / 1e3 for op in ops.columns if op in _OPS and ops[op].notna().any()}
    gemm = [floors[o] for o in GEMM_OPS if o in floors]
    if gemm:
        floors["gemm"] = min(gemm)
    return floors


_OPS = set(GEMM_OPS) | {
    "input_layernorm",
    "post_attention_layernorm",
    "attn_rope",
    "mlp_act",
    "add",
    "emb",
    "attn_kv_cache_save",
}


def transferred_parts(gpu: GPUSpec) -> dict[str, Any]:
    """`RooflineCost` keyword arguments for a GPU without tables: the nearest measured GPU's curves (ratios
    to *its* peaks, applied to this GPU's peaks), its launch floors, and where they came from."""
    from sim.costmodel.curves import _efficiency

    src = nearest_measured(gpu)
    if src is None or src.name == gpu.name:
        return {}
    root = (MEASURED_DIR / src.name).resolve()
    shift = math.log((gpu.bf16_flops / gpu.mem_bw) / (src.bf16_flops / src.mem_bw))
    return {
        "fallback": RidgeShifted(_efficiency(root, src.bf16_flops, src.mem_bw), shift),
        "floors": launch_floors(root),
        "transferred_from": src.name,
    }


class RidgeShifted:
    """A source GPU's efficiency curves with the GEMM curves moved along log M by `shift` = log(target ridge /
    source ridge), so a GEMM of M tokens here reads the source at M × source ridge / target ridge (see above).
    Element-wise and attention curves pass through unchanged."""

    def __init__(self, eff: Any, shift: float) -> None:
        self.eff, self.shift = eff, shift
        self._cache: dict[tuple[float, float, str | None], Any] = {}

    def gemm_curve(self, k: float, n: float, op: str | None = None) -> Any:
        key = (k, n, op)
        if key not in self._cache:
            c = self.eff.gemm_curve(k, n, op)
            self._cache[key] = c if c is None or not self.shift else (c[0] + self.shift, c[1])
        return self._cache[key]

    def mem_curve(self, cls: str, width: float) -> Any:
        return self.eff.mem_curve(cls, width)

    def attention_grid(self, phase: str) -> Any:
        return self.eff.attention_grid(phase)

    def __getattr__(self, name: str) -> Any:  # anything else the Efficiency answers
        if name == "eff":  # not set yet (copy/pickle build the object without __init__): no recursion
            raise AttributeError(name)
        return getattr(self.eff, name)
