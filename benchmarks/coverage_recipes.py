"""Serving knobs of the InferenceX recipes that measured the silicon rows, as servesim terms.

Read from SemiAnalysisAI/InferenceX (`benchmarks/*.sh`, later `benchmarks/single_node/*.sh`) at the commit in
force on each row's `measured=` date; only knobs that move a request's wait are carried, each with the file and
commit it was read from. Nothing here is fitted: a knob applies where the recipe sets it and nowhere else.

- **SGLang `--scheduler-recv-interval`** (`serving_engine.scheduler_recv_interval`, policies/context_hold.py
  `RecvSkipper`): `SCHEDULER_RECV_INTERVAL=30` at CONC >= 16 and 10 below, in the DeepSeek-R1 recipes
  `dsr1_fp4_b200*.sh` (e06929c70 2025-11-02, 7daaa8bb3, 12ba0ae07 2026-03-25), `dsr1_fp4_b300.sh` (dd9c285b3),
  `dsr1_fp8_b200*.sh` (189ae51cc 2025-11-18: any TP; 12ba0ae07: TP 8, TP 4 fixed 10), `dsr1_fp8_b300.sh`
  (dd9c285b3, as fp8 B200) and the Qwen3.5-397B B200/B300 recipes `qwen3.5_{bf16,fp4,fp8}_b200.sh`,
  `qwen3.5_{bf16,fp4}_b300.sh` (67f512326 ... e8924a6a4); `qwen3.5_fp8_b300.sh` passes a fixed 10 (dd9c285b3).
  Not set (SGLang's default 1): `dsr1_fp8_h200.sh`, `qwen3.5_fp8_h200.sh`, the GLM-5 recipes.
- **TensorRT-LLM batch waiting** (`batch_wait_timeout_iters`, `batch_wait_max_tokens_ratio`): the Llama-3.1-70B
  recipes `70b_{fp4,fp8}_b200_trt_slurm.sh`, `70b_fp8_h200_trt_slurm.sh` (9596d23d7, the rows' 2025-10-29
  runs) write `batch_wait_max_tokens_ratio: 0.9, batch_wait_timeout_iters: 20` when ISL = OSL = 1024 and TP < 8,
  and launch `trtllm-serve --max_num_tokens 16384` (the token budget the ratio is of). The DeepSeek-R1 holds
  (`dsr1_fp8_b200_trt.sh`, attention-DP balance) are coverage_recipes_trt.py's `ADP_BALANCE`, `BATCH_WAIT`.

- **Token budgets**: SGLang's `--chunked-prefill-size` (the instance's prefill budget; SGLang divides it over
  DP ranks itself): 16384 in `dsr1_fp4_b200*.sh` / `dsr1_fp4_b300.sh`, 32768 in `dsr1_fp8_b200*.sh` /
  `dsr1_fp8_b300.sh` at TP 8 (8192 at TP 4), `dsr1_fp8_h200.sh`, `glm5_fp8_b200.sh` and the Qwen3.5 B200 and
  bf16/fp4 B300 recipes (`CHUNKED_PREFILL_SIZE=32768`), 16384 in `qwen3.5_fp8_b300.sh` and `qwen3.5_fp8_h200.sh`
  (not set in `glm5_fp8_h200.sh`: coverage.py's 8192 stays). vLLM's `--max-num-batched-tokens $((ISL * 2))`:
  `minimaxm2.5_fp8_b200.sh` from bddbf4031 (rows measured from 2026-04-03), `minimaxm2.5_fp4_b200.sh`
  (79bd988e9, 2026-04-08), `minimaxm2.5_{fp4,fp8}_b300.sh` (22d0f12f7 / 340d7854c, 2026-04-17),
  `kimik2.5_fp4_b200.sh` from 6c3acebfa (2026-04-20); earlier and elsewhere vLLM's default stays.
- **vLLM's CUDA-graph capture size** (`serving_engine.cuda_graph_max_batch`, the largest step that replays piecewise
  graphs): the same five recipe versions add `--max-cudagraph-capture-size 2048` (bddbf4031 2026-04-03
  `minimaxm2.5_fp8_b200.sh`, 79bd988e9 2026-04-08 `minimaxm2.5_fp4_b200.sh`, 22d0f12f7 / 340d7854c 2026-04-17
  `minimaxm2.5_{fp4,fp8}_b300.sh`, 6c3acebfa 2026-04-20 `kimik2.5_fp4_b200.sh`), so their 1k prompts replay graphs
  and their 8k prompts do not; elsewhere vLLM's default (at most 512) stays and every 1k prompt step is uncaptured
  (it pays `eager_host_per_moe_layer_s`, COVERAGE.md "TTFT: host time of uncaptured steps").

- **KV-cache dtype** (`quantization.kv_cache`, read by coverage.quantization): the recipes that pass
  `--kv-cache-dtype fp8` (vLLM) or `--kv-cache-dtype fp8_e4m3` (SGLang) store KV in FP8, which halves KV bytes
  per token (the KV room a closed loop needs and the KV each decode step reads). First commit passing it, per
  recipe (`git log --reverse -S kv-cache-dtype`; every later commit up to the rows' last date, 2026-04-22, keeps
  it): SGLang `dsr1_fp8_b200*.sh` 425f74d51 (2025-09-12), `dsr1_fp4_b200*.sh` b8857e738 (2025-09-19),
  `dsr1_{fp4,fp8}_b300.sh` 9ebeafb4e / 5b302f147 (2026-04-17), `qwen3.5_fp8_b200.sh` efd49e50b (2026-03-03),
  `qwen3.5_fp8_h200.sh` f65d6b4b1 (2026-03-04), `glm5_fp8_b200.sh` 13930ca61 (2026-03-20), `qwen3.5_fp4_b200.sh`
  48d35c480 (2026-04-08), `qwen3.5_{fp4,fp8}_b300.sh` 8acbd08b7 / c0f62a2ef (2026-04-17); vLLM: the recipe
  versions of `VLLM_TWICE_ISL_FROM` (the same commits add `--kv-cache-dtype fp8`). Not passed (the engine's
  `auto`, the model dtype): `dsr1_fp8_h200.sh`, `glm5_fp8_h200.sh`, the Qwen3.5 bf16 recipes,
  `minimaxm2.5_fp8_{h100,h200}.sh`, `kimik2.5_int4_*.sh`, `kimik2.5_fp4_b300.sh` and the earlier versions.

- **SGLang disaggregated DeepSeek-R1 fp8 on GB200 / GB300 / B200** (the srt-slurm recipes InferenceX's
  `dsr1-fp8-{gb200,b200}-dynamo-sglang` items name, `CONFIG_FILE=recipes/...`; ishandhanani/srt-slurm f64d2b9 /
  ab58651 / 16ce9a9): every DEP prefill worker (tp 8, dp 8, DP attention) of `gb200-fp8/8k1k/mid-curve.yaml`,
  `gb200-fp8/8k1k/max_tpt.yaml`, `gb200-fp8/1k1k/max-tpt.yaml` and `gb300-fp8/8k1k/stp/mid.yaml` passes
  `chunked-prefill-size: 131072` (SGLang divides it over the 8 DP ranks: 16,384 each, so the worker's step holds up
  to 131,072 prompt tokens, not coverage.py's 8,192); the B200 8k/1k prefill workers (`b200-fp8/8k1k_mtp_maxtpt_1.yaml`,
  the stored sibling of the `8k1k_stp_maxtpt_N.yaml` files InferenceX's 2026-03-25 config names, whose STP versions
  are not stored; its prefill section is the one `b200-fp8/8k1k.yaml` gives every variant) pass
  `chunked-prefill-size: 65536` with `max-prefill-tokens: 8192` per rank: 65,536 per step. Every one of these files,
  and `gb200-fp8/8k1k/low-latency.yaml`, passes `kv-cache-dtype: fp8_e4m3` to prefill and decode workers. Applied
  (`SGLANG_DISAGG_CHUNK`, by isl: only the recipes read) to the prefill pools with attention DP
  (`disagg_prefill_budget`) and to the KV of the same rows (`kv_cache_dtype`). Not applied: fp4 recipes, the rows of
  recipes not read (GB300 1k/1k, B200 1k/1k), TP-only prefill budgets (`gb200-fp8/8k1k/low-latency.yaml`: 24576).

- **SGLang `--disable-radix-cache`** (`serving_engine.admission_reserve: sglang_ignore_eos`, policies/reserve.py):
  with the radix cache off, SGLang admits the client's `--ignore-eos` requests by `add_one_req_ignore_eos` (every
  output counted in full) instead of the decaying new_token_ratio. Read per row date (the recipe in force on the
  `measured=` date, `git show` of the last commit before it): passed by `dsr1_fp4_b200_docker.sh` (e06929c70,
  2025-11-02; 58349bd4d), `dsr1_fp8_b200_docker.sh` (189ae51cc 2025-11-18, a71662767), `single_node/dsr1_{fp4,fp8}
  _b200.sh` and `dsr1_fp8_h200.sh` (38b80a859, 2026-03-21), `dsr1_fp4_b300.sh` (9ebeafb4e) / `dsr1_fp8_b300.sh`
  (5b302f147, 2026-04-17), `glm5_fp8_b200.sh` (f54b09c3b 2026-03-20), `qwen3.5_bf16_b200.sh` (9dc87a68c 2026-02-20,
  cfcaa84a1), `qwen3.5_fp8_b200.sh` (efd49e50b 2026-03-03, c8ac68f85, c23031b7e), `qwen3.5_fp8_h200.sh` (f65d6b4b1
  2026-03-04, cfcaa84a1), `qwen3.5_fp4_b200.sh` (48d35c480 2026-04-08), `qwen3.5_{bf16,fp4,fp8}_b300.sh` (32274d6c1 /
  8acbd08b7 / c0f62a2ef, 2026-04-17). Not passed: `glm5_fp8_h200.sh` (ebb48d4bc, 2026-03-18: the radix cache stays
  on, the ratio reservation applies). Not read (no recipe of that name at the date): GLM-5 fp4 B200 (2026-03-29),
  GLM-5 fp8 B300 and Qwen3.5 fp8 B300 (2026-04-03), DeepSeek-R1 fp8 GB200 agg (2025-11): the preset's ratio stays.

Found by testing hypotheses against the rows before modelling (COVERAGE.md, "Where the TTFT error comes from"):
the Llama-3.1-70B TensorRT-LLM rows carry ~20 decode iterations of unexplained TTFT exactly on 1k/1k at TP < 8
and 1-4 elsewhere, which is the recipe's batch waiting; SGLang's excess jumps between 8 and 16 clients where the
receive interval goes from 10 to 30.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from coverage_layout import measured_at, measured_date, recorded_layout  # re-exported: the recipe readers' dates

# The recipes' streaming (`serving_engine.stream_interval`, `stream_first_token`): InferenceX launches SGLang
# with `--stream-interval 10` (benchmarks/dsr1_*_slurm.sh and the other SGLang recipes) and TensorRT-LLM with
# `stream_interval: 10`; vLLM runs with its default of 1. TensorRT-LLM returns the context (first) token at
# once (PR #5836, PyExecutor answers at py_decoding_iter == 1). SGLang's first token: held for the 10th in the
# releases that streamed at `len(req.output_ids) % stream_interval == 0`, sent at once in the current scheduler
# output processor (`% stream_interval == 1`); which release the rows ran is not recorded — `--sglang-first`.
# The rows refute the held reading: InferenceX's Qwen3.5 / DeepSeek-R1 fp8 / GLM-5 SGLang recipes stream every
# 30 or 50 tokens (qwen3.5_fp8_h200.sh `--stream-interval 50`, dsr1_fp8_b200.sh and qwen3.5_*_b200.sh 30), so a
# held first token would add >= 29 / 49 decode iterations to their TTFT, yet their whole unexplained TTFT at
# <= 16 clients is a median 11-23 iterations (COVERAGE.md): the default is `at-once`.
STREAM = {"sglang": (10, False), "trtllm": (10, True)}

LLAMA_TRT_TOKENS = 16384  # `trtllm-serve ... --max_num_tokens 16384` in 70b_*_trt_slurm.sh (9596d23d7)
LLAMA_TRT_WAIT = {"batch_wait_timeout_iters": 20, "batch_wait_max_tokens_ratio": 0.9}
RECV_LOW, RECV_HIGH, RECV_FROM = 10, 30, 16  # SCHEDULER_RECV_INTERVAL: 30 at CONC >= 16, else 10


def family(model: str) -> str:
    """The recipe family of a model path: dsr1 (DeepSeek-R1 and the V3 rows, which InferenceX serves as dsr1),
    qwen3.5, glm5, gptoss, llama70b, or the lower-cased path when no recipe family applies."""
    m = model.lower()
    for key, fam in (("deepseek", "dsr1"), ("qwen3.5", "qwen3.5"), ("glm-5", "glm5"), ("gpt-oss", "gptoss")):
        if key in m:
            return fam
    return "llama70b" if "llama-3.1-70b" in m else m


def in_force(row: pd.Series, commit_utc: str) -> bool:
    """Whether the row ran a recipe version committed at `commit_utc` (ISO, UTC, e.g. "2026-01-21T23:05:08Z") or a
    later one: by the row's timestamp where it has one (a run at the commit's very second counts). The db-dump rows
    carry a date only (`...T00:00:00.000Z`): a run on the commit's own day counts as after it (InferenceX sweeps run
    on the merged recipe; timestamped rows of the same campaigns run seconds after the commit, e.g. 4 s after
    5d517074c / ec7bafaae). A row without a date ran before every commit."""
    at = measured_at(row)
    if not at:
        return False
    if at.endswith("T00:00:00.000Z"):
        return at[:10] >= commit_utc[:10]
    return at >= commit_utc


def _family(row: pd.Series) -> str:
    return family(str(row["model_path"]))


def recv_interval(row: pd.Series, clients: int) -> int:
    """SGLang's `--scheduler-recv-interval` of the row's recipe (1: not set)."""
    gpu, prec, fam = str(row["system"]), str(row["precision"]), _family(row)
    if row["backend"] != "sglang" or gpu not in ("b200_sxm", "b300_sxm"):
        return 1
    if fam == "qwen3.5" and gpu == "b300_sxm" and prec == "fp8":
        return RECV_LOW  # qwen3.5_fp8_b300.sh: `--scheduler-recv-interval 10`
    tp, dp, _, _ = recorded_layout(row)
    if fam == "dsr1" and prec == "fp8" and tp * dp == 4:
        return RECV_LOW  # dsr1_fp8_b200.sh / dsr1_fp8_b300.sh, TP 4 branch
    if fam in ("dsr1", "qwen3.5"):
        return RECV_HIGH if clients >= RECV_FROM else RECV_LOW
    return 1


SGLANG_CHUNK = {  # (family, precision, gpu) -> --chunked-prefill-size (dsr1 fp8 at TP 4: 8192, see below)
    ("dsr1", "fp4", "b200_sxm"): 16384,
    ("dsr1", "fp4", "b300_sxm"): 16384,
    ("dsr1", "fp8", "b200_sxm"): 32768,
    ("dsr1", "fp8", "b300_sxm"): 32768,
    ("dsr1", "fp8", "h200_sxm"): 32768,
    ("qwen3.5", "bf16", "b200_sxm"): 32768,
    ("qwen3.5", "fp4", "b200_sxm"): 32768,
    ("qwen3.5", "fp8", "b200_sxm"): 32768,
    ("qwen3.5", "bf16", "b300_sxm"): 32768,
    ("qwen3.5", "fp4", "b300_sxm"): 32768,
    ("qwen3.5", "fp8", "b300_sxm"): 16384,
    ("qwen3.5", "fp8", "h200_sxm"): 16384,
    ("glm5", "fp8", "b200_sxm"): 32768,
}
VLLM_CAPTURE = 2048  # --max-cudagraph-capture-size of the recipe versions in VLLM_TWICE_ISL_FROM (module doc)
VLLM_TWICE_ISL_FROM = {  # (model, precision, gpu) -> first measurement date with --max-num-batched-tokens 2 x ISL
    ("MiniMaxAI/MiniMax-M2.5", "fp8", "b200_sxm"): "2026-04-03",
    ("MiniMaxAI/MiniMax-M2.5", "fp4", "b200_sxm"): "2026-04-08",
    ("MiniMaxAI/MiniMax-M2.5", "fp4", "b300_sxm"): "2026-04-17",
    ("MiniMaxAI/MiniMax-M2.5", "fp8", "b300_sxm"): "2026-04-17",
    ("moonshotai/Kimi-K2.5", "fp4", "b200_sxm"): "2026-04-20",
}


KV_FP8_FROM = {  # (backend, recipe family, precision, gpu) -> first measurement date with an FP8 KV cache (doc)
    ("sglang", "dsr1", "fp8", "b200_sxm"): "2025-09-12",
    ("sglang", "dsr1", "fp4", "b200_sxm"): "2025-09-19",
    ("sglang", "dsr1", "fp4", "b300_sxm"): "2026-04-17",
    ("sglang", "dsr1", "fp8", "b300_sxm"): "2026-04-17",
    ("sglang", "qwen3.5", "fp8", "b200_sxm"): "2026-03-03",
    ("sglang", "qwen3.5", "fp8", "h200_sxm"): "2026-03-04",
    ("sglang", "glm5", "fp8", "b200_sxm"): "2026-03-20",
    ("sglang", "qwen3.5", "fp4", "b200_sxm"): "2026-04-08",
    ("sglang", "qwen3.5", "fp4", "b300_sxm"): "2026-04-17",
    ("sglang", "qwen3.5", "fp8", "b300_sxm"): "2026-04-17",
    **{("vllm", model.lower(), prec, gpu): d for (model, prec, gpu), d in VLLM_TWICE_ISL_FROM.items()},
}


SGLANG_NO_RADIX_FROM = {  # (family, precision, gpu) -> first row date read with --disable-radix-cache (doc)
    ("dsr1", "fp4", "b200_sxm"): "2025-11-02",
    ("dsr1", "fp8", "b200_sxm"): "2025-11-18",
    ("dsr1", "fp8", "h200_sxm"): "2026-03-25",
    ("dsr1", "fp4", "b300_sxm"): "2026-04-17",
    ("dsr1", "fp8", "b300_sxm"): "2026-04-17",
    ("glm5", "fp8", "b200_sxm"): "2026-03-20",
    ("qwen3.5", "bf16", "b200_sxm"): "2026-02-20",
    ("qwen3.5", "fp8", "b200_sxm"): "2026-03-03",
    ("qwen3.5", "fp8", "h200_sxm"): "2026-03-04",
    ("qwen3.5", "fp4", "b200_sxm"): "2026-04-08",
    ("qwen3.5", "bf16", "b300_sxm"): "2026-04-17",
    ("qwen3.5", "fp4", "b300_sxm"): "2026-04-17",
    ("qwen3.5", "fp8", "b300_sxm"): "2026-04-17",
}


def sglang_radix_disabled(row: pd.Series) -> bool:
    """True where the row's InferenceX SGLang agg recipe passes `--disable-radix-cache` (`SGLANG_NO_RADIX_FROM`)."""
    if row["backend"] != "sglang" or row["mode"] != "agg" or "gap-analysis" in str(row["silicon_data_source"]):
        return False
    start = SGLANG_NO_RADIX_FROM.get((_family(row), str(row["precision"]), str(row["system"])))
    return bool(start) and measured_date(row) >= str(start)


