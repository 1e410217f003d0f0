"""The run summary as a table (latency mean and chosen percentiles, counts, throughput, goodput or "no SLO",
cost), and the check that an output directory can be written before any work starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.table import Table

from sim.cluster.power import cost_caption
from sim.errors import ServesimError


def check_out_dir(d: Path, option: str = "--out") -> None:
    """Fail before any work when the output directory cannot be a writable directory."""
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe == d and not d.is_dir():
        raise ServesimError(f"{option} {d}: is a file, expected a directory")
    if probe != d and not probe.is_dir():
        raise ServesimError(f"{option} {d}: {probe} is a file, so the directory cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ServesimError(f"{option} {d}: {probe} is not writable")


def _fmt_ms(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x * 1000:.1f}"


DEFAULT_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def parse_percentiles(text: str | None) -> tuple[float, ...]:
    """`50,90,99,99.9` → percentiles in (0, 100); one line naming --percentiles otherwise."""
    if text is None:
        return DEFAULT_PERCENTILES
    try:
        ps = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ServesimError(f"--percentiles {text!r}: expected comma-separated numbers, e.g. 50,90,99,99.9") from None
    if not ps or any(not 0 < p < 100 for p in ps):
        raise ServesimError(f"--percentiles {text!r}: each must be in (0, 100)")
    return ps


def _pct_label(p: float) -> str:
    return f"p{p:g}"


def _metric_row(summary: dict[str, Any], requests: Any, key: str, ps: tuple[float, ...]) -> list[float | None]:
    """Mean and percentiles of one latency: from the per-request rows when given, else the summary's."""
    import numpy as np

    m = summary["metrics"][key]
    if requests is None or key not in getattr(requests, "columns", ()):
        return [m.get("mean"), *(m.get(_pct_label(p)) for p in ps)]
    rows = requests if key == "queue_delay_s" else requests[requests["status"] == "completed"]
    v = rows[key].to_numpy(dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return [None] * (len(ps) + 1)
    return [float(v.mean()), *(float(x) for x in np.percentile(v, ps))]


def _slo_set(summary: dict[str, Any]) -> bool:
    slo = (summary.get("scenario") or {}).get("slo") or summary.get("slo")
    if isinstance(slo, dict):
        return any(v is not None for v in slo.values())
    return True


def summary_table(
    summary: dict[str, Any],
    title: str,
    requests: Any = None,
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES,
    slo: bool | None = None,
) -> Table:
    """Latency table (mean and percentiles, ms) with counts, throughput, goodput and cost as the caption."""
    c, tp = summary["counts"], summary["throughput"]
    t = Table(title=title, title_justify="left")
    t.add_column("metric", no_wrap=True)
    for p in ("mean", *map(_pct_label, percentiles)):
        t.add_column(f"{p} (ms)", justify="right", no_wrap=True)
    for key, label in (
        ("ttft_s", "TTFT"),
        ("tpot_s", "TPOT"),
        ("itl_s", "ITL"),
        ("e2el_s", "E2E"),
        ("queue_delay_s", "queue delay"),
    ):
        t.add_row(label, *(_fmt_ms(x) for x in _metric_row(summary, requests, key, percentiles)))
    span = tp.get("duration_s") or 0.0
    in_tok = tp.get("input_tokens_per_s")
    if in_tok is None and requests is not None and span > 0 and "prompt_tokens" in requests.columns:
        in_tok = float(requests.loc[requests["status"] == "completed", "prompt_tokens"].sum()) / span
    tokens = f"{tp['output_tokens_per_s']:.0f} output tok/s"
    if in_tok is not None:
        tokens = f"{in_tok:.0f} input + {tokens} = {in_tok + tp['output_tokens_per_s']:.0f} total tok/s"
    has_slo = _slo_set(summary) if slo is None else slo
    good = (
        f"goodput {tp['goodput_rps']:.2f} req/s, SLO attainment {tp['slo_attainment']:.1%}"
        if has_slo
        else "no SLO set (add `slo:` for goodput)"
    )
    t.caption = (
        f"requests {c['arrived']}: completed {c['completed']}, rejected {c['rejected']}, in flight {c['in_flight']}, "
        f"preemptions {c['preemptions']} | {tp['requests_per_s']:.2f} req/s, {tokens}, {good} | "
        f"simulated {summary['sim']['simulated_s']:.1f} s in {summary['sim']['wall_s']:.2f} s wall, "
        f"{summary['sim']['events']} events"
    )
    cost = cost_caption(summary)
    if cost:
        t.caption += f" | {cost}"
    pools = summary.get("cluster", {}).get("pools", {})
    for role, pool in pools.items():  # which parts of the cost model are measured / transferred / spec-sheet
        prov = pool.get("cost_model") or {}
        if prov:
            parts = "; ".join(f"{k} {v}" for k, v in prov.items())
            t.caption += f" | cost model{'' if len(pools) == 1 else f' ({role})'}: {parts}"
    t.caption_justify = "left"
    return t
