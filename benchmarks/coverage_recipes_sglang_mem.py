"""SGLang's KV pool on an aggregated silicon row: `--mem-fraction-static` as the row's recipe passes it, or SGLang's
own default at the row's release; and the KV bytes that fraction leaves.

**What the fraction means** (SGLang `ServerArgs`: "mem_fraction_static = (model weights + KV cache pool) / GPU
memory capacity", docs/advanced_features/hyperparameter_tuning.md; `ModelRunner.profile_max_num_token`: the pool is
the memory free after loading the weights minus `(1 - mem_fraction_static)` x the memory free at start-up). So the
pool is `mem_fraction_static x memory - weights`: activations and CUDA graphs live in the `1 - mem_fraction_static`
left over, and nothing else is taken from the pool. servesim's `kv_cache` reads it as `gpu_memory_utilization =
mem_fraction_static` with `reserve_gb = 0`. The start-up free memory is the driver total less the CUDA context
(under 1 GB), so this is at most ~1 GB per GPU more generous than the engine. Before this reading coverage.py gave
SGLang 0.9 of what the weights leave (`coverage_memory.memory_fraction`), e.g. 0.944 of a B200 for DeepSeek-R1 fp8
at TP 8 where the recipe passes 0.82: a KV pool 1.3x the engine's.

**The recipes' value** (SemiAnalysisAI/InferenceX `benchmarks/*.sh`, later `benchmarks/single_node/*.sh`, read in
the local mirror with `git log` per file; the version in force on the row's `measured=` date, `in_force`):
`dsr1_fp4_b200.sh` 0.85 from 27f29acbe (2025-09-22 UTC; its `_docker` / `_slurm` siblings alike), `dsr1_fp8_b200.sh`
0.82 from 425f74d51 (2025-09-12) and from 1d29967c4 (2026-01-13) 0.82 at TP 8, 0.95 at TP 4 (`MEM_FRAC_STATIC`),
`dsr1_fp8_h200.sh` 0.82 from b0c4ed21b (2026-01-22; before it `dsr1_fp8_h200_slurm.sh` passes 0.82 from e617b3e63
and `dsr1_fp8_h200.sh` none, so which ran is not read), `dsr1_fp4_b300.sh` 0.85 (9ebeafb4e),
`dsr1_fp8_b300.sh` 0.82 / 0.95 by TP as fp8 B200 (5b302f147), `qwen3.5_bf16_b200.sh` 0.8 from 521d19951
(2026-02-17 UTC) and 0.82 from 9dc87a68c (2026-02-20), `qwen3.5_fp8_b200.sh` 0.82 (efd49e50b),
`qwen3.5_fp4_b200.sh` 0.85 (48d35c480), `qwen3.5_bf16_b300.sh` 0.82 (77c8b9657), `qwen3.5_{fp4,fp8}_b300.sh` 0.8
(8acbd08b7 / c0f62a2ef), `qwen3.5_fp8_h200.sh` 0.8 (f65d6b4b1), `glm5_fp8_{b200,h200,b300}.sh` 0.85 (13930ca61,
ebb48d4bc, 6c66a00d9), `glm5_fp4_b200.sh` 0.80 from 800f57aaf (2026-04-02) and 0.9 from 475cc1dbc (2026-04-09).
Rows dated before a recipe's first version read here keep coverage.py's share (no recipe read). aiconfigurator's
gap-analysis rows (no recipe) take SGLang's default: the engine's default is the one cited reading of a deployment
nothing records.

**SGLang's default** (`ServerArgs`, sgl-project/sglang `python/sglang/srt/server_args.py`), in MiB of the driver's
memory total `gpu_mem`:
- from v0.5.3 (PR #10975, "Use more general heuristics to set the default value of --mem-fraction-static", opened
  2025-09-27; the formula as it reads in public copies of `ServerArgs._handle_gpu_memory_settings` found by code
  search, one from before and one from after piecewise CUDA graphs, whose commits the search does not name):
  `reserved = 512 + 1.5 x max(chunked_prefill_size, 2048) + 2 x cuda_graph_max_bs + tp x pp / 8 x 1024`, with DP
  attention `+ 3 x cuda_graph_max_bs x dp` (and `+ 1.5 x cuda_graph_max_bs x dp` above 300), at least 10 GiB when
  `gpu_mem > 60 GiB`, `+ 2 GiB` for an EAGLE / MTP draft; `chunked_prefill_size` 8192 below 160 GiB (H100, H200)
  and 16384 above (B200 and up), `cuda_graph_max_bs` 256 at TP < 4 and 512 from TP 4 below 160 GiB, 512 above;
  mem_fraction_static = round((gpu_mem - reserved) / gpu_mem, 3). (Later versions add `8 MiB` per piecewise
  CUDA-graph size when that option is on: not applied.)
- v0.4.7 to v0.5.2 (PR #7054, "Simplify the heuristics for setting --mem-fraction-static", 2025-06-10):
  `reserved = (9.5 + tp x pp / 2) GiB` below 90 GiB (H100), `(12 + tp x pp / 2) GiB` below 160 GiB (H200),
  32 GiB above; `+ 2 GiB` with a draft, `+ 4 GiB` with DP attention.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from coverage_recipes import family, in_force, measured_date

MIB = 2.0**20
# (family, precision, gpu) -> [(first commit in force, UTC; value at TP 8 or any TP, value at TP 4 or None)]
RECIPE_STATIC: dict[tuple[str, str, str], list[tuple[str, float | None, float | None]]] = {
    ("dsr1", "fp4", "b200_sxm"): [("2025-09-22T00:02:42Z", 0.85, None)],
    ("dsr1", "fp8", "b200_sxm"): [("2025-09-12T21:32:37Z", 0.82, None), ("2026-01-13T20:47:13Z", 0.82, 0.95)],
    ("dsr1", "fp8", "h200_sxm"): [("2026-01-22T21:56:11Z", 0.82, None)],
    ("dsr1", "fp4", "b300_sxm"): [("2026-04-17T08:18:11Z", 0.85, None)],
    ("dsr1", "fp8", "b300_sxm"): [("2026-04-17T09:57:40Z", 0.82, 0.95)],
    ("qwen3.5", "bf16", "b200_sxm"): [("2026-02-17T04:11:46Z", 0.8, None), ("2026-02-20T05:32:41Z", 0.82, None)],
    ("qwen3.5", "fp8", "b200_sxm"): [("2026-03-03T17:20:50Z", 0.82, None)],
    ("qwen3.5", "fp4", "b200_sxm"): [("2026-04-08T19:51:33Z", 0.85, None)],
    ("qwen3.5", "bf16", "b300_sxm"): [("2026-04-18T01:26:27Z", 0.82, None)],
    ("qwen3.5", "fp4", "b300_sxm"): [("2026-04-18T01:22:10Z", 0.8, None)],
    ("qwen3.5", "fp8", "b300_sxm"): [("2026-04-17T07:20:01Z", 0.8, None)],
    ("qwen3.5", "fp8", "h200_sxm"): [("2026-03-04T18:52:58Z", 0.8, None)],
    ("glm5", "fp8", "b200_sxm"): [("2026-03-20T17:45:21Z", 0.85, None)],
    ("glm5", "fp8", "h200_sxm"): [("2026-03-19T06:26:37Z", 0.85, None)],
    ("glm5", "fp8", "b300_sxm"): [("2026-04-17T11:23:40Z", 0.85, None)],
    ("glm5", "fp4", "b200_sxm"): [("2026-04-02T21:23:08Z", 0.80, None), ("2026-04-09T22:47:28Z", 0.9, None)],
}
GIB = 1024  # MiB


def recipe_static(row: pd.Series, gpus: int) -> tuple[bool, float | None]:
    """(a recipe in force is read, its --mem-fraction-static or None where it passes none) of an InferenceX SGLang
    agg row on `gpus` GPUs (`RECIPE_STATIC`); (False, None) where no version in force is read."""
    fam = family(str(row["model_path"]))
    versions = RECIPE_STATIC.get((fam, str(row["precision"]), str(row["system"])), [])
    in_effect = [v for v in versions if in_force(row, v[0])]
    if not in_effect:
        return False, None
    _, any_tp, tp4 = in_effect[-1]
    return True, tp4 if gpus == 4 and tp4 is not None else any_tp


def _release(version: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of an SGLang release string ("0.5.1.post1" -> (0, 5, 1)); None for nightly / unknown."""
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1]), int(parts[2].split("-")[0].split("rc")[0])
    except (IndexError, ValueError):
        return None


