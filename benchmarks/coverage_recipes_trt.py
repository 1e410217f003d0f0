"""TensorRT-LLM's batch scheduler as the recipes that measured the silicon rows configured it (`scheduler.kind:
trtllm`, policies/trtllm.py). Nothing here is fitted: each value is a recipe's own arithmetic, read at the commit
in force on the row's `measured=` date, or the engine's default.

**What every recipe leaves at TensorRT-LLM's default: no chunked prefill.** `enable_chunked_prefill` is False in
TensorRT-LLM's `LlmArgs`, and no TensorRT-LLM recipe of SemiAnalysisAI/InferenceX sets it before 2026-06-16
(`git log -S enable_chunked_prefill -- benchmarks`: first ae70a427e, qwen3.5-fp4-b200-trt), after every row here
was measured; aiconfigurator's generator writes `enable_chunked_prefill: {{ ... | default(false) }}`
(`extra_engine_args.1.0.0rc3.yaml.j2`, 71a2b03). So a context request runs whole and is scheduled only while it
fits what `max_num_tokens` leaves beside the decoding requests' tokens (policies/trtllm.py).

**`max_num_tokens` / `max_batch_size` by recipe** (InferenceX `benchmarks/*trt*.sh`, later
`benchmarks/single_node/`; CONC = clients, ISL = the row's nominal input length, ceil64(x) = (x + 63) / 64 * 64):
- DeepSeek-R1 without MTP (`dsr1_{fp4,fp8}_b200_trt*.sh`, `dsr1_fp8_h200_trt*.sh`, ec90f3fe7 2025-09-18 on):
  `MAX_NUM_TOKENS=ceil64(CONC + ISL + 64)`, and from 64af5a771 (2026-01-21T23:05:08Z) `max(..., 8192)`; no
  `--max_batch_size` (trtllm-serve's 2048).
- DeepSeek-R1 with MTP (`dsr1_*_trt_mtp*.sh`, bf3456727 2026-01-15 on): `MAX_NUM_TOKENS=ceil64((MTP + 1) *
  MAX_BATCH_SIZE + ISL + 64)`, `--max_batch_size=MAX_BATCH_SIZE`, MAX_BATCH_SIZE = CONC, or per attention-DP rank
  CONC / TP (`dsr1_fp4_b200_trt_mtp.sh`, `dsr1_fp8_h200_trt_mtp.sh`) or CONC / 8 (`dsr1_fp8_b200_trt_mtp.sh`,
  CONC >= 8); MTP = the draft length the row is simulated with (coverage_agg_mtp; the recipes' 3, or 1 with DP).
- gpt-oss-120b (`gptoss_fp4_{b200,h200}_trt*.sh`): `--max_num_tokens 20000`; `--max_batch_size 512` (B200) or
  CONC (H200).
- Llama-3.1-70B (`70b_*_trt_slurm.sh`, 9596d23d7): `--max_num_tokens 16384`, no `--max_batch_size`.
- aiconfigurator's gap-analysis rows (`generator/rule_plugin/trtllm.rule`@a2d8002, the same rule file whose
  `estimated_concurrency` coverage.py's `replicas` reads): `agg_decode max_batch_size = 512 if max_batch_size <
  512 else 2 x max_batch_size`, then `agg max_num_tokens = ceil32(max_batch_size + isl + 1500)` (tokens_per_block
  32), with the row's batch_size as max_batch_size. Whether the gap-analysis campaign deployed through this
  generator is recorded nowhere read (the rows name a Dynamo runtime image and a private pipeline,
  `aic-auto-gap-analysis`, absent from ai-dynamo/aiconfigurator@095f58a5), so `READ_GAP_ANALYSIS` is off by
  default: those rows keep coverage.py's scheduler and KV share; on, they take the generator's values.
- Rows of a recipe not read (DeepSeek-R1 GB200 agg, 2025-11): None, coverage.py's scheduler stays.

**KV share** (`kv_cache_config.free_gpu_memory_fraction`, TensorRT-LLM's default 0.9 of the memory the weights
and the profiling pass leave free; coverage_memory.memory_fraction turns it into servesim's utilisation):
DeepSeek-R1 H200 0.75 (`dsr1_fp8_h200_trt*.sh`, ec90f3fe7 on), fp4 B200 0.8, fp8 B200 0.8 (ec90f3fe7 on) with,
from ec7bafaae (2026-01-29, `dsr1_fp8_b200_trt.sh`), 0.7 at 1k/8k with CONC >= 256 and 0.75 at 8k/1k on TP 4, and
in the fp8 B200 MTP recipe from 5d517074c 0.7 with attention DP; gpt-oss 0.85 (`gptoss_fp4_*_trt*.sh`); the
Llama-3.1-70B recipes set none (0.9); aiconfigurator's template `kv_cache_config.free_gpu_memory_fraction |
default(0.80)` (`extra_engine_args.1.0.0rc3.yaml.j2`) for the gap-analysis rows only with `READ_GAP_ANALYSIS` on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from coverage_agg_mtp import speculative
from coverage_layout import _layout, concurrency
from coverage_recipes import family, in_force

FLOOR_FROM = "2026-01-21T23:05:08Z"  # 64af5a771: MAX_NUM_TOKENS = max(..., 8192), non-MTP DeepSeek recipes
FLOOR = 8192
GPTOSS_TOKENS = 20000  # gptoss_fp4_{b200,h200}_trt*.sh `--max_num_tokens 20000`
LLAMA_TOKENS = 16384  # 70b_*_trt_slurm.sh `--max_num_tokens 16384` (9596d23d7)
DSR1_GPUS = ("b200_sxm", "h200_sxm")  # the single-node DeepSeek-R1 recipes read (B300 / GB200 agg: not read)
# aiconfigurator's generator rule for the gap-analysis rows: off, as nothing records that campaign's deployment (its
# pipeline, `aic-auto-gap-analysis`, is not in ai-dynamo/aiconfigurator@095f58a5: the repo's wheel checks name it as
# repository-only infrastructure; docs/config_adapter.md: "future gap-analysis pipelines"); on: the generator's values.
READ_GAP_ANALYSIS = False
# TensorRT-LLM context holds the InferenceX recipes switch on (`serving_engine` terms, policies/context_hold.py).
# Attention-DP balance: the DeepSeek-R1 TensorRT-LLM recipes append `attention_dp_config: {batching_wait_iters: 0,
# enable_balance: true, timeout_iters: 60}` when DP_ATTENTION is true (dsr1_fp8_*_trt.sh, dsr1_fp4_*_trt.sh);
# the gpt-oss-120b recipes append `attention_dp_config: {enable_balance: true}` (TensorRT-LLM's defaults then:
# timeout 50, batching wait 10). Batch waiting: dsr1_fp8_b200_trt.sh (non-MTP; the B300 recipe copies it) sets
# DELAY_BATCHING at isl = osl = 1024 and CONC >= 64: `batch_wait_timeout_iters: 40, batch_wait_max_tokens_ratio:
# 0.8` (max_num_tokens max(8192, CONC + ISL + 64 rounded to 64) = 8192 there, the scheduler's token budget).
ADP_BALANCE: dict[str, dict[str, Any]] = {
    "deepseek": {"attention_dp_balance": True, "attention_dp_batching_wait_iters": 0, "attention_dp_timeout_iters": 60},
    "gpt-oss": {"attention_dp_balance": True},
}
BATCH_WAIT = {"batch_wait_timeout_iters": 40, "batch_wait_max_tokens_ratio": 0.8}
# TensorRT-LLM recipes whose KV cache is not FP8 although the weights are quantised: every version of the gpt-oss-120b
# H200 recipe (`gptoss_fp4_h200_trt_slurm.sh` 551d81e95 2025-09-15 ... `single_node/gptoss_fp4_h200_trt.sh` 7e1dcdcc1
# 2026-04-13) writes `kv_cache_config: {dtype: auto}` (`git log -S'dtype: fp8'` finds none), and `auto` takes the
# checkpoint's KV dtype: openai/gpt-oss-120b's config.json quantises the MoE experts to MXFP4 and declares no KV
# quantisation, so the cache is BF16. The B200 recipe writes `dtype: fp8` in every version (FP8, coverage.py's rule).
KV_AUTO = {("gptoss", "h200_sxm")}  # (recipe family, system)


def _ceil(x: int, unit: int) -> int:
    return (x + unit - 1) // unit * unit


MTP_BATCH_FROM = {  # (precision, gpu) -> (commit time, divisor, below which MAX_BATCH_SIZE = CONC) with DP
    ("fp8", "b200_sxm"): ("2026-02-05T19:55:01Z", 8, 8),  # 5d517074c: CONC < 8 ? CONC : CONC / 8
    ("fp4", "b200_sxm"): ("2026-02-06T17:21:54Z", 4, 4),  # 0aae52d4c: CONC < 4 ? CONC : CONC / 4
}


def _mtp_batch(row: pd.Series, clients: int, tp: int, dp: bool) -> int:
    """MAX_BATCH_SIZE of the DeepSeek-R1 MTP recipes: CONC, or with attention DP CONC / TP (bf3456727), from
    5d517074c (fp8 B200) / 0aae52d4c (fp4 B200) CONC / 8 or CONC / 4 (CONC itself below that)."""
    if not dp:
        return clients
    version = MTP_BATCH_FROM.get((str(row["precision"]), str(row["system"])))
    if version is not None and in_force(row, version[0]):
        return clients if clients < version[2] else clients // version[1]
    return max(1, clients // max(1, tp))


FP8_B200_KV_FROM = "2026-01-29T15:27:25Z"  # ec7bafaae (dsr1_fp8_b200_trt.sh: KV_CACHE_FREE_MEM_FRACTION by case)


def kv_free_fraction(row: pd.Series, clients: int, layout: dict[str, Any]) -> float | None:
    """`free_gpu_memory_fraction` of a TensorRT-LLM agg row's recipe (module doc), None where none is read."""
    if row["backend"] != "trtllm" or row["mode"] != "agg":
        return None
    if "gap-analysis" in str(row["silicon_data_source"]):
        return 0.80 if READ_GAP_ANALYSIS else None
    fam, gpu, prec = family(str(row["model_path"])), str(row["system"]), str(row["precision"])
    if fam == "gptoss" and gpu in DSR1_GPUS:
        return 0.85
    if fam != "dsr1" or gpu not in DSR1_GPUS:
        return None
    if gpu == "h200_sxm":
        return 0.75
    if prec == "fp8" and in_force(row, FP8_B200_KV_FROM):
        isl, osl, dp = int(row["isl"]), int(row["osl"]), int(layout.get("attention_dp", 1)) > 1
        if speculative(row) is not None:
            return 0.7 if dp and in_force(row, MTP_BATCH_FROM[("fp8", "b200_sxm")][0]) else 0.8
        if (isl, osl) == (1024, 8192) and clients >= 256:
            return 0.7
        if (isl, osl) == (8192, 1024) and int(layout.get("tp", 1)) * int(layout.get("attention_dp", 1)) == 4:
            return 0.75
    return 0.8


