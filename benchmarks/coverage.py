"""How much of aiconfigurator's silicon measurements servesim can express, and how close it comes, unfitted.

    python benchmarks/coverage.py                     # all rows for coverage, a stratified sample for errors
    python benchmarks/coverage.py --sample 0          # coverage only (seconds)
    python benchmarks/coverage.py --sample 400 --md /tmp/coverage.md --json benchmarks/results/coverage_results.json

Each row of `../shared/data/ground-truth/aiconfigurator/silicon_sample.csv` (real vLLM / SGLang / TRT-LLM
runs) becomes a scenario: the model by its Hugging Face id, the GPU by its system name, the precision from
`gemm_quant_mode` / `moe_quant_mode`, the layout from `tp_size`, `attention_dp_size`, `moe_tp_size`,
`moe_ep_size` (per pool for `disagg` rows; workers and pools from InferenceX's configuration where the row lacks
them, `coverage_disagg.py`, with MTP speculative decoding where the configured item ran it), fixed `isl` /
`osl`, and `batch_size` closed-loop clients (disagg: the `silicon_concurrency` of the run). The headline errors
are over every simulated row, the rows simulated as they ran beside them (`coverage_disagg.headline`).
A row is *expressible* when the scenario validates and its instances fit in GPU memory. Errors compare
servesim's mean TTFT / TPOT with the measured means; nothing is fitted to these rows (default roofline,
default efficiencies).

Load: how the rows were measured. Most rows come from InferenceX (SemiAnalysis) recipes, whose client is
vLLM's `benchmark_serving.py` run as `--dataset-name random --random-input-len $ISL --random-output-len $OSL
--random-range-ratio 0.8 --num-prompts $((CONC * 10)) --max-concurrency $CONC --request-rate inf
--ignore-eos` (InferenceMAX README and benchmarks/*.sh; aiconfigurator replays the same rows with
`request_count = concurrency * 10, random_range_ratio = 0.8`). So: a native `closed_loop` of CONC clients
all starting at t = 0, 10 x CONC requests, each length uniform in [int(0.8 L), L], every request in the
means. `--protocol fixed` is the earlier reading (3 requests per client, exact isl / osl, no engine preset).
The serving-engine preset follows the backend (vllm-v1, sglang, trtllm).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sim  # noqa: E402
from hwprofiles import catalog  # noqa: E402
from hwprofiles.specs import GPUSpec  # noqa: E402
from sim.config.scenario import load_scenario  # noqa: E402
from sim.costmodel.engine import preset  # noqa: E402
from sim.errors import ServesimError  # noqa: E402

if str(Path(__file__).resolve().parent) not in sys.path:  # (appended: benchmarks/queueing.py must not shadow queueing)
    sys.path.append(str(Path(__file__).resolve().parent))
import coverage_agg_mtp as agg_mtp  # noqa: E402
import coverage_disagg  # noqa: E402
from coverage_decode_router import decode_router  # noqa: E402
from coverage_disagg import decode_slots, headline  # noqa: E402
from coverage_gpu_total import as_disagg, deployment  # noqa: E402  (agg export rows that ran disaggregated)
from coverage_layout import (  # noqa: E402  (the rows' layouts and client counts; re-exported)
    _int,
    _layout,
    concurrency,
    recorded_layout,  # noqa: F401  (re-exported for the tests)
    replicas,
)
from coverage_layout import unrecorded_dp as unrecorded_dp  # noqa: E402  (re-exported for the tests)
from coverage_memory import memory_fraction  # noqa: E402  (the KV share of a row; re-exported)
from coverage_recipes import STREAM, disagg_prefill_budget, kv_cache_dtype, recipe_terms  # noqa: E402
from coverage_recipes_sglang_mem import kv_cache_section  # noqa: E402
from coverage_recipes_trt import ADP_BALANCE as ADP_BALANCE  # noqa: E402  (the recipes' holds; re-exported)
from coverage_recipes_trt import BATCH_WAIT as BATCH_WAIT  # noqa: E402
from coverage_recipes_trt import kv_dtype as trt_kv_dtype  # noqa: E402
from coverage_recipes_trt import kv_free_fraction, trtllm_holds, trtllm_scheduler  # noqa: E402
from coverage_render import render  # noqa: E402
from coverage_trt_release import trt_release_terms  # noqa: E402  (the TensorRT-LLM release's MoE exchange)

CSV = ROOT.parent / "shared" / "data" / "ground-truth" / "aiconfigurator" / "silicon_sample.csv"
WAVES = 10  # requests per client: InferenceX runs `--num-prompts $((CONC * 10)) --max-concurrency $CONC`
RANGE_RATIO = 0.8  # InferenceX `--random-range-ratio`: lengths uniform in [0.8 x, x]
ENGINES = {"vllm": "vllm-v1", "sglang": "sglang", "trtllm": "trtllm"}  # backend -> serving_engine preset
# `replicas`: every agg row of k x batch_size clients (k > 1; 16 TensorRT-LLM gap-analysis rows) is k instances,
# as aiconfigurator's generator sizes the run (trtllm.rule@581e459: estimated_concurrency = agg_workers x
# max_batch_size); one reading for all of them, never chosen by servesim's outcome. `--no-replicas`: one instance.
READ_REPLICAS = True
# `decode_slots`: a disagg row's decode workers run at most the recipe's `max_batch_size` per attention-DP rank (the
# `batchN` of the TensorRT-LLM recipe names, coverage_disagg.decode_slots); the clients beyond the slots wait for one
# after their prefill, before the decode worker streams their first token (COVERAGE.md, "Disaggregated first token
# (branch s9-disagg)"). A recipe fact, independent of the measured latency. `--no-decode-slots`: no cap.
READ_DECODE_SLOTS = True
READ_DECODE_ROUTER = True  # TensorRT-LLM disagg rows: decode workers picked in turn, as their front ends do
READ_TRT_RELEASE = True  # TensorRT-LLM rows: the release's MoE exchange rule (coverage_trt_release)
READ_SGLANG_STATIC = True  # SGLang agg rows: the recipe's / engine default --mem-fraction-static (the KV pool)
READ_TRT_SCHEDULER = True  # TensorRT-LLM agg rows: the recipe's scheduler and KV share (coverage_recipes_trt)
# SGLang rows: servesim's `sglang` kind (policies/sglang.py: prefill batches first and alone, decode batches
# otherwise, as SGLang without `--enable-mixed-chunk`, which no sampled recipe passes: COVERAGE_LOG "G6") with
# the same numbers (`chunked_prefill_size` = the budget, `max_running_requests` = the seats); before session 15
# (branch s15-sglang) `sarathi`, which mixes decodes into every chunk. `--no-sglang-kind`: that older reading.
READ_SGLANG_KIND = True
MAX_CLIENTS = 1024  # larger closed loops are expressible but not simulated for errors (run time)
QUANT = {  # quant mode -> (weights, activations)
    "nvfp4": ("fp4", "fp4"),
    "fp8": ("fp8", "fp8"),
    "fp8_block": ("fp8", "fp8"),
    "int4_wo": ("int4", "bf16"),
}


def quantization(row: pd.Series, gpu: GPUSpec) -> dict[str, Any]:
    mode = row["moe_quant_mode"] if isinstance(row["moe_quant_mode"], str) else row["gemm_quant_mode"]
    if isinstance(mode, str) and mode in QUANT:
        w, a = QUANT[mode]
    elif "gpt-oss" in str(row["model_path"]):  # ships MXFP4 experts; NaN mode = the checkpoint as published
        w, a = "fp4", "bf16"
    else:
        w, a = "bf16", "bf16"
    if "gpt-oss" in str(row["model_path"]) and w == "fp4" and row["backend"] == "trtllm":
        # the published MXFP4 checkpoint whatever the row's mode column says: TensorRT-LLM's gpt-oss MoE support
        # matrix runs MXFP4 experts with MXFP8 activations on Blackwell (TRTLLM and CUTLASS backends) and with BF16
        # activations on Hopper (TRITON, which the H200 recipe sets), never NVFP4 x NVFP4 (W4A4)
        # (https://nvidia.github.io/TensorRT-LLM/deployment-guide/deployment-guide-for-gpt-oss-on-trtllm.html,
        # "MoE Backend Support Matrix"). Before session 15: W4A4 on Blackwell, W4A8 on Hopper (COVERAGE.md, "The worst
        # groups, end to end (branch s15-worst)").
        a = "fp8" if gpu.peak_flops("fp4") else "bf16"
    if gpu.peak_flops(a) is None:  # no tensor cores of that width: the weights are dequantised into BF16 (W4A16),
        # as the Hopper kernels for FP4 weights do (TensorRT-LLM's TRITON MoE above, vLLM's Marlin FP4); was FP8 until
        # session 15, a W4A8 path no Hopper kernel cited here runs
        a = "bf16"
    # TRT-LLM serves FP8/FP4 checkpoints with an FP8 KV cache unless the recipe keeps the checkpoint's dtype
    # (coverage_recipes_trt.kv_dtype: gpt-oss on H200); vLLM / SGLang default to the model dtype unless the row's
    # InferenceX recipe passes `--kv-cache-dtype fp8` / `fp8_e4m3` (coverage_recipes.kv_cache_dtype)
    if row["backend"] == "trtllm" and w in ("fp8", "fp4"):
        kv = trt_kv_dtype(row) or "fp8"
    else:
        kv = kv_cache_dtype(row) or "bf16"
    if "gpt-oss" in str(row["model_path"]):
        # the checkpoint quantises only the routed experts: openai/gpt-oss-120b's config.json `quantization_config`
        # (`quant_method: mxfp4`) lists `model.layers.*.self_attn`, `model.layers.*.mlp.router`,
        # `model.embed_tokens` and `lm_head` in `modules_to_not_convert`, so attention stays BF16 (gpt-oss has no
        # dense MLP or shared expert); the row's mode and the engine's MoE path above set the experts' precision.
        # Before session 15 (branch s15-quant) every GEMM ran at the experts' precision.
        return {"weights": "bf16", "activations": "bf16", "kv_cache": kv, "experts": {"weights": w, "activations": a}}
    return {"weights": w, "activations": a, "kv_cache": kv}


def scenario(row: pd.Series, workload: dict[str, Any]) -> dict[str, Any]:
    """The servesim scenario of one silicon row (workload supplied by the caller)."""
    c = concurrency(row)
    model, gpu = catalog.model(row["model_path"]), catalog.gpu(row["system"])
    quant = quantization(row, gpu)
    # vLLM V1 and TRT-LLM (chunked) mix chunks with decodes in an 8192-token budget; SGLang chunks at 8192 but
    # runs its prefill batches alone (`sglang_kind`, READ_SGLANG_KIND)
    sched = {"kind": "sarathi", "max_num_seqs": max(256, c), "token_budget": 8192}
    sc: dict[str, Any] = {
        "name": str(row["id"])[:80],
        "model": row["model_path"],
        "hardware": row["system"],
        "quantization": quant,
        "workload": workload,
        "scheduler": sched,
    }
    if row["mode"] == "agg":
        sc["cluster"] = _layout(row, moe=model.is_moe)
        lay = [dict(sc["cluster"])]
        if (k := instances(row)) > 1:
            sc["cluster"] |= {"instances": k, "router": {"kind": "round_robin"}}
        sc["scheduler"] = rank_budget(sched, str(row["backend"]), sc["cluster"].get("attention_dp", 1))
        if READ_TRT_SCHEDULER and (trt := trtllm_scheduler(row, c, lay[0])) is not None:
            sc["scheduler"] = trt
        if spec := agg_mtp.speculative(row):  # the InferenceX entry in force ran MTP (coverage_agg_mtp)
            sc["speculative"] = spec
    else:
        dep = deployment(row)  # workers / pools from InferenceX's configuration where the row lacks them
        pools = {
            role: dict(dep.pools[role]) if dep.pools_read and model.is_moe
            else {"instances": _int(row[f"{role}_num_workers"]), **_layout(row, f"{role}_", model.is_moe)}
            for role in ("prefill", "decode")
        }  # fmt: skip
        lay = [dict(p) for p in pools.values()]
        for role, pool in pools.items():
            own = rank_budget(sched, str(row["backend"]), pool.get("attention_dp", 1))
            if role == "prefill" and (chunk := disagg_prefill_budget(row, pool)):  # the recipe's prefill workers
                own = {**own, "token_budget": chunk}
            if role == "decode" and READ_DECODE_SLOTS and (cap := decode_slots(row, dep)) is not None:
                own = {**own, "max_num_seqs": cap}  # the recipe's decode slots per worker
            if own != sched:
                pool["scheduler"] = own
        if READ_DECODE_ROUTER and (router := decode_router(row)) is not None:  # the front end's decode routing
            pools["decode"]["router"] = router
        sc["cluster"] = {**pools, "router": {"kind": "round_robin"}}
        if dep.status == "config" and model.is_moe and (spec := dep.speculative(str(row["model_path"]))):
            sc["speculative"] = spec  # MTP as the configured item ran it (draft length from its recipe)
    free = (kv_free_fraction(row, c, lay[0]) if READ_TRT_SCHEDULER and row["mode"] == "agg" else None) or 0.9
    share = memory_fraction(row["backend"], model, gpu, quant, lay, free)  # SGLang: its mem_fraction_static instead
    sc["kv_cache"] = kv_cache_section(row, share, gpu.memory_bytes, lay[0], "speculative" in sc, READ_SGLANG_STATIC)
    if READ_SGLANG_KIND and row["backend"] == "sglang":
        sc["scheduler"] = sglang_kind(sc["scheduler"])
        for pool in (sc["cluster"].get(role) for role in ("prefill", "decode")):
            if pool is not None and "scheduler" in pool:
                pool["scheduler"] = sglang_kind(pool["scheduler"])
    return sc


def sglang_kind(sched: dict[str, Any]) -> dict[str, Any]:
    """The `sglang` scheduler with a `sarathi` section's numbers: its token budget is SGLang's
    `chunked_prefill_size` (an instance's whole budget: `rank_budget`), its seats `max_running_requests`."""
    if sched["kind"] != "sarathi":
        return sched
    return {
        "kind": "sglang",
        "chunked_prefill_size": sched["token_budget"],
        "max_running_requests": sched["max_num_seqs"],
    }


def instances(row: pd.Series) -> int:
    """Instances sharing the row's clients (`replicas` under READ_REPLICAS, else 1): the one place the reading is
    decided; benchmarks/tpot_bounds.py counts the GPUs of the scenario built from it."""
    return replicas(row) if READ_REPLICAS else 1


def rank_budget(sched: dict[str, Any], backend: str, dp: int) -> dict[str, Any]:
    """The scheduler of an instance of `dp` attention-DP ranks. TensorRT-LLM and vLLM schedule each rank on its
    own (a TensorRT-LLM rank runs its own PyExecutor scheduler on its own requests with `max_num_tokens`, the
    ranks only allgathering counts; each vLLM data-parallel engine core has its own `max_num_batched_tokens`),
    so the instance's token budget is dp x the per-rank one. SGLang divides `--chunked-prefill-size` by dp_size
    under DP attention (`ServerArgs`: "DP attention is enabled. The chunked prefill size is adjusted ..."): its
    budget stays the instance's, and the `sglang` preset's `attention_dp_rank_chunks` splits it over the ranks
    (policies/dp_chunks.py)."""
    if dp <= 1 or backend == "sglang":
        return sched
    return {**sched, "token_budget": sched["token_budget"] * dp}


def _fixed_workload(n: int, row: pd.Series) -> dict[str, Any]:
    return {
        "arrival": {"kind": "poisson", "rate": 1.0},
        "num_requests": n,
        "lengths": {"kind": "fixed", "prompt": int(row["isl"]), "output": int(row["osl"])},
    }


def expressible(row: pd.Series) -> str | None:
    """None if servesim can express the row, else why not (one line)."""
    row = as_disagg(row)
    if _int(row.get("pp_size")) > 1:
        return "pipeline parallelism (cluster.pp) not modelled"
    try:
        sc = load_scenario(scenario(row, _fixed_workload(1, row)))
        from sim.cluster.pools import pool_specs

        pool_specs(sc)
    except ServesimError as e:
        return str(e).split(": ", 1)[-1][:160]
    return None


def _run(sc: dict[str, Any]) -> pd.DataFrame:
    return sim.run(load_scenario(sc)).requests


def source(row: pd.Series) -> str:
    """Which campaign measured the row: InferenceX (`source_file=2026-…csv`, `db-dump/…`: SemiAnalysis
    InferenceMAX/InferenceX recipes) or aiconfigurator's own gap analysis (`…gap-analysis…`)."""
    src = str(row["silicon_data_source"])
    return "gap-analysis" if "gap-analysis" in src else "inferencex"


def lengths(row: pd.Series, n: int, protocol: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and output lengths of the row's n requests. `inferencex`: the benchmark client's random
    dataset, `np.random.randint(int(L * 0.8), L + 1)` for each of isl and osl (bench_serving
    `sample_random_requests` with `--random-range-ratio 0.8`, the ratio InferenceX runs with); `fixed`:
    isl / osl exactly."""
    isl, osl = int(row["isl"]), int(row["osl"])
    if protocol == "fixed":
        return np.full(n, isl), np.full(n, osl)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    lo = RANGE_RATIO
    return rng.integers(int(isl * lo), isl + 1, n), rng.integers(int(osl * lo), osl + 1, n)


def load(row: pd.Series, protocol: str = "inferencex") -> tuple[int, np.ndarray, np.ndarray]:
    """The row's closed loop: clients, and the prompt and output lengths of the requests they send in turn.
    `inferencex`: `WAVES` x concurrency requests (`--num-prompts $((CONC * 10)) --max-concurrency $CONC`),
    lengths from `lengths`; `fixed`: 3 x concurrency requests of exactly isl / osl."""
    c = concurrency(row)
    n = c * (WAVES if protocol == "inferencex" else 3)
    prompt, output = lengths(row, n, protocol)
    return c, prompt, output


def serving_engine(row: pd.Series, protocol: str = "inferencex", sglang_first: bool = True) -> dict[str, Any]:
    """The `serving_engine` section of the row's recipe: the backend's preset and, for InferenceX rows, the
    recipe's streaming (`STREAM`; `sglang_first`: SGLang sends its first token at once). `fixed`: none."""
    if protocol != "inferencex":
        return {}
    backend = str(row["backend"])
    out: dict[str, Any] = {"kind": ENGINES[backend]}
    if source(row) == "inferencex" and backend in STREAM:
        n, first = STREAM[backend]
        out |= {"stream_interval": n, "stream_first_token": first or (backend == "sglang" and sglang_first)}
    if source(row) == "inferencex" and backend == "trtllm" and row["mode"] == "agg":
        out |= trtllm_holds(row)
    if READ_TRT_RELEASE:  # TensorRT-LLM rows only (`release` reads none for other backends)
        out |= trt_release_terms(row)
    if row["mode"] == "disagg" and (a2a := deployment(row).moe_all2all):
        out["moe_all2all"] = a2a  # the row's srt-slurm SGLang recipes run DeepEP (coverage_recipes_sglang)
    return out


PER_REQUEST_S: dict[str, float] = {}  # `--per-request-s`: a fitted per-request time by backend (none by default)


# A configuration (deployment): every column but the load (`batch_size`, worker counts, isl / osl) and the
# measurement itself, so all client counts and prompt lengths of one deployment fall on the same side of the split.
CONFIG_KEYS = (
    "model_path", "system", "backend", "mode", "precision", "gemm_quant_mode", "moe_quant_mode",
    *(f"{p}{k}" for p in ("", "prefill_", "decode_") for k in ("tp_size", "pp_size", "attention_dp_size",
                                                                "moe_tp_size", "moe_ep_size")),
)  # fmt: skip


def half(row: pd.Series) -> str:
    """The split for anything estimated from the rows (the one copy; coverage_intercept.py uses it): by
    configuration (`CONFIG_KEYS`), CRC-32 of the key even fits, odd reports, so no held-out row shares a
    deployment with a fitted one."""
    key = "|".join(str(row[k]) for k in CONFIG_KEYS)
    return "fit" if zlib.crc32(key.encode()) % 2 == 0 else "held-out"


def simulate(row: pd.Series, protocol: str = "inferencex", sglang_first: bool = True) -> tuple[float, float]:
    """Mean TTFT and TPOT (seconds) of the row's closed loop (`load`): `concurrency` clients that all send at
    t = 0 (request rate inf) and each send the next request when theirs completes; the means are over every
    request, the first wave included, as the benchmark client reports them — client-side times, the recipe's
    stream interval included (`serving_engine`)."""
    row = as_disagg(row)  # an agg export row whose tp_size is a disaggregated deployment's GPU total
    c, prompt, output = load(row, protocol)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "lengths.csv"
        pd.DataFrame({"arrival_s": 0.0, "prompt_tokens": prompt, "output_tokens": output}).to_csv(path, index=False)
        wl = {
            "arrival": {"kind": "closed_loop", "concurrency": c},
            "num_requests": len(prompt),
            "lengths": {"kind": "trace", "path": str(path), "format": "csv", "sample": "sequential"},
        }
        sc = scenario(row, wl)
        if engine := serving_engine(row, protocol, sglang_first):
            sc["serving_engine"] = engine
            if source(row) == "inferencex" and row["mode"] == "agg":  # the recipe's own knobs (coverage_recipes)
                terms, sched = recipe_terms(row, c)
                sc["serving_engine"] |= terms
                if sched and sc["scheduler"]["kind"] == "sarathi":  # a recipe budget (per rank: `rank_budget`)
                    dp = sc["cluster"].get("attention_dp", 1)
                    sc["scheduler"] = rank_budget({**sc["scheduler"], **sched}, str(row["backend"]), dp)
                elif sched.get("token_budget") and sc["scheduler"]["kind"] == "sglang":  # (its chunk: the same)
                    sc["scheduler"] = {**sc["scheduler"], "chunked_prefill_size": sched["token_budget"]}
            if (extra := PER_REQUEST_S.get(str(row["backend"]))) is not None:  # fitted, `--per-request-s` only
                fe = preset(engine["kind"]).frontend_s  # on top of the preset's own front end
                sc["serving_engine"]["frontend_s"] = fe + extra
        df = _run(sc)
    return float(np.mean(df["ttft_s"])), float(np.nanmean(df["tpot_s"]))


def group(row: pd.Series) -> str:
    """The row's deployment group in the tables: agg rows by whether they ran MTP (coverage_agg_mtp.group),
    disagg rows by how their workers were read (coverage_disagg.Deployment.group)."""
    row = as_disagg(row)
    return agg_mtp.group(row) if row["mode"] == "agg" else deployment(row).group


def _share(df: pd.DataFrame, by: str) -> dict[str, str]:
    g = df.groupby(by)["ok"].agg(["sum", "count"])
    return {str(k): f"{int(r['sum'])}/{int(r['count'])} ({r['sum'] / r['count']:.0%})" for k, r in g.iterrows()}


def _result(r: pd.Series, ttft: float, tpot: float) -> dict[str, Any]:
    """One simulated row of the `--json` results: the silicon and simulated latencies and how the row was read."""
    r = as_disagg(r)
    g = group(r)
    return {
        "id": r["id"],
        "mode": r["mode"],
        "source": source(r),
        "backend": r["backend"],
        "model": r["model_path"],
        "gpu": r["system"],
        "clients": concurrency(r),
        "isl": int(r["isl"]),
        "osl": int(r["osl"]),
        "ttft_ms": round(ttft * 1e3, 2),
        "silicon_ttft_ms": round(float(r["silicon_ttft_ms"]), 2),
        "tpot_ms": round(tpot * 1e3, 3),
        "silicon_tpot_ms": round(float(r["silicon_tpot_ms"]), 3),
        "ttft_err": ttft * 1e3 / r["silicon_ttft_ms"] - 1,
        "tpot_err": tpot * 1e3 / r["silicon_tpot_ms"] - 1,
        "half": half(r),
        "deployment": g,
        "as_run": g in ("agg", "agg, MTP") or (r["mode"] != "agg" and deployment(r).as_run(str(r["model_path"]))),
    }


def errors(res: pd.DataFrame) -> dict[str, Any]:
    """The error summary of the simulated rows: the headline and its tables over every simulated (expressible)
    row, the issue's row set; the rows simulated as they ran (`as_run`) beside it (coverage_disagg.headline)."""

    def med(x: pd.Series) -> float:
        return float(x.abs().median())

    cols = ["ttft_err", "tpot_err"]
    return {
        "rows": len(res),
        **headline(res),
        "by": {
            k: res.groupby(k)[cols].agg(med).round(3).to_dict(orient="index")
            for k in ("source", "mode", "backend", "model", "gpu")
        },
        "by_half": res.groupby("half")[cols].agg(med).round(4).to_dict(orient="index"),
        "per_request_s": PER_REQUEST_S,
        "per_row": res.round(4).to_dict(orient="records"),
    }


def main() -> None:
    global READ_REPLICAS, READ_DECODE_SLOTS, READ_TRT_SCHEDULER, READ_DECODE_ROUTER, READ_SGLANG_KIND
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=CSV)
    ap.add_argument("--sample", type=int, default=200, help="rows simulated for errors (stratified); 0: none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument("--md", type=Path, default=None, help="write a markdown table here")
    ap.add_argument("--protocol", choices=("inferencex", "fixed"), default="inferencex", help="load (see module doc)")
    ap.add_argument("--only", default=None, help="simulate only rows whose id contains this (debugging)")
    ap.add_argument(
        "--sglang-first",
        choices=("held", "at-once"),
        default="at-once",
        help="SGLang's first streamed token: held for the stream interval (releases with `%% == 0`) or sent at once",
    )
    ap.add_argument("--ids", type=Path, default=None, help="simulate the rows of this earlier --json instead")
    ap.add_argument("--replicas", action=argparse.BooleanOptionalAction, default=READ_REPLICAS, help="k x batch: k")
    ap.add_argument(
        "--decode-slots",
        action=argparse.BooleanOptionalAction,
        default=READ_DECODE_SLOTS,
        help="disagg decode workers capped at the recipe's max batch per attention-DP rank",
    )
    ap.add_argument(
        "--per-request-s",
        type=Path,
        default=None,
        help="JSON {backend: seconds} fitted on the fit half (coverage_intercept.py --fit); report the held-out half",
    )
    ap.add_argument("--trt-scheduler", action=argparse.BooleanOptionalAction, default=READ_TRT_SCHEDULER)
    ap.add_argument(
        "--sglang-kind",
        action=argparse.BooleanOptionalAction,
        default=READ_SGLANG_KIND,
        help="SGLang rows: the `sglang` scheduler kind (no: `sarathi`, decodes mixed into every chunk)",
    )
    ap.add_argument(
        "--decode-router",
        action=argparse.BooleanOptionalAction,
        default=READ_DECODE_ROUTER,
        help="TensorRT-LLM disagg rows: decode workers in turn (coverage_decode_router); no: servesim's least_kv",
    )
    ap.add_argument(
        "--bound",
        action=argparse.BooleanOptionalAction,
        default=coverage_disagg.READ_BOUND,
        help="disagg rows whose matching config items disagree: the smallest of them (no: 1 prefill + 1 decode)",
    )
    args = ap.parse_args()
    coverage_disagg.READ_BOUND = args.bound
    READ_REPLICAS, READ_DECODE_SLOTS, READ_TRT_SCHEDULER = args.replicas, args.decode_slots, args.trt_scheduler
    READ_DECODE_ROUTER = args.decode_router
    READ_SGLANG_KIND = args.sglang_kind
    if args.per_request_s is not None:
        PER_REQUEST_S.update(json.loads(args.per_request_s.read_text()))
    df = pd.read_csv(args.csv)
    df["why"] = [expressible(r) for _, r in df.iterrows()]
    df["ok"] = df["why"].isna()
    out: dict[str, Any] = {
        "rows": len(df),
        "expressible": int(df["ok"].sum()),
        "protocol": args.protocol,
        "sglang_first": args.sglang_first,
        "sglang_kind": args.sglang_kind,
        "replicas": args.replicas,
        "by": {k: _share(df, k) for k in ("mode", "backend", "model_path", "system")},
        "reasons": df.loc[~df["ok"], "why"].value_counts().head(15).to_dict(),
    }
    print(f"expressible: {out['expressible']}/{out['rows']} ({out['expressible'] / out['rows']:.1%})")
    if args.sample:
        ok = df[df["ok"] & (df.apply(concurrency, axis=1) <= MAX_CLIENTS)]
        rng = np.random.default_rng(np.random.SeedSequence(args.seed))
        strata = ok.groupby(["model_path", "system", "mode"])
        per = max(1, args.sample // max(1, strata.ngroups))
        picks = [g.iloc[rng.permutation(len(g))[:per]] for _, g in strata]
        sample = pd.concat(picks).head(args.sample) if picks else ok.head(0)
        if args.ids:  # the rows of an earlier run that are still expressible (a before / after on the same rows)
            sample = ok[ok["id"].isin({r["id"] for r in json.loads(args.ids.read_text())["errors"]["per_row"]})]
        rows = []
        t0 = time.time()
        for _, r in sample.iterrows():
            if args.only and args.only not in str(r["id"]):
                continue
            ttft, tpot = simulate(r, args.protocol, args.sglang_first == "at-once")
            rows.append(_result(r, ttft, tpot))
        out["errors"] = {"wall_s": round(time.time() - t0, 1), **errors(pd.DataFrame(rows))}
        e = out["errors"]
        print(
            f"errors on {e['rows']} rows: median |TTFT err| {e['median_abs_ttft_err']:.1%}, "
            f"median |TPOT err| {e['median_abs_tpot_err']:.1%} (the {e['as_run']['rows']} rows simulated as run: "
            f"{e['as_run']['median_abs_ttft_err']:.1%} / {e['as_run']['median_abs_tpot_err']:.1%})"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    if args.md:
        args.md.write_text(render(out))


if __name__ == "__main__":
    main()
