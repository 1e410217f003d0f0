"""The aiconfigurator silicon rows of `benchmarks/validation_presets.py`: closed-loop clients, unfitted.

Each colocated dense row of `../shared/data/ground-truth/aiconfigurator/silicon_sample.csv` that the catalogue
(and, for FP8/FP4, the scenario's `quantization`) can express is replayed with `batch_size` clients in an exact
closed loop, fixed isl/osl, and the backend's serving-engine preset.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from validation_presets import GT, ROOT, _pct, simulate

SILICON = GT / "aiconfigurator" / "silicon_sample.csv"
MODELS = {"Llama-3.1-8B": "llama-3.1-8b", "Llama-3.1-70B": "llama-3.1-70b", "Qwen3-32B": "qwen3-32b"}
SYSTEMS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200", "b200_sxm": "b200", "gb200": "gb200"}
ENGINE_OF = {"vllm": "vllm-v1", "sglang": "sglang", "trtllm": "trtllm"}
PRECISION = {"bf16": None, "fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp4"}
GENERATIONS = 3  # requests per client; the first generation (all clients start at once) is warm-up


def silicon_rows() -> pd.DataFrame:
    """Colocated dense rows the catalogue (and, for fp8/fp4, the scenario's `quantization`) can express."""
    from sim.config.scenario import Scenario

    d = pd.read_csv(SILICON)
    d = d[(d["mode"] == "agg") & (d["pp_size"] == 1) & d["backend"].isin(list(ENGINE_OF))]
    d = d.assign(model=d["model_path"].map(lambda p: next((v for k, v in MODELS.items() if k in p), None)))
    d = d.assign(gpu=d["system"].map(SYSTEMS), quant=d["gemm_quant_mode"].map(lambda q: PRECISION.get(q, "?")))
    ok = d["model"].notna() & d["gpu"].notna() & (d["quant"] != "?")
    if "quantization" not in Scenario.model_fields:
        ok &= d["quant"].isna()
    return d[ok].reset_index(drop=True)


def silicon_scenario(row: Any, arrivals: np.ndarray, trace: Path, engine: bool) -> dict[str, Any]:
    """One closed-loop row: fixed isl/osl, this tp, the backend's engine preset (client-side front end kept)."""
    n = len(arrivals)
    pd.DataFrame(
        {"arrival_s": arrivals, "prompt_tokens": [int(row.isl)] * n, "output_tokens": [int(row.osl)] * n}
    ).to_csv(trace, index=False)
    sc: dict[str, Any] = {
        "name": f"silicon-{row.id}",
        "model": row.model,
        "hardware": row.gpu,
        "workload": {"arrival": {"kind": "trace", "path": str(trace), "format": "csv"}},
        "cluster": {"instances": 1, "tp": int(row.tp_size)},
        "scheduler": {
            "kind": "vllm",
            "max_num_seqs": max(256, int(row.batch_size)),
            "max_num_batched_tokens": 8192,
            "enable_prefix_caching": False,
        },
        "cost_model": {"kind": "roofline"},
    }
    if row.quant:
        sc["quantization"] = {"weights": row.quant, "activations": row.quant}
    if engine:
        sc["serving_engine"] = {"kind": ENGINE_OF[row.backend]}
    return sc


def closed_loop(row: Any, tree: Path, engine: bool, d: Path) -> pd.DataFrame:
    """Exact closed loop by fixed point: client c's request g+1 arrives when its request g completes (no think
    time). Each pass settles the earliest generation still moving (a completion depends only on earlier
    arrivals); a few passes more settle the order within a generation. Stops when the arrivals no longer move."""
    c = int(row.batch_size)
    arrivals = np.zeros(c * GENERATIONS)
    for _ in range(4 * GENERATIONS):
        order = np.argsort(arrivals, kind="stable")
        res, _ = simulate(silicon_scenario(row, arrivals[order], d / "t.csv", engine), tree)
        done = np.empty_like(arrivals)
        done[order] = res["e2el_s"].to_numpy(float) + arrivals[order]  # completion as the client sees it
        nxt = arrivals.copy()
        nxt[c:] = done[:-c]  # request g+1 of a client follows its request g
        if np.allclose(nxt, arrivals, rtol=0, atol=1e-9):
            out = res.copy()
            out["generation"] = order // c
            return out
        arrivals = nxt
    raise RuntimeError(f"closed loop of row {row.id} did not converge")


def run_silicon(before_tree: Path | None) -> dict[str, Any]:
    rows = silicon_rows()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        for row in rows.itertuples():
            entry: dict[str, Any] = {
                "backend": row.backend,
                "model": row.model,
                "gpu": row.gpu,
                "tp": int(row.tp_size),
                "isl": int(row.isl),
                "osl": int(row.osl),
                "clients": int(row.batch_size),
                "precision": row.quant or "bf16",
                "measured": {"ttft_s": row.silicon_ttft_ms / 1e3, "tpot_s": row.silicon_tpot_ms / 1e3},
            }
            for name, tree, eng in (("after", ROOT, True), ("before", before_tree, False)):
                if tree is None:
                    continue
                res = closed_loop(row, tree, eng, Path(d))
                steady = res[res["generation"] > 0]
                entry[name] = {m: float(steady[m].mean()) for m in ("ttft_s", "tpot_s")}
            out[str(row.id)] = entry
    return out


def silicon_md(sil: dict[str, Any] | None) -> list[str]:
    lines = ["", "## aiconfigurator silicon rows (closed loop)", ""]
    if not sil:
        return [
            *lines,
            "Not run here (`--silicon` runs this harness's own reading: `batch_size` clients in an exact closed "
            f"loop, fixed-point replay, {GENERATIONS} requests per client, the first generation as warm-up). The "
            "silicon rows are replayed under coverage.py's reading in `benchmarks/validation_silicon.py`; their "
            "current numbers are in `benchmarks/VALIDATION.md`.",
        ]
    lines += [
        "`batch_size` clients in an exact closed loop (each sends its next request when the last completes; "
        f"fixed-point replay, {GENERATIONS} requests per client, means over all but the first generation); "
        "the backend's engine preset (`vllm-v1`, `sglang`, `trtllm`) with its client-side front end; nothing fitted.",
        "",
        "| row | backend | model | GPU | tp | isl/osl | clients | prec | TTFT meas | after | TPOT meas | after |",
        "|---|---|---|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    errs: dict[str, list[float]] = {"ttft_s": [], "tpot_s": []}
    for rid, e in sil.items():
        cells = []
        for m in ("ttft_s", "tpot_s"):
            meas, got = e["measured"][m], e["after"][m]
            errs[m].append(abs(got / meas - 1))
            cells += [f"{1e3 * meas:.1f}", f"{1e3 * got:.1f} ({_pct(got / meas - 1)})"]
        lines.append(
            f"| {rid} | {e['backend']} | {e['model']} | {e['gpu']} | {e['tp']} | {e['isl']}/{e['osl']} | "
            f"{e['clients']} | {e['precision']} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Median |error| over these rows: "
        + ", ".join(f"{m.replace('_s', '')} {100 * float(np.median(v)):.1f} %" for m, v in errs.items() if v),
    ]
    return lines
