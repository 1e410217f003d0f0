"""Figures of a sweep table: any metric against any swept parameter, one line per `hue` value.

Replications are averaged and drawn with a band of ± one standard deviation, so a noisy point looks
noisy. `latency_vs_rate` and `goodput_vs_instances` are the two figures people ask for most.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
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
    """`x=COL,y=COL[+COL...],hue=COL,col=COL,row=COL` (commas or spaces between parts) into a dict."""
    parts = [p for p in re.split(r"[,\s]+", spec.strip()) if p]
    got: dict[str, Any] = {}
    for p in parts:
        key, sep, val = p.partition("=")
        if not sep or key not in ("x", "y", "hue", "col", "row") or not val:
            raise ServesimError(
                f"--plot {spec!r}: expected x=COLUMN y=COLUMN[+COLUMN] [hue=COLUMN] [col=COLUMN] [row=COLUMN], "
                f"got {p!r}"
            )
        got[key] = val.split("+") if key == "y" else val
    if "x" not in got or "y" not in got:
        raise ServesimError(f"--plot {spec!r}: give both x= and y=")
    return got


def check_plot_columns(spec: str, params: list[str]) -> None:
    """Every column a `--plot` names is one the sweep table will have: say so before the sweep runs."""
    from sim.tools.sweep.execute import row_columns

    known = list(dict.fromkeys(["point", "replication", "seed", *params, *row_columns()]))
    got = parse_plot_spec(spec)
    for key in ("x", "y", "hue", "col", "row"):
        for col in got.get(key, []) if key == "y" else [got[key]] if key in got else []:
            if col not in known:
                raise ServesimError(f"--plot {spec!r}: {key}={col}: no such column; columns: {', '.join(known)}")


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


def value_labels(values: list[Any]) -> dict[Any, str]:
    """Readable labels for a column's values: a mapping stored as JSON text shows only the keys that differ
    (`sarathi token_budget=512`), not the raw JSON."""
    from sim.tools.sweep.spec import short_labels

    parsed = []
    for v in values:
        try:
            parsed.append(json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v)
        except ValueError:
            parsed.append(v)
    if parsed and all(isinstance(x, dict) for x in parsed):
        labels = short_labels(parsed)
        return {v: labels.get(json.dumps(x, sort_keys=True), str(v)) for v, x in zip(values, parsed, strict=True)}
    return {v: str(v) for v in values}


def averaged_dimensions(frame: pd.DataFrame, params: list[str], shown: list[str]) -> list[str]:
    """Swept parameters a figure does not show (not x, hue, col or row) that take several values: the
    figure averages over them, and must say so."""
    return [p for p in params if p not in shown and p in frame.columns and frame[p].nunique(dropna=False) > 1]


def plot_sweep(
    frame: pd.DataFrame,
    x: str,
    y: str | list[str],
    hue: str | None = None,
    ax: Any = None,
    *,
    col: str | None = None,
    row: str | None = None,
    params: list[str] | None = None,
) -> Any:
    """Mean of `y` against `x`, a line per `hue` value, a panel per `col` × `row` value, ± std band over
    replications (and over any swept parameter not shown, which the title names)."""
    ys = [y] if isinstance(y, str) else list(y)
    shown = [c for c in (x, hue, col, row) if c]
    _check(frame, [*shown, *ys])
    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
    cols = sorted(ok[col].unique(), key=str) if col else [None]
    rows = sorted(ok[row].unique(), key=str) if row else [None]
    if ax is None or col or row:
        fig, axes = plt.subplots(
            len(rows), len(cols), figsize=(5.2 * len(cols) + 1.8, 3.8 * len(rows)), squeeze=False, sharey=True
        )
    else:
        fig, axes = ax.figure, np.array([[ax]])
    hue_labels = value_labels(sorted(ok[hue].unique(), key=str)) if hue else {}
    col_labels = value_labels(cols) if col else {}
    row_labels = value_labels(rows) if row else {}
    for i, rv in enumerate(rows):
        for j, cv in enumerate(cols):
            a = axes[i][j]
            sub = ok
            if col:
                sub = sub[sub[col] == cv]
            if row:
                sub = sub[sub[row] == rv]
            groups = list(sub.groupby(hue, sort=True)) if hue else [(None, sub)]
            for hv, g in groups:
                for c in ys:
                    stats = g.groupby(x, sort=True)[c].agg(["mean", "std"]).reset_index()
                    label = " ".join(
                        s for s in (f"{hue_labels.get(hv, hv)}" if hue else "", _label(c) if len(ys) > 1 else "") if s
                    )
                    line = a.plot(stats[x], stats["mean"], marker="o", label=label or None)[0]
                    if stats["std"].notna().any():
                        lo, hi = stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0)
                        a.fill_between(stats[x], lo, hi, color=line.get_color(), alpha=0.15)
            title = " | ".join(
                t
                for t in (
                    f"{col}: {col_labels.get(cv, cv)}" if col else "",
                    f"{row}: {row_labels.get(rv, rv)}" if row else "",
                )
                if t
            )
            if title:
                a.set_title(title, fontsize=9)
            a.set_xlabel(_label(x))
            if j == 0:
                a.set_ylabel(_label(ys[0]) if len(ys) == 1 else ", ".join(_label(c) for c in ys))
            if any(c.endswith("_s") and c.split("_")[0] in _LABELS for c in ys):
                a.set_yscale("log")
            a.grid(True, alpha=0.3)
    if hue or len(ys) > 1:  # one legend, outside the data
        handles, labels = axes[0][-1].get_legend_handles_labels()
        fig.legend(
            handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.98), title=hue, title_fontsize=8
        )
    hidden = averaged_dimensions(ok, params or [], shown)
    if hidden:
        fig.suptitle("averaged over " + ", ".join(f"{p} ({ok[p].nunique()} values)" for p in hidden), fontsize=9)
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


def save_plot(frame: pd.DataFrame, spec: str, out_dir: Path, params: list[str] | None = None) -> Path:
    """Draw one `--plot` spec into `out_dir/plots/` and return the file; `params` (the swept parameters) lets
    the figure name any it averages over."""
    p = parse_plot_spec(spec)
    fig = plot_sweep(frame, p["x"], p["y"], p.get("hue"), col=p.get("col"), row=p.get("row"), params=params)
    by = "".join(f"_{k}_{p[k]}" for k in ("hue", "col", "row") if k in p)
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"{'+'.join(p['y'])}_vs_{p['x']}{by}")
    path = out_dir / "plots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