SGLANG_DISAGG_CHUNK = {  # (family, precision, system, isl) -> DEP prefill worker's tokens per step (doc; srt-slurm)
    ("dsr1", "fp8", "gb200", 1024): 131072,  # gb200-fp8/1k1k/max-tpt.yaml
    ("dsr1", "fp8", "gb200", 8192): 131072,  # gb200-fp8/8k1k/mid-curve.yaml, max_tpt.yaml
    ("dsr1", "fp8", "gb300", 8192): 131072,  # gb300-fp8/8k1k/stp/mid.yaml
    ("dsr1", "fp8", "b200_sxm", 8192): 65536,  # b200-fp8/8k1k_mtp_maxtpt_1.yaml: 8 ranks x max-prefill-tokens 8192
}


def _sglang_disagg_recipe(row: pd.Series) -> int | None:
    """The prefill chunk of the row's srt-slurm SGLang disagg recipe (`SGLANG_DISAGG_CHUNK`), None if not read."""
    if row["mode"] != "disagg" or row["backend"] != "sglang" or "gap-analysis" in str(row["silicon_data_source"]):
        return None
    return SGLANG_DISAGG_CHUNK.get((_family(row), str(row["precision"]), str(row["system"]), int(row["isl"])))


def disagg_prefill_budget(row: pd.Series, pool: dict[str, Any]) -> int | None:
    """The prefill worker's token budget of the row's srt-slurm recipe (module doc) for a prefill pool with
    attention DP, else None (coverage.py's budget stays)."""
    return _sglang_disagg_recipe(row) if pool.get("attention_dp", 1) > 1 else None


