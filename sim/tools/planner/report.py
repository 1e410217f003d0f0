"""What `servesim plan` leaves behind: a ranked table, a Pareto plot, `best.yaml`, the search log and
a table of every candidate (pruned or simulated) with the reason."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import yaml

from sim.config.modelarg import model_label
from sim.config.scenario import Scenario
from sim.tools.planner.evaluate import Evaluated, PlanResult


def dollars_per_mtok(ev: Evaluated, res: PlanResult) -> float:
    """$ per million tokens served (prompt + output) at the target traffic."""
    tr = res.request.traffic
    tokens_per_hour = tr.rate * tr.tokens_per_request * 3600
    return ev.cost_per_hour / (tokens_per_hour / 1e6)


def _fmt(x: Any, spec: str = ".3g") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def ranked_table(res: PlanResult) -> Any:
    """Rich table of the ranked feasible configurations (the winner first when it was confirmed)."""
    from rich.table import Table

    t = Table(title=f"cheapest configurations meeting {res.request.slo}", title_justify="left")
    for c in ("#", "configuration", "GPUs", "$/hour", "$/Mtok", "TTFT p99 s", "TPOT p99 s", "attain.", "headroom"):
        t.add_column(c, justify="left" if c == "configuration" else "right")
    rows = list(res.ranked)
    if res.best is not None and res.best not in rows:
        rows.insert(0, res.best)
    for i, ev in enumerate(rows, 1):
        mark = " ✓" if ev is res.best else ""
        r = ev.row
        t.add_row(
            f"{i}{mark}",
            ev.label,
            str(ev.gpus),
            f"{ev.cost_per_hour:.2f}",
            f"{dollars_per_mtok(ev, res):.3f}",
            _fmt(r.get("ttft_p99_s")),
            _fmt(r.get("tpot_p99_s")),
            _fmt(r.get("slo_attainment"), ".1%"),
            _fmt(ev.headroom, ".0%"),
        )
    sims = res.counts["simulated"]
    total = len(set(res.pruned) | set(res.bounds))
    t.caption = (
        f"✓ = confirmed by full-traffic replications; headroom = smallest relative slack to any SLO limit; "
        f"{len(res.pruned)} of {total} configurations pruned before simulating; {sims} simulations "
        f"({res.counts['cached']} cached) in {res.wall_s:.1f} s"
    )
    t.caption_justify = "left"
    return t


def candidates_frame(res: PlanResult) -> pd.DataFrame:
    """Every configuration: pruned with its reason, or each simulated size with its metrics and verdict."""
    recs: list[dict[str, Any]] = []
    for cfg, (kind, why) in res.pruned.items():
        recs.append(
            {
                "config": cfg.label,
                "gpu": cfg.gpu,
                "tp": cfg.tp,
                "shape": cfg.shape,
                "outcome": f"pruned: {kind}",
                "why": why,
            }
        )
    for ev in [*res.evaluated, *res.confirmations]:
        recs.append(
            {
                "config": cfg_label(ev),
                "gpu": ev.config.gpu,
                "tp": ev.config.tp,
                "shape": ev.config.shape,
                "size": "x".join(map(str, ev.size)),
                "gpus": ev.gpus,
                "cost_per_hour": ev.cost_per_hour,
                "phase": ev.phase,
                "seed": ev.seed,
                "outcome": "feasible" if ev.feasible else "infeasible",
                "why": ev.why,
                "headroom": ev.headroom,
                "cached": bool(ev.row.get("cached")),
                **{k: ev.row.get(k) for k in ("ttft_p99_s", "tpot_p99_s", "slo_attainment", "wall_s", "key")},
            }
        )
    return pd.DataFrame.from_records(recs)


def cfg_label(ev: Evaluated) -> str:
    return ev.config.label


def pareto_plot(res: PlanResult, path: Path) -> Path:
    """Cost against p99 TTFT and TPOT of every simulated candidate; the Pareto front of feasible ones."""
    evs = [e for e in res.evaluated if e.row.get("status") == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, col, name in ((axes[0], "ttft_p99_s", "TTFT p99 (s)"), (axes[1], "tpot_p99_s", "TPOT p99 (s)")):
        for feas, marker, label in ((True, "o", "meets SLO"), (False, "x", "misses SLO")):
            pts = [(e.cost_per_hour, e.row[col]) for e in evs if e.feasible == feas]
            if pts:
                ax.scatter(*zip(*pts, strict=True), marker=marker, label=label, alpha=0.7)
        front, best_y = [], math.inf
        for e in sorted((e for e in evs if e.feasible), key=lambda e: (e.cost_per_hour, e.row[col])):
            if e.row[col] < best_y:
                front.append((e.cost_per_hour, e.row[col]))
                best_y = e.row[col]
        if front:
            ax.step(*zip(*front, strict=True), where="post", color="k", lw=1, label="Pareto front")
        if res.best is not None:
            ax.scatter(
                [res.best.cost_per_hour],
                [res.best.row[col]],
                marker="*",
                s=220,
                color="gold",
                edgecolor="k",
                zorder=5,
                label="chosen",
            )
        t = res.request.slo.limit(col.split("_")[0])
        if t is not None:
            ax.axhline(t.limit_s, color="r", ls="--", lw=0.8, label=f"limit {t.limit_s:g}s")
        ax.set_yscale("log")
        ax.set_xlabel("$/hour")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{model_label(res.request.model)}: {res.request.traffic.label}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(res: PlanResult, out: Path) -> list[Path]:
    """best.yaml, pareto.png, search_log.txt, candidates.parquet and plan.json under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    sc = res.best_scenario()
    if sc is not None and res.best is not None:
        b = res.best
        head = (
            f"# servesim plan: cheapest configuration meeting {res.request.slo}\n"
            f"# {b.label}: {b.gpus} GPUs, ${b.cost_per_hour:.2f}/hour, ${dollars_per_mtok(b, res):.3f} per million "
            f"tokens\n# run it: servesim run {out / 'best.yaml'}\n"
        )
        ordered = {k: sc[k] for k in Scenario.model_fields if k in sc}
        (out / "best.yaml").write_text(head + yaml.safe_dump(ordered, sort_keys=False))
        paths.append(out / "best.yaml")
    paths.append(pareto_plot(res, out / "pareto.png"))
    (out / "search_log.txt").write_text("\n".join(res.log) + "\n")
    paths.append(out / "search_log.txt")
    candidates_frame(res).to_parquet(out / "candidates.parquet", index=False)
    paths.append(out / "candidates.parquet")
    summary = {
        "best": None
        if res.best is None
        else {
            "config": res.best.config.label,
            "size": list(res.best.size),
            "gpus": res.best.gpus,
            "cost_per_hour": res.best.cost_per_hour,
            "dollars_per_mtok": dollars_per_mtok(res.best, res),
        },
        "counts": dict(res.counts),
        "pruned": {c.label: list(v) for c, v in res.pruned.items()},
        "candidate_runs": len(res.evaluated),
        "confirming_runs": len(res.confirmations),
        "wall_s": res.wall_s,
    }
    (out / "plan.json").write_text(json.dumps(summary, indent=1) + "\n")
    paths.append(out / "plan.json")
    return paths
