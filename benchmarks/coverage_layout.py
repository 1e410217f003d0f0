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


# InferenceX's vLLM agg `{tp: 2, ep: 2}` search-space items of the MiniMax-M2.5 configs that ever list `dp-attn: true`
# (.github/configs/nvidia-master.yaml; every commit that changed them, 2026-03-01 to 2026-04-25, read with `git show`):
# (precision, system, isl, T) -> [(UTC day of the commit, commit, items as (dp-attn, lowest conc, highest conc))].
# The recipes (`minimaxm2.5_fp4_b200.sh` etc. from 2026-04-08) launch `dp-attn` items `--tensor-parallel-size=1
# --data-parallel-size=$TP --enable-expert-parallel`, every other item `--tensor-parallel-size=$TP
# [--enable-expert-parallel]`. Their T = 4 items are never `dp-attn`; no later commit before the file's last run
# (2026-04-22) changes these items (`git log` of the file, re-read at each commit).
VLLM_TP_EP_ITEMS: dict[tuple[str, str, int, int], list[tuple[str, str, tuple[tuple[bool, int, int], ...]]]] = {
    ("fp4", "b200_sxm", 1024, 2): [
        ("2026-04-08", "79bd988e9", ((False, 128, 256), (True, 512, 512))),
        ("2026-04-22", "13962fcfa", ((False, 128, 128), (True, 256, 1024))),  # 04:01:04Z
    ],
    ("fp4", "b200_sxm", 8192, 2): [("2026-04-08", "79bd988e9", ((False, 128, 512),))],
    ("fp4", "b300_sxm", 1024, 2): [
        ("2026-04-17", "22d0f12f7", ((False, 128, 256), (True, 512, 512))),
        ("2026-04-21", "633fd2377", ((False, 128, 128), (True, 256, 2048))),  # 22:46:19Z
    ],
    ("fp4", "b300_sxm", 8192, 2): [
        ("2026-04-17", "22d0f12f7", ((False, 128, 512),)),
        ("2026-04-21", "633fd2377", ((True, 512, 512),)),  # 22:46:19Z
    ],
    ("fp8", "b300_sxm", 1024, 2): [
        ("2026-04-17", "340d7854c", ((False, 512, 512),)),
        ("2026-04-21", "0c2467c15", ((False, 512, 1024), (True, 1024, 1024))),  # 22:41:34Z
    ],
}
# The rows give only their UTC day (`measured=2026-04-21T00:00:00.000Z`). A commit on that day counts as in force: the
# file holds rows that only such a commit lists (fp4 B300 1k c1024 / c2048 measured 2026-04-21: 633fd2377, 22:46Z;
# fp4 B200 1k c1024 on 2026-04-22: 13962fcfa; fp8 B300 1k c1024 of config 735 on 2026-04-21: 0c2467c15), and
# TensorRT-LLM rows with times were measured seconds after a recipe commit (COVERAGE.md, branch s10-trtagg).
# 0c2467c15 lists c1024 in a non-DP and a `dp-attn` item; the row's config id tells them apart: config 735 also ran
# c512, which only the non-DP item lists, config 827 only c1024, so 827 is the `dp-attn` item.
VLLM_DP_ATTN_CONFIGS = {827}


def measured_date(row: pd.Series) -> str:
    """The row's `measured=` date (YYYY-MM-DD), or "" (before every date) where its source records none."""
    m = re.search(r"measured=(\d{4}-\d\d-\d\d)", str(row["silicon_data_source"]))
    return m.group(1) if m else ""


def measured_at(row: pd.Series) -> str:
    """The row's full `measured=` timestamp (ISO, UTC), or "" where its source records none."""
    m = re.search(r"measured=([^;\s]+)", str(row["silicon_data_source"]))
    return m.group(1) if m else ""


def vllm_dp_attention(row: pd.Series, t: int) -> bool:
    """Whether a vLLM MiniMax agg row of T GPUs ran a `dp-attn: true` item of the version in force on its day."""
    date = measured_date(row)
    versions = VLLM_TP_EP_ITEMS.get((str(row["precision"]), str(row["system"]), int(row["isl"]), t))
    if not date or not versions:
        return False
    in_force = [items for day, _, items in versions if day <= date]
    conc = concurrency(row)
    modes = {dp for dp, lo, hi in (in_force[-1] if in_force else ()) if lo <= conc <= hi}
    if len(modes) < 2:
        return modes == {True}
    cfg = re.search(r"config_id=(\d+)", str(row["silicon_data_source"]))
    return cfg is not None and int(cfg.group(1)) in VLLM_DP_ATTN_CONFIGS


def recorded_layout(row: pd.Series, prefix: str = "") -> tuple[int, int, int, int]:
    """(tp, attention_dp, moe_tp, ep) as the row lists them, except one recording slip: agg rows on an
    8-GPU HGX node whose tp x attention_dp (= moe_tp x ep) is the square of the GPU count. Their ids name
    the real layout (`…_tp8_ep8_…` is stored as tp 64, moe_tp 8, ep 8; `…_tp4_ep4_…` as tp 16 or
    attention_dp 16, moe_tp 4, ep 4; vLLM's `…_tp4_ep4_…` as tp 4, attention_dp 4, ep 16): T GPUs with
    EP E inside them, as TensorRT-LLM's `--tp_size=8 --ep_size=8` runs on one 8-GPU node. They are read
    back as T GPUs: attention TP (or attention DP where only DP was listed) T, ep E, moe_tp T / E.
    vLLM agg rows list every InferenceX `{tp: T, ep: T}` item as tp T, attention_dp T, moe_tp 1, ep T² at any T
    (97 rows: 67 MiniMax-M2.5, 30 Kimi-K2.5; 36 at T = 2, 4 GPUs listed), where the recipes launch T GPUs
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
