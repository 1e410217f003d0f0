"""`servesim sweep`: run a sweep file's points on local processes or a Dask cluster, one row per point.

The output directory holds `sweep.parquet` (parameters + flattened summary metrics, one row per point
and replication, failed points included with their error) and `runs/<content hash>/` per point. Because
run directories are keyed by the resolved scenario's hash, re-running a sweep only simulates what is
missing, and two sweeps that share a point share its run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.tools.summary import check_out_dir
from sim.tools.sweep.execute import make_backend, run_scenarios
from sim.tools.sweep.spec import Sweep, load_sweep, short_labels

__all__ = ["SweepResult", "load_sweep", "run_sweep"]


@dataclass
class SweepResult:
    """What a sweep produced: the table, where it lives, and how many points were run, cached or failed."""

    sweep: Sweep
    frame: pd.DataFrame
    out_dir: Path
    simulated: int
    cached: int
    failed: int

    @property
    def path(self) -> Path:
        return self.out_dir / "sweep.parquet"

    # the result reads like its table: res.columns, res["ttft_p99_s"], len(res)
    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def __getitem__(self, key: Any) -> Any:
        return self.frame[key]

    def __len__(self) -> int:
        return len(self.frame)


def _cell(value: Any) -> Any:
    """Parquet columns need one type: scalars stay, mappings and lists become JSON text."""
    return value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value, sort_keys=True)


def run_sweep(
    source: str | Path | dict[str, Any] | Sweep,
    out: str | Path | None = None,
    *,
    workers: int | None = None,
    cluster: Any = None,
    progress: bool = False,
) -> SweepResult:
    """Run every point (cached ones are read, not simulated) and write `sweep.parquet` under `out`.

    `cluster` is a Dask scheduler address or a `distributed.Client`; `workers` sizes the local pool.
    """
    sw = source if isinstance(source, Sweep) else load_sweep(source)
    out_dir = (Path(out) if out is not None else Path("runs") / "sweeps" / sw.name).resolve()  # workers elsewhere
    check_out_dir(out_dir)  # a file in the way: one line, before any work
    backend = make_backend(workers, cluster)  # a bad --workers or --cluster writes nothing
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = run_scenarios(
            [p.scenario for p in sw.points],
            out_dir / "runs",
            backend,
            save_requests=sw.spec.save_requests,
            progress=progress,
            label=f"sweep {sw.name}",
        )
    finally:
        backend.close()
    records = []
    for p, row in zip(sw.points, rows, strict=True):
        rec: dict[str, Any] = {"point": p.index, "replication": p.replication, "seed": p.seed}
        rec.update({k: _cell(v) for k, v in p.params.items()})
        rec.update(row)
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    frame = frame.sort_values(["point", "replication"], kind="stable").reset_index(drop=True)
    frame.to_parquet(out_dir / "sweep.parquet", index=False)
    n_cached = int(frame["cached"].sum())
    n_failed = int((frame["status"] == "failed").sum())
    return SweepResult(sw, frame, out_dir, len(frame) - n_cached, n_cached, n_failed)


def sweep_table(res: SweepResult, max_rows: int = 40) -> Any:
    """A rich table of the sweep: parameters, then the metrics people look at first."""
    from rich.table import Table

    params = res.sweep.param_names
    spec = res.sweep.spec
    labels = {k: short_labels(v) for k, v in {**spec.grid, **spec.zip_}.items()}
    t = Table(title=f"sweep {res.sweep.name}: {len(res.frame)} runs", title_justify="left")
    cols = ["ttft_p50_s", "ttft_p99_s", "tpot_p99_s", "requests_per_s", "goodput_rps", "slo_attainment"]
    heads = ["TTFT p50 s", "TTFT p99 s", "TPOT p99 s", "req/s", "goodput", "SLO att."]
    for c in ["pt", "rep", *params, "status", *heads]:
        t.add_column(c, justify="left" if c in params or c == "status" else "right", overflow="fold")
    for _, r in res.frame.head(max_rows).iterrows():
        vals = [
            str(r["point"]),
            str(r["replication"]),
            *(labels[p].get(str(r[p]), str(r[p])) for p in params),
            str(r["status"]),
        ]
        if r["status"] == "ok":
            vals += [f"{r[c]:.3g}" for c in cols]
        else:
            vals += [str(r.get("error", ""))[:60], *[""] * (len(cols) - 1)]
        t.add_row(*vals)
    more = f" ({len(res.frame) - max_rows} more rows in the parquet)" if len(res.frame) > max_rows else ""
    t.caption = f"simulated {res.simulated}, cached {res.cached}, failed {res.failed}{more}; wrote {res.path}"
    t.caption_justify = "left"
    return t