def trtllm_scheduler(row: pd.Series, clients: int, layout: dict[str, Any]) -> dict[str, Any] | None:
    """The `trtllm` scheduler section of a TensorRT-LLM agg row's recipe (module doc), None where none was read."""
    if row["backend"] != "trtllm" or row["mode"] != "agg":
        return None
    isl = int(row["isl"])
    if "gap-analysis" in str(row["silicon_data_source"]):
        if not READ_GAP_ANALYSIS:
            return None
        bs = int(row["batch_size"])
        mbs = 512 if bs < 512 else 2 * bs
        return {"kind": "trtllm", "max_batch_size": mbs, "max_num_tokens": _ceil(mbs + isl + 1500, 32)}
    fam, gpu = family(str(row["model_path"])), str(row["system"])
    if fam == "llama70b":
        return {"kind": "trtllm", "max_num_tokens": LLAMA_TOKENS}
    if fam == "gptoss" and gpu in DSR1_GPUS:
        mbs = 512 if gpu == "b200_sxm" else clients  # B200 `--max_batch_size 512`, H200 `--max_batch_size $CONC`
        return {"kind": "trtllm", "max_num_tokens": GPTOSS_TOKENS, "max_batch_size": mbs}
    if fam != "dsr1" or gpu not in DSR1_GPUS:
        return None
    dp = int(layout.get("attention_dp", 1)) > 1
    if (spec := speculative(row)) is not None:
        k = int(spec["num_tokens"])  # the draft length the row is simulated with
        mbs = _mtp_batch(row, clients, int(layout.get("tp", 1)), dp)
        return {"kind": "trtllm", "max_batch_size": mbs, "max_num_tokens": _ceil((k + 1) * mbs + isl + 64, 64)}
    tokens = _ceil(clients + isl + 64, 64)
    if in_force(row, FLOOR_FROM):
        tokens = max(tokens, FLOOR)
    return {"kind": "trtllm", "max_num_tokens": tokens}


def trtllm_holds(row: pd.Series) -> dict[str, Any]:
    """The context-hold terms of the row's InferenceX TensorRT-LLM recipe (`ADP_BALANCE`, `BATCH_WAIT`), read
    from the layout the row is simulated with: `unrecorded_dp` rows run attention DP (balance, never batch
    waiting, which TensorRT-LLM skips with attention DP) though the row lists none."""
    name = str(row["model_path"]).lower()
    if _layout(row).get("attention_dp", 1) > 1:
        return next((v for k, v in ADP_BALANCE.items() if k in name), {})
    blackwell = str(row["system"]) in ("b200_sxm", "b300_sxm")
    fp8_1k1k = row["moe_quant_mode"] in ("fp8", "fp8_block") and row["isl"] == row["osl"] == 1024
    if "deepseek-r1" in name and blackwell and fp8_1k1k and concurrency(row) >= 64:
        return dict(BATCH_WAIT)
    return {}


def kv_dtype(row: pd.Series) -> str | None:
    """The KV dtype a TensorRT-LLM InferenceX recipe sets where it is not coverage.py's FP8 (`KV_AUTO`), else None."""
    if row["backend"] != "trtllm" or "gap-analysis" in str(row["silicon_data_source"]):
        return None
    return "bf16" if (family(str(row["model_path"])), str(row["system"])) in KV_AUTO else None