def kv_cache_dtype(row: pd.Series) -> str | None:
    """ "fp8" where the row's InferenceX agg recipe passes `--kv-cache-dtype fp8` / `fp8_e4m3` (`KV_FP8_FROM`) or
    its srt-slurm disagg recipe `kv-cache-dtype: fp8_e4m3`, else None (the engine's default applies). Gap-analysis
    rows and the other disaggregated rows: None (no recipe read)."""
    if _sglang_disagg_recipe(row):
        return "fp8"
    if row["mode"] != "agg" or "gap-analysis" in str(row["silicon_data_source"]):
        return None
    start = KV_FP8_FROM.get((str(row["backend"]), _family(row), str(row["precision"]), str(row["system"])))
    return "fp8" if start and measured_date(row) >= start else None


def token_budget(row: pd.Series) -> int | None:
    """The recipe's token budget (SGLang `--chunked-prefill-size`, vLLM `--max-num-batched-tokens`), None if unset."""
    gpu, prec, fam = str(row["system"]), str(row["precision"]), _family(row)
    if row["backend"] == "sglang":
        tp, dp, _, _ = recorded_layout(row)
        if fam == "dsr1" and prec == "fp8" and gpu != "h200_sxm" and tp * dp == 4:
            return 8192
        return SGLANG_CHUNK.get((fam, prec, gpu))
    if row["backend"] == "vllm":
        start = VLLM_TWICE_ISL_FROM.get((str(row["model_path"]), prec, gpu))
        if start and measured_date(row) >= start:
            return 2 * int(row["isl"])
    return None


def recipe_terms(row: pd.Series, clients: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(serving_engine terms, scheduler overrides) the row's InferenceX recipe sets (see module doc)."""
    engine: dict[str, Any] = {}
    sched: dict[str, Any] = {}
    if (k := recv_interval(row, clients)) > 1:
        engine["scheduler_recv_interval"] = k
    if sglang_radix_disabled(row):
        engine["admission_reserve"] = "sglang_ignore_eos"  # the ignore_eos admission path (module doc)
    if (budget := token_budget(row)) is not None:
        sched["token_budget"] = budget
    if row["backend"] == "vllm" and token_budget(row) is not None:
        engine["cuda_graph_max_batch"] = VLLM_CAPTURE  # set by the same recipe versions as the 2 x ISL budget
    if _family(row) == "llama70b" and row["backend"] == "trtllm":
        sched["token_budget"] = LLAMA_TRT_TOKENS
        if row["isl"] == row["osl"] == 1024 and recorded_layout(row)[0] < 8:
            engine |= LLAMA_TRT_WAIT
    return engine, sched
