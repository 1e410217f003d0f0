"""How a silicon row's layout and clients are read (benchmarks/coverage.py): the listed tp / attention DP /
moe_tp / ep with one recording slip read back from the ids, attention-DP ranks a MoE row does not list,
replicas behind one endpoint, and the run's client count. See COVERAGE.md, "How a row becomes a scenario"."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from hwprofiles import catalog


def _int(v: Any, default: int = 1) -> int:
    return default if v is None or (isinstance(v, float) and math.isnan(v)) or int(v) <= 0 else int(v)


NODE_GPUS = {"h100_sxm": 8, "h200_sxm": 8, "b200_sxm": 8, "b300_sxm": 8}  # single-node HGX systems


# InferenceX vLLM agg search-space items with `dp-attn: true` (.github/configs/nvidia-master.yaml; the first
# commit listing each, its time in UTC): (precision, system, isl, tp, lowest conc, highest conc, listed from). The
# recipes (`minimaxm2.5_fp4_b200.sh` etc. from 2026-04-08) launch them `--tensor-parallel-size=1
# --data-parallel-size=$TP --enable-expert-parallel`; every other item `--tensor-parallel-size=$TP
# [--enable-expert-parallel]`. Later widenings of the ranges (2026-04-30 on) postdate the file's runs.
VLLM_DP_ATTN_ITEMS = (
    ("fp4", "b200_sxm", 1024, 2, 512, 512, "2026-04-08T18:55:08"),  # 79bd988e9
    ("fp4", "b300_sxm", 1024, 2, 512, 512, "2026-04-17T12:43:53"),  # 22d0f12f7
    ("fp8", "b300_sxm", 1024, 2, 1024, 1024, "2026-04-21T22:41:34"),  # 0c2467c15
    ("fp4", "b300_sxm", 8192, 2, 512, 512, "2026-04-21T22:46:19"),  # 633fd2377
)


def vllm_dp_attention(row: pd.Series, t: int) -> bool:
    """Whether a vLLM MiniMax agg row of T GPUs ran one of the `dp-attn: true` items in force when it was measured."""
    m = re.search(r"measured=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", str(row["silicon_data_source"]))
    if not m:
        return False
    key, conc = (str(row["precision"]), str(row["system"]), int(row["isl"]), t), concurrency(row)
    return any(key == item[:4] and item[4] <= conc <= item[5] and m.group(1) >= item[6] for item in VLLM_DP_ATTN_ITEMS)


def recorded_layout(row: pd.Series, prefix: str = "") -> tuple[int, int, int, int]:
    """(tp, attention_dp, moe_tp, ep) as the row lists them, except one recording slip: agg rows on an
    8-GPU HGX node whose tp x attention_dp (= moe_tp x ep) is the square of the GPU count. Their ids name
    the real layout (`…_tp8_ep8_…` is stored as tp 64, moe_tp 8, ep 8; `…_tp4_ep4_…` as tp 16 or
    attention_dp 16, moe_tp 4, ep 4; vLLM's `…_tp4_ep4_…` as tp 4, attention_dp 4, ep 16): T GPUs with
    EP E inside them, as TensorRT-LLM's `--tp_size=8 --ep_size=8` runs on one 8-GPU node. They are read
    back as T GPUs: attention TP (or attention DP where only DP was listed) T, ep E, moe_tp T / E.
    vLLM agg rows list every InferenceX `{tp: T, ep: T}` item as tp T, attention_dp T, moe_tp 1, ep T² at any T
    (97 rows, all vLLM MiniMax-M2.5: 36 at T = 2, 4 GPUs listed), where the recipes launch T GPUs
    (`vllm serve --tensor-parallel-size=$TP --enable-expert-parallel`, minimaxm2.5_fp8_{b200,h100}.sh at the runs'
    dates; the ids say `tp2_ep2`): read back as tp T, ep T, or attention DP T where the item in force was
    `dp-attn: true` (`vllm_dp_attention`)."""
    tp, dp = _int(row[f"{prefix}tp_size"]), _int(row[f"{prefix}attention_dp_size"])
    ep = _int(row[f"{prefix}moe_ep_size"])
    moe_tp = _int(row[f"{prefix}moe_tp_size"], (tp * dp) // ep)
    gpus = tp * dp
    if not prefix and row["backend"] == "vllm" and row["mode"] == "agg" and tp == dp > 1 and moe_tp == 1 and ep == gpus:
        return (1, tp, 1, tp) if vllm_dp_attention(row, tp) else (tp, 1, 1, tp)
    node = NODE_GPUS.get(str(row["system"]))
    t = math.isqrt(gpus)
    if row["mode"] == "agg" and node and gpus > node and t * t == gpus and moe_tp * ep == gpus:
        e = math.isqrt(moe_tp * ep)
        tp, dp = (1, t) if tp == 1 else (t, 1)
        return tp, dp, t // e, e
    return tp, dp, moe_tp, ep


def _layout(row: pd.Series, prefix: str = "", moe: bool = True) -> dict[str, int]:
    tp, dp, moe_tp, ep = recorded_layout(row, prefix)
    if not prefix and unrecorded_dp(row):
        tp, dp, moe_tp = 1, tp, tp // ep  # batch_size is per attention-DP rank: the tp GPUs are DP ranks
    if not moe:  # the moe_* columns of dense models are placeholders
        return {"tp": tp, **({"attention_dp": dp} if dp > 1 else {})}
    out = {"tp": tp}
    if dp > 1:
        out["attention_dp"] = dp
    if ep > 1 or moe_tp != tp * dp:
        out.update(ep=ep, moe_tp=moe_tp)
    return out


def _per_instance(row: pd.Series) -> tuple[int, int]:
    """(clients of the run, clients batch_size x attention_dp_size accounts for on one instance) of an agg row."""
    return concurrency(row), _int(row["batch_size"]) * _int(row["attention_dp_size"])


def unrecorded_dp(row: pd.Series) -> bool:
    """An agg row whose clients are tp x batch_size with no attention DP listed: batch_size is per attention-DP
    rank (as `concurrency` reads it where attention_dp_size is given), so the tp GPUs are DP ranks. 13
    gap-analysis rows of the file (nvidia/DeepSeek-R1-NVFP4 and DeepSeek-V3.1-NVFP4 at tp 4/8 on B200 / GB200,
    openai/gpt-oss-120b at tp 2/4 on H100: MoE models, which TensorRT-LLM serves with attention DP), simulated
    with attention_dp = tp."""
    if row["mode"] != "agg" or not catalog.model(row["model_path"]).is_moe:
        return False
    c, per = _per_instance(row)
    tp = _int(row["tp_size"])
    return tp > 1 and _int(row["attention_dp_size"]) == 1 and c == tp * per


def replicas(row: pd.Series) -> int:
    """Instances of an agg row: its clients are k x batch_size x attention_dp_size for k > 1 where the row
    lists more clients than one instance batches (and `unrecorded_dp` does not account for them): several
    replicas behind one endpoint (e.g. nvidia/Qwen3-32B-NVFP4 at tp 2: 416 clients, batch 13 = 32 replicas,
    64 GPUs, as the same campaign's disagg rows of that model use 40 + 6 x 4 = 64 GPUs). Routed round robin."""
    if row["mode"] != "agg" or unrecorded_dp(row):
        return 1
    c, per = _per_instance(row)
    return c // per if c > per and c % per == 0 else 1


def concurrency(row: pd.Series) -> int:
    """Clients of the run: `silicon_concurrency` in the source column (agg `batch_size` is per attention-DP
    rank: 16 x 16 ranks = c256), else batch_size x attention_dp_size."""
    m = re.search(r"silicon_concurrency=(\d+)", str(row["silicon_data_source"]))
    if m:
        return int(m.group(1))
    if row["mode"] == "agg":
        return _int(row["batch_size"]) * _int(row["attention_dp_size"])
    return _int(row["decode_batch_size"])
