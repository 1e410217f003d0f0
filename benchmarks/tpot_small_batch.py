"""What shape the small-batch TPOT miss has: a fixed cost per MoE layer, or a share of the routed experts' time.

    python benchmarks/tpot_small_batch.py --results <coverage / tpot_groups results json> [--backend vllm]
        [--max-clients 8] [--json out.json]

For each agg MoE row of the backend at up to `--max-clients` clients: the row's layout (`coverage.scenario`), the
decode-only step priced by this tree (`tpot_step_decompose.step`), and the deficit measured - simulated TPOT,
expressed two ways, one per hypothesis of the brief:
- `per_moe_layer_us`: the deficit over the model's MoE layers. A fixed part of each MoE layer (fused_moe's
  launches, alignment and routing kernels, the same few microseconds whatever the expert shapes) predicts the
  same number on every row, whatever the GPU and the tensor-parallel size.
- `per_expert_time`: the deficit over the routed experts' priced time in the step. A routed-expert kernel
  slower than the cost model's curve at a few tokens per expert predicts a constant ratio instead: it scales
  with each GPU's expert bytes, so it halves from tp 4 to tp 8 on the same model and GPU.
A diagnostic: nothing is fitted; the spread of each column (its interquartile range over its median) says which
reading the rows are closer to. The simulated TPOT must come from a run of the same tree (the step is re-priced).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
from tpot_step_decompose import step

from sim.cluster.pools import pool_specs
from sim.config.scenario import load_scenario


def _layout(row: pd.Series) -> tuple[str, int]:
    """(the instance's layout as `tp/dp/ep`, its MoE layers) from the scenario coverage.py builds."""
    sc = cov.scenario(row, cov._fixed_workload(1, row))
    cl = sc.get("cluster", {})
    cost = pool_specs(load_scenario(sc))[0].cost
    n_moe = int(getattr(cost, "n_moe", 0))
    return f"tp{cl.get('tp', 1)}/dp{cl.get('attention_dp', 1)}/ep{cl.get('ep', 1)}", n_moe


def rows(results: list[dict[str, Any]], backend: str, max_clients: int) -> list[dict[str, Any]]:
    """One record per agg MoE row of `backend` at <= `max_clients` clients with a simulated TPOT."""
    by_id = {
        r["id"]: r
        for r in results
        if r.get("tpot_ms") is not None and r.get("mode") == "agg" and r.get("backend") == backend
    }
    df = pd.read_csv(cov.CSV)
    out = []
    for _, row in df[df["id"].isin(by_id)].iterrows():
        if int(cov.concurrency(row)) > max_clients:
            continue
        layout, n_moe = _layout(row)
        if not n_moe:
            continue
        r = by_id[row["id"]]
        _, _, ops = step(row)
        deficit_ms = float(r["silicon_tpot_ms"]) - float(r["tpot_ms"])
        experts_ms = ops.get("moe_experts", 0.0) * 1e3
        out.append(
            {
                "id": row["id"],
                "model": str(row["model_path"]).split("/")[-1],
                "gpu": str(row["system"]),
                "layout": layout,
                "clients": int(cov.concurrency(row)),
                "measured_ms": float(r["silicon_tpot_ms"]),
                "simulated_ms": float(r["tpot_ms"]),
                "deficit_ms": deficit_ms,
                "experts_ms": experts_ms,
                "per_moe_layer_us": deficit_ms / n_moe * 1e3,
                "per_expert_time": deficit_ms / experts_ms if experts_ms > 0 else float("nan"),
            }
        )
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles and the interquartile range over the median's magnitude (a scale-free spread)."""
    v = np.asarray([x for x in values if np.isfinite(x)])
    q1, med, q3 = (float(np.quantile(v, q)) for q in (0.25, 0.5, 0.75))
    return {"n": len(v), "q1": q1, "median": med, "q3": q3, "iqr_over_median": (q3 - q1) / abs(med) if med else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(cov.ROOT / "benchmarks" / "results" / "coverage_results.json"))
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--max-clients", type=int, default=8)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if not Path(a.results).is_file():
        ap.error(f"{a.results}: no such file")
    data = json.loads(Path(a.results).read_text())
    recs = rows(data["errors"]["per_row"] if isinstance(data, dict) else data, a.backend, a.max_clients)
    if not recs:
        ap.error(f"no MoE row of backend {a.backend!r} with at most {a.max_clients} clients in {a.results}")
    for d in sorted(recs, key=lambda d: (d["model"], d["gpu"], d["layout"], d["clients"])):
        print(
            f"{d['model'][:14]:14s} {d['gpu'][:8]:8s} {d['layout']:13s} c{d['clients']:<2d} "
            f"measured {d['measured_ms']:5.2f} sim {d['simulated_ms']:5.2f} deficit {d['deficit_ms']:+5.2f} ms | "
            f"per MoE layer {d['per_moe_layer_us']:+5.1f} us | / experts' time {d['per_expert_time']:+5.2f}"
        )
    summary = {
        "per_moe_layer_us": spread([d["per_moe_layer_us"] for d in recs]),
        "per_expert_time": spread([d["per_expert_time"] for d in recs]),
    }
    print(json.dumps(summary, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "rows": recs}, indent=1))


if __name__ == "__main__":
    main()
