"""The engines' first-token path, put to the silicon rows: three checks that can refute a lead before it is built.

    python benchmarks/coverage_first_token.py lag --base benchmarks/results/coverage_results.json
    python benchmarks/coverage_first_token.py layers --intercept intercept.csv
    python benchmarks/coverage_first_token.py roofline
    python benchmarks/coverage_first_token.py slope [--csv slopes.csv]

- `lag`: all three engines schedule one step ahead of the GPU (TensorRT-LLM `PyExecutor._executor_loop_overlap`:
  fetch, schedule, launch step i, then block on step i-1's sampler event; SGLang `Scheduler.event_loop_overlap`:
  receive, schedule, `run_batch`, then `process_batch_result` of the previous batch; vLLM V1 `EngineCore.
  step_with_batch_queue` with async scheduling, its default since 0.12). A prompt that arrives while step i runs is
  fetched when step i ends, but step i + 1 was scheduled when step i began: the prompt joins step i + 2, one full
  step later than in an engine that schedules at each step's end (servesim's instance). The first token then leaves
  when that step's sampler event is synchronised, after step i + 3 is launched (no extra step). The check adds one
  decode step of the row's own simulation (its simulated mean TPOT, the step the prompt waits behind) to each agg
  row's simulated TTFT of a `coverage.py --json` run and prints the medians before and after. Disaggregated rows are
  left as they are: there the step the prompt waits behind is a prefill step (prefill pool) or a KV arrival.
  It is an estimate of the term's size, not a simulation with it: the wait also shifts later arrivals, which the
  estimate leaves out. The model now has the lag (`serving_engine.overlap_admission`, on in the vllm-v1, sglang and
  trtllm presets); `simulate-lag [--off]` re-simulates a run's rows with it forced on or off (`AdmissionLag`).
- `layers`: the low-load miss of `coverage_intercept.py --csv` (measured - simulated TTFT, <= 16 clients) per
  decoder layer and per MoE layer, by backend, model, GPU, warm-up and prompt length: whether what is missing
  scales with the model's MoE layers (a host cost per launched layer) or not.
- `roofline`: the GEMMs of one prefill step of 1,024 and 8,192 tokens for each InferenceX agg configuration of
  `coverage_decompose.pairs`, priced by the row's cost model, against their own roofline (FLOPs at the precision's
  spec peak, bytes at the spec bandwidth): how far from the roof servesim already prices them, and what share of
  the step they are. A per-token slope 1.4-1.8x steeper in the measurements than in servesim
  (`coverage_decompose.py`) could come from the GEMMs only if they were priced near their roof.

- `slope`: the same pairs at 4 clients, the measured per-token slope of mean TTFT against one simulated step's and
  against the whole simulation's (coverage.py's protocol): does waiting behind longer prefills account for the
  steeper measured slope?

Nothing is fitted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import coverage as cov
import coverage_decompose as cd

from sim.cluster.pools import pool_specs
from sim.config.scenario import load_scenario
from sim.costmodel.structured import StructuredCost

GROUPS = ("mode", "backend", "half")


# -- lag ------------------------------------------------------------------------------------------------------
def with_lag(per_row: pd.DataFrame) -> pd.DataFrame:
    """The rows with `lag_ttft_err`: agg rows' simulated TTFT plus one simulated decode step (their mean TPOT);
    disaggregated rows unchanged."""
    t = per_row.copy()
    extra = np.where(t["mode"] == "agg", t["tpot_ms"], 0.0)
    t["lag_ttft_err"] = (t["ttft_ms"] + extra) / t["silicon_ttft_ms"] - 1
    return t


def lag_table(t: pd.DataFrame, tpot: bool = False) -> str:
    """Median |TTFT error| and signed median, as run and with the lag (and TPOT's, when simulated), overall and per
    group."""
    cols = [("ttft_err", "lag_ttft_err", True)] + ([("tpot_err", "lag_tpot_err", False)] if tpot else [])

    def line(name: str, g: pd.DataFrame) -> str:
        cells = []
        for before, after, signed in cols:
            cells += [f"{g[before].abs().median():.1%}", f"{g[after].abs().median():.1%}"]
            if signed:
                cells += [f"{g[before].median():+.1%}", f"{g[after].median():+.1%}"]
        return f"| {name} | {len(g)} | " + " | ".join(cells) + " |"

    head = "| group | rows | TTFT as run | TTFT lag | signed as run | signed lag |"
    if tpot:
        head += " TPOT as run | TPOT lag |"
    lines = [head, "|" + "---|" * (head.count("|") - 1), line("all", t)]
    for col in GROUPS:
        lines += [line(f"{col} = {k}", g) for k, g in t.groupby(col)]
    return "\n".join(lines)


class AdmissionLag:
    """The lag as the model has it now (`serving_engine.overlap_admission`, `sim.core.instance.Instance._lagged`),
    forced on (or, `on=False`, off) for every instance built inside a `with` block, whatever the scenario's preset
    says: `simulate-lag` compares a coverage run with the lag and without it. The instance's own rule, set, not
    added to: an instance already lagging is never lagged twice. (It was a probe patching the instance's
    admission; that rule is now `Instance._lagged`.)"""

    def __init__(self, on: bool = True) -> None:
        self.on = on

    def __enter__(self) -> AdmissionLag:
        import sim.cluster.pools as pools

        self._pools = pools
        self._cls = cls = pools.Instance
        on = self.on

        def lagged(*args: Any, **kw: Any) -> Any:
            return cls(*args, **{**kw, "overlap_admission": on})

        # the name `sim.cluster.pools` builds every instance through (pure Python in both builds), not the class: the
        # compiled core (`sim.core.native`) makes `Instance` a C type whose `__init__` a patch would not reach
        pools.Instance = lagged  # type: ignore[assignment,misc]  # this block only, undone on exit
        return self

    def __exit__(self, *exc: object) -> None:
        self._pools.Instance = self._cls  # type: ignore[misc]  # restore


def simulate_lag(base: pd.DataFrame, lag: bool = True) -> pd.DataFrame:
    """The rows of a coverage.py --json run simulated again (coverage.simulate, its protocol), with the admission
    lag forced on (or off: a run before `overlap_admission` reproduces `base`): `lag_ttft_err`, `lag_tpot_err`."""
    d = pd.read_csv(cov.CSV).set_index("id", drop=False)
    out = base.copy()
    ttft, tpot = [], []
    for rid in out["id"]:
        r = d.loc[rid]
        with AdmissionLag(on=lag):
            a, b = cov.simulate(r)
        ttft.append(a * 1e3 / r["silicon_ttft_ms"] - 1)
        tpot.append(b * 1e3 / r["silicon_tpot_ms"] - 1)
    out["lag_ttft_err"], out["lag_tpot_err"] = ttft, tpot
    return out


# -- layers ---------------------------------------------------------------------------------------------------
def _layers(row: pd.Series) -> tuple[int, int]:
    """(decoder layers, MoE layers) of the row's model as coverage.py builds it."""
    sc = cov.scenario(row, cov._fixed_workload(1, row))
    model = load_scenario(sc).base_model_spec
    return model.num_layers, model.num_moe_layers


def layer_table(miss: pd.DataFrame, silicon: pd.DataFrame) -> pd.DataFrame:
    """Median miss (ms) per layer and per MoE layer by backend, model, GPU, precision, warm-up and prompt length."""
    t = miss.merge(silicon.drop(columns=["backend", "isl"]), on="id", how="left")
    t["model"] = t["model_path"].astype(str).str.split("/").str[-1]
    shapes = {m: _layers(g.iloc[0]) for m, g in t.groupby("model")}
    t["layers"] = t["model"].map(lambda m: shapes[m][0])
    t["moe_layers"] = t["model"].map(lambda m: shapes[m][1])
    t["per_layer_ms"] = t["miss_ms"] / t["layers"]
    t["per_moe_layer_ms"] = t["miss_ms"] / t["moe_layers"].where(t["moe_layers"] > 0)
    keys = ["backend", "model", "system", "precision", "warmup", "isl"]
    g = t.groupby(keys, dropna=False)
    out = g[["layers", "moe_layers"]].first()
    out["rows"] = g.size()
    out[["miss_ms", "iters", "per_layer_ms", "per_moe_layer_ms"]] = g[
        ["miss_ms", "iters", "per_layer_ms", "per_moe_layer_ms"]
    ].median()
    return out.reset_index()


# -- roofline -------------------------------------------------------------------------------------------------
def recorder(cost: StructuredCost, log: list[tuple[str, float, float]]) -> Callable[..., float]:
    """`cost.gemm` that also logs (op, priced seconds, roofline seconds) of every GEMM it prices."""
    inner = cost.gemm

    def gemm(op: str, m: float, k: float, n: float, copies: float = 1.0, **kw: Any) -> float:
        t = inner(op, m, k, n, copies, **kw)  # (`unquantised`, `module`, `group`: as `StructuredCost.gemm` takes them)
        if m > 0:
            prec = cost._prec[kw.get("module")]  # (wa, aa, peak, ridge, act) of that module's precision
            wa, aa, peak = (cost.a, cost.a, cost.peak_flops) if kw.get("unquantised") else prec[:3]
            roof = max(2.0 * m * k * n / peak, (k * n * copies * wa + (m * k + m * n) * aa) / cost.gpu.mem_bw)
            log.append((op, t, roof))
        return t

    return gemm


GEMM_PARTS = ("qkv_proj", "o_proj", "mlp_up", "mlp_down", "moe_experts", "lm_head")  # breakdown keys of GEMMs


def step_gemms(cost: StructuredCost, tokens: int) -> dict[str, float]:
    """One prefill step of `tokens`: its total and its parts' shares (from the breakdown, all layers), and the
    GEMMs' price over their roofline per layer (each GEMM shape once): routed experts and the other GEMMs."""
    log: list[tuple[str, float, float]] = []
    cost.gemm = recorder(cost, log)  # type: ignore[method-assign]  # an instance-level wrapper, this probe only
    try:
        parts = cost.breakdown([(tokens, 0)], 0, 0)
    finally:
        del cost.gemm  # back to the class's method
    moe = [(t, r) for op, t, r in log if op.startswith("moe_")]
    dense = [(t, r) for op, t, r in log if not op.startswith("moe_") and op not in ("lm_head", "router")]
    step = sum(parts.values())
    return {
        "step": step,
        "gemm_share": sum(parts.get(k, 0.0) for k in GEMM_PARTS) / step,
        "moe_over_roof": sum(t for t, _ in moe) / sum(r for _, r in moe) if moe else float("nan"),
        "dense_over_roof": sum(t for t, _ in dense) / sum(r for _, r in dense),
        "attn_share": parts.get("attn_prefill", 0.0) / step,
        "allreduce_share": parts.get("allreduce", 0.0) / step,
        "elementwise_share": parts.get("elementwise", 0.0) / step,
        "host_share": parts.get("eager_host", 0.0) / step,
    }


def roofline_rows() -> pd.DataFrame:
    """Per InferenceX agg configuration of the 1k/8k pairs: its 1k and 8k steps' GEMM price vs roofline."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for _, b in cd.pairs(pd.read_csv(cov.CSV)):
        key = (b["backend"], b["model_path"], b["system"], b["precision"], b["tp_size"], b["moe_ep_size"])
        if key in seen:
            continue
        seen.add(key)
        sc = cov.scenario(b, cov._fixed_workload(1, b))
        sc["serving_engine"] = {"kind": cov.ENGINES[str(b["backend"])]}
        cost = pool_specs(load_scenario(sc))[0].cost
        if not isinstance(cost, StructuredCost):
            continue
        one, eight = step_gemms(cost, cd.SHORT), step_gemms(cost, cd.LONG)
        rows.append(
            {
                "backend": b["backend"],
                "model": str(b["model_path"]).split("/")[-1],
                "gpu": b["system"],
                "prec": b["precision"],
                "tp": int(b["tp_size"]),
                "ep": int(b["moe_ep_size"]),
                "step_1k_ms": one["step"] * 1e3,
                "step_8k_ms": eight["step"] * 1e3,
                "moe_over_roof_1k": one["moe_over_roof"],
                "moe_over_roof_8k": eight["moe_over_roof"],
                "dense_over_roof_8k": eight["dense_over_roof"],
                "gemm_share_8k": eight["gemm_share"],
                "attn_share_8k": eight["attn_share"],
                "allreduce_share_8k": eight["allreduce_share"],
                "elementwise_share_8k": eight["elementwise_share"],
                "host_share_8k": eight["host_share"],
            }
        )
    return pd.DataFrame(rows)


# -- slope ----------------------------------------------------------------------------------------------------
def slope_rows() -> pd.DataFrame:
    """Per InferenceX agg 1k/8k pair at 4 clients (`coverage_decompose.pairs`): the measured per-token slope of
    mean TTFT, the one-step simulated slope (`coverage_decompose.decompose`) and the slope of the whole simulation
    at coverage.py's protocol (`coverage.simulate`: queueing behind other clients' prefills, the held decode steps,
    the recipe's knobs). If waiting behind longer prefills made the measured slope steeper than one step's, the
    whole simulation's slope would close the gap."""
    rows: list[dict[str, Any]] = []
    for a, b in cd.pairs(pd.read_csv(cov.CSV)):
        one = cd.decompose(a, b)
        if one is None or cov.expressible(a) is not None or cov.expressible(b) is not None:
            continue
        t1, t8 = cov.simulate(a)[0], cov.simulate(b)[0]
        rows.append(
            one
            | {
                "half": cov.half(b),
                "sim_run_slope_us": (t8 - t1) * 1e6 / (cd.LONG - cd.SHORT),
            }
        )
    t = pd.DataFrame(rows)
    t["ratio_step"] = t["slope_us"] / t["sim_slope_us"]
    t["ratio_run"] = t["slope_us"] / t["sim_run_slope_us"]
    return t


def slope_table(t: pd.DataFrame) -> str:
    g = t.groupby(["half", "backend"]).agg(
        configs=("slope_us", "size"),
        slope_us=("slope_us", "median"),
        step_slope_us=("sim_slope_us", "median"),
        run_slope_us=("sim_run_slope_us", "median"),
        ratio_step=("ratio_step", "median"),
        ratio_run=("ratio_run", "median"),
    )
    return _md(g.reset_index())


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for _, r in df.iterrows():
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    lag = sub.add_parser("lag", help="one more decode step on every agg row's TTFT")
    lag.add_argument("--base", type=Path, required=True, help="a coverage.py --json file")
    lay = sub.add_parser("layers", help="the low-load miss per layer and per MoE layer")
    lay.add_argument("--intercept", type=Path, required=True, help="a coverage_intercept.py --csv file")
    lay.add_argument("--backend", default=None)
    sim_lag = sub.add_parser("simulate-lag", help="the rows of a coverage.py --json run simulated with the lag on")
    sim_lag.add_argument("--base", type=Path, required=True, help="a coverage.py --json file")
    sim_lag.add_argument("--off", action="store_true", help="lag off in every instance (servesim before the field)")
    sim_lag.add_argument("--json", type=Path, default=None)
    sub.add_parser("roofline", help="prefill GEMMs against their roofline")
    slope = sub.add_parser("slope", help="measured vs one-step vs whole-simulation per-token TTFT slope")
    slope.add_argument("--csv", type=Path, default=None, help="also write the per-configuration rows here")
    args = ap.parse_args()
    if args.what == "lag":
        per_row = pd.DataFrame(json.loads(args.base.read_text())["errors"]["per_row"])
        print(lag_table(with_lag(per_row)))
    elif args.what == "simulate-lag":
        per_row = pd.DataFrame(json.loads(args.base.read_text())["errors"]["per_row"])
        t = simulate_lag(per_row, lag=not args.off)
        print(lag_table(t, tpot=True))
        if args.json is not None:
            args.json.write_text(t.round(4).to_json(orient="records"))
    elif args.what == "layers":
        t = layer_table(pd.read_csv(args.intercept), pd.read_csv(cov.CSV))
        if args.backend:
            t = t[t["backend"] == args.backend]
        print(_md(t))
    elif args.what == "slope":
        t = slope_rows()
        print(slope_table(t))
        if args.csv is not None:
            t.to_csv(args.csv, index=False)
    else:
        print(_md(roofline_rows()))


if __name__ == "__main__":
    main()
