"""Figures of a sweep table: any metric against any swept parameter, one line per `hue` value.

Replications are averaged and drawn with a band of ± one standard deviation, so a noisy point looks
noisy. `latency_vs_rate` and `goodput_vs_instances` are the two figures people ask for most.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from sim.errors import ServesimError

_LABELS = {
    "ttft": "TTFT",
    "tpot": "TPOT",
    "itl": "ITL",
    "e2el": "E2E latency",
    "queue_delay": "queue delay",
    "goodput_rps": "goodput (req/s)",
    "requests_per_s": "throughput (req/s)",
    "slo_attainment": "SLO attainment",
    "output_tokens_per_s": "output tokens/s",
}


def parse_plot_spec(spec: str) -> dict[str, Any]:
    """`x=COL,y=COL[+COL...],hue=COL` (commas or spaces between parts) into {x, y: [..], hue}."""
    parts = [p for p in re.split(r"[,\s]+", spec.strip()) if p]
    got: dict[str, Any] = {}
    for p in parts:
        key, sep, val = p.partition("=")
        if not sep or key not in ("x", "y", "hue") or not val:
            raise ServesimError(f"--plot {spec!r}: expected x=COLUMN y=COLUMN[+COLUMN] [hue=COLUMN], got {p!r}")
        got[key] = val.split("+") if key == "y" else val
    if "x" not in got or "y" not in got:
        raise ServesimError(f"--plot {spec!r}: give both x= and y=")
    return got


def _label(col: str) -> str:
    m = re.fullmatch(r"(ttft|tpot|itl|e2el|queue_delay)_(mean|p\d+)_s", col)
    if m:
        return f"{_LABELS[m.group(1)]} {m.group(2)} (s)"
    return _LABELS.get(col, col)


def _check(frame: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ServesimError(
            f"no column {missing[0]!r} in the sweep table; columns: {', '.join(map(str, frame.columns))}"
        )


def plot_sweep(frame: pd.DataFrame, x: str, y: str | list[str], hue: str | None = None, ax: Any = None) -> Any:
    """Mean of `y` (one or more columns) against `x`, a line per `hue` value, ± std band over replications."""
    ys = [y] if isinstance(y, str) else list(y)
    _check(frame, [x, *ys, *([hue] if hue else [])])
    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
    else:
        fig = ax.figure
    groups = list(ok.groupby(hue, sort=True)) if hue else [(None, ok)]
    for hv, g in groups:
        for col in ys:
            stats = g.groupby(x, sort=True)[col].agg(["mean", "std"]).reset_index()
            label = " ".join(s for s in (f"{hue}={hv}" if hue else "", _label(col) if len(ys) > 1 else "") if s)
            line = ax.plot(stats[x], stats["mean"], marker="o", label=label or None)[0]
            if stats["std"].notna().any():
                lo, hi = stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0)
                ax.fill_between(stats[x], lo, hi, color=line.get_color(), alpha=0.15)
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(ys[0]) if len(ys) == 1 else ", ".join(_label(c) for c in ys))
    if any(c.endswith("_s") and c.split("_")[0] in _LABELS for c in ys):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if hue or len(ys) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def latency_vs_rate(
    frame: pd.DataFrame, rate: str = "workload.arrival.rate", metric: str = "ttft", hue: str | None = None
) -> Any:
    """p50 and p99 of a latency metric against the arrival rate."""
    return plot_sweep(frame, rate, [f"{metric}_p50_s", f"{metric}_p99_s"], hue)


def goodput_vs_instances(frame: pd.DataFrame, instances: str = "cluster.instances", hue: str | None = None) -> Any:
    """Goodput (requests/s meeting every SLO) against the number of instances."""
    return plot_sweep(frame, instances, "goodput_rps", hue)


def save_plot(frame: pd.DataFrame, spec: str, out_dir: Path) -> Path:
    """Draw one `--plot` spec into `out_dir/plots/` and return the file."""
    p = parse_plot_spec(spec)
    fig = plot_sweep(frame, p["x"], p["y"], p.get("hue"))
    name = re.sub(
        r"[^A-Za-z0-9_.+-]+", "_", f"{'+'.join(p['y'])}_vs_{p['x']}" + (f"_by_{p['hue']}" if "hue" in p else "")
    )
    path = out_dir / "plots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
