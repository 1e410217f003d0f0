"""Matplotlib figures of a run: latency CDFs, and KV use / queue length over time per instance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt  # picks Agg by itself when there is no display
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sim.output.result import Result

METRICS = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2el_s", "E2E latency"))


def latency_cdfs(requests: pd.DataFrame, axes: Any = None, slo: dict[str, Any] | None = None) -> Any:
    """One panel per metric: empirical CDF over completed requests, with the SLO target (when set) as a
    vertical line labelled with the share of requests meeting it."""
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    else:
        fig = axes[0].figure
    done = requests[requests["status"] == "completed"]
    for ax, (col, label) in zip(axes, METRICS, strict=True):
        v = np.sort(done[col].dropna().to_numpy())
        if v.size:
            ax.plot(v, np.arange(1, v.size + 1) / v.size)
            ax.set_xscale("log")
        target = (slo or {}).get(col)
        if target:
            met = float(np.mean(v <= target)) if v.size else float("nan")
            ax.axvline(target, color="tab:red", ls="--", lw=1, label=f"SLO {target:g} s: {met:.0%} meet it")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_xlabel(f"{label} (s)")
        ax.set_ylabel("fraction of requests")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def timeline(tl: pd.DataFrame) -> Any:
    """KV utilisation and queue lengths over simulated time, one line per instance (first 16)."""
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    for inst, g in list(tl.groupby("instance"))[:16]:
        a1.plot(g["time_s"], g["kv_utilization"], lw=0.8, label=f"inst {inst}")
        a2.plot(g["time_s"], g["running"], lw=0.8)
        a3.plot(g["time_s"], g["waiting"], lw=0.8)
    a1.set_ylabel("KV used")
    a2.set_ylabel("running")
    a3.set_ylabel("waiting")
    a3.set_xlabel("simulated time (s)")
    for a in (a1, a2, a3):
        a.grid(True, alpha=0.3)
    if tl["instance"].nunique() <= 8:
        a1.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    return fig


def save_all(result: Result, out: Path) -> list[Path]:
    paths = []
    for name, fig in (
        ("latency_cdfs.png", result.plot_latency_cdfs()),
        ("timeline.png", result.plot_timeline()),
    ):
        p = out / name
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths
