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
  (`dsr1_fp8_b200_trt.sh`, attention-DP balance) stay in coverage.py (`ADP_BALANCE`, `BATCH_WAIT`).

Found by testing hypotheses against the rows before modelling (COVERAGE.md, "Where the TTFT error comes from"):
the Llama-3.1-70B TensorRT-LLM rows carry ~20 decode iterations of unexplained TTFT exactly on 1k/1k at TP < 8
and 1-4 elsewhere, which is the recipe's batch waiting; SGLang's excess jumps between 8 and 16 clients where the
receive interval goes from 10 to 30.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from coverage_layout import recorded_layout

LLAMA_TRT_TOKENS = 16384  # `trtllm-serve ... --max_num_tokens 16384` in 70b_*_trt_slurm.sh (9596d23d7)
LLAMA_TRT_WAIT = {"batch_wait_timeout_iters": 20, "batch_wait_max_tokens_ratio": 0.9}
RECV_LOW, RECV_HIGH, RECV_FROM = 10, 30, 16  # SCHEDULER_RECV_INTERVAL: 30 at CONC >= 16, else 10


def _family(row: pd.Series) -> str:
    """The recipe family of the row's model: dsr1 (DeepSeek-R1 and the V3 rows, which InferenceX serves as dsr1),
    qwen3.5, llama70b, or the model path when no knob below applies."""
    m = str(row["model_path"])
    if "DeepSeek-R1" in m or "DeepSeek-V3" in m:
        return "dsr1"
    if "Qwen3.5" in m:
        return "qwen3.5"
    if "Llama-3.1-70B" in m:
        return "llama70b"
    return m


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


def recipe_terms(row: pd.Series, clients: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(serving_engine terms, scheduler overrides) the row's InferenceX recipe sets (see module doc)."""
    engine: dict[str, Any] = {}
    sched: dict[str, Any] = {}
    if (k := recv_interval(row, clients)) > 1:
        engine["scheduler_recv_interval"] = k
    if _family(row) == "llama70b" and row["backend"] == "trtllm":
        sched["token_budget"] = LLAMA_TRT_TOKENS
        if row["isl"] == row["osl"] == 1024 and recorded_layout(row)[0] < 8:
            engine |= LLAMA_TRT_WAIT
    return engine, sched