def default_static(
    version: str, gpu_mem_mib: float, tp: int, dp: int = 1, draft: bool = False, chunk: int = 0
) -> float:
    """SGLang's default --mem-fraction-static at `version` (module doc) for `tp` GPUs (attention-DP ranks `dp` > 1
    mean DP attention), an EAGLE / MTP draft, and the recipe's `chunk` (--chunked-prefill-size; 0: the default)."""
    rel = _release(version)
    if rel is not None and rel < (0, 5, 3):  # PR #7054's table
        base = 9.5 if gpu_mem_mib < 90 * GIB else 12.0 if gpu_mem_mib < 160 * GIB else None
        reserved = 32.0 * GIB if base is None else (base + tp / 2) * GIB
        reserved += (2 * GIB if draft else 0) + (4 * GIB if dp > 1 else 0)
        return round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)
    big = gpu_mem_mib >= 160 * GIB  # PR #10975 (v0.5.3 on; nightly and unknown versions are later)
    chunk = chunk or (16384 if big else 8192)
    if dp > 1:  # SGLang divides --chunked-prefill-size over the DP ranks before this
        chunk //= dp
    graphs = 512 if big or tp >= 4 else 256
    reserved = 512 + 1.5 * max(chunk, 2048) + 2 * graphs + tp / 8 * GIB
    if dp > 1:
        reserved += 3 * graphs * dp + (1.5 * graphs * dp if graphs > 300 else 0)
    if gpu_mem_mib > 60 * GIB:
        reserved = max(reserved, 10 * GIB)
    reserved += 2 * GIB if draft else 0
    return round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)


def sglang_kv_cache(row: pd.Series, gpu_bytes: float, layout: dict[str, Any], draft: bool) -> dict[str, float] | None:
    """The `kv_cache` section of an aggregated SGLang row: `gpu_memory_utilization` = the recipe's or SGLang's
    default mem_fraction_static and `reserve_gb` 0 (module doc); None for other rows and for InferenceX rows whose
    recipe in force is not read (coverage.py's share stays)."""
    if row["backend"] != "sglang" or row["mode"] != "agg":
        return None
    gpus = int(layout.get("tp", 1)) * int(layout.get("attention_dp", 1))
    static = None
    if "gap-analysis" not in str(row["silicon_data_source"]):
        read, static = recipe_static(row, gpus)
        if not read:
            return None
    if static is None:
        version = "" if pd.isna(row.get("backend_version")) else str(row["backend_version"])
        dp = int(layout.get("attention_dp", 1))
        static = default_static(version, gpu_bytes / MIB, gpus, dp, draft)
    return {"gpu_memory_utilization": static, "reserve_gb": 0.0}


__all__ = ["default_static", "measured_date", "recipe_static", "sglang_kv_cache"]
