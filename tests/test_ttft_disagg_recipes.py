"""benchmarks/ttft_disagg_recipes.py: the srt-slurm TensorRT-LLM recipe a recorded disagg row ran, and the decode
slots read from it (hand rows against a hand table, then the shipped table on the sampled H100 rows)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import queueing  # noqa: F401  the package first: once benchmarks/ leads sys.path, its queueing.py would shadow it

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage as cov
import coverage_disagg as cd
import ttft_disagg_recipes as tdr

WL = {"arrival": {"kind": "closed_loop", "concurrency": 1}, "num_requests": 1,
      "lengths": {"kind": "fixed", "prompt": 16, "output": 4}}  # fmt: skip
RECIPE = """
model: {path: DeepSeek-R1-0528, container: "nvcr.io#nvidia/ai-dynamo/tensorrtllm-runtime:0.8.1.post3", precision: fp8}
resources: {gpu_type: h100, prefill_workers: 1, decode_workers: 3, gpus_per_node: 8}
backend:
  type: trtllm
  trtllm_config:
    prefill: {max_batch_size: 2}
    decode: {tensor_parallel_size: 16, enable_attention_dp: false, max_batch_size: 8, stream_interval: 100}
benchmark: {type: sa-bench, isl: 1024, osl: 1024, concurrencies: '30x60', req_rate: inf}
"""


def _version(**over: Any) -> dict[str, Any]:
    facts = tdr.recipe_facts(RECIPE)
    assert facts is not None
    return (
        {"path": "recipes/trtllm/h100-fp8/x.yaml", "commit": "abc", "date": "2026-01-27T11:00:00-08:00"} | facts | over
    )


def _row(**over: Any) -> pd.Series:
    src = (
        "db-dump/2026-04-27; config_id=494; silicon_concurrency=30; measured=2026-02-08T00:00:00.000Z; "
        "workflow_run_id=269; nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.1.post3"
    )
    base = {"id": "r", "backend": "trtllm", "mode": "disagg", "system": "h100_sxm", "precision": "fp8", "isl": 1024,
            "model_path": "deepseek-ai/DeepSeek-V3",
            "osl": 1024, "prefill_num_workers": 1.0, "decode_num_workers": 3.0, "decode_tp_size": 16.0,
            "decode_attention_dp_size": 1.0, "silicon_data_source": src}  # fmt: skip
    return pd.Series(base | over)


def test_recipe_facts_by_hand() -> None:
    f = tdr.recipe_facts(RECIPE)
    assert f is not None
    assert (f["gpu"], f["container"], f["decode_workers"], f["decode_tp"], f["decode_dp"]) == (
        "h100",
        "0.8.1.post3",
        3,
        16,
        False,
    )
    assert (f["decode_batch"], f["decode_stream_interval"], f["conc"]) == (8, 100, [30, 60])
    listed = RECIPE.replace("concurrencies: '30x60'", "concurrencies: [615, 1229]")
    assert (tdr.recipe_facts(listed) or {}).get("conc") == [615, 1229]
    assert tdr.recipe_facts("model: {path: x}\n") is None  # not a TensorRT-LLM disagg recipe


def test_slots_by_hand() -> None:
    table = {"versions": [_version()]}
    assert tdr.decode_slots(_row(), table) == 8  # 8 per worker, attention TP: 3 x 8 = 24 slots for 30 clients
    dp = {"versions": [_version(decode_dp=True)]}
    assert tdr.decode_slots(_row(decode_attention_dp_size=16.0), dp) == 128  # 8 per rank x 16 DP ranks
    assert tdr.decode_slots(_row(), dp) is None  # the recipe's DP contradicts the recorded decode DP size


@pytest.mark.parametrize(
    "row",
    [
        _row(silicon_data_source=_row()["silicon_data_source"].replace("0.8.1.post3", "0.8.1.post1")),  # container
        _row(decode_num_workers=2.0),  # workers
        _row(silicon_data_source=_row()["silicon_data_source"].replace("concurrency=30", "concurrency=31")),  # conc
        _row(system="h200_sxm"),
        _row(isl=8192),
        _row(backend="sglang"),
        _row(silicon_data_source="source_file=2026-03-25.csv; silicon_concurrency=30; measured=2026-02-08"),
    ],
)
def test_no_match_no_slots(row: pd.Series) -> None:
    assert tdr.matches(row, {"versions": [_version()]}) == []
    assert tdr.decode_slots(row, {"versions": [_version()]}) is None


def test_disagreeing_recipes_give_none() -> None:
    table = {"versions": [_version(), _version(path="recipes/trtllm/h100-fp8/y.yaml", decode_batch=16)]}
    assert len(tdr.matches(_row(), table)) == 2 and tdr.decode_slots(_row(), table) is None
    same = {"versions": [_version(), _version(path="recipes/trtllm/h100-fp8/y.yaml")]}
    assert tdr.decode_slots(_row(), same) == 8


def test_in_force_picks_the_newest_by_the_day() -> None:
    old, new = _version(date="2026-01-27T11:00:00-08:00"), _version(date="2026-03-03T16:49:10+08:00", decode_batch=4)
    assert tdr.in_force([old, new], "2026-02-08") == [old]
    assert tdr.in_force([old, new], "2026-03-03") == [new]  # 08:49 UTC that day
    assert tdr.in_force([old, new], "2026-01-26") == []


def test_sampled_h100_rows_read_their_recipes(silicon_rows: pd.DataFrame) -> None:
    # srt-slurm recipes/trtllm/h100-fp8/{1k1k,8k1k}/stp/ctx1_gen3_tep16_batch{1,8,16}_eplb0_mtp0.yaml (0.8.1.post3,
    # 3 decode workers): concurrencies 6 / 30 / 60
    for rid, slots in [
        ("dsr1_h100_trtllm_fp8_disagg_8192x1024_c6_cfg494", 1),
        ("dsr1_h100_trtllm_fp8_disagg_1024x1024_c30_cfg494", 8),
        ("dsr1_h100_trtllm_fp8_disagg_1024x1024_c60_cfg494", 16),
    ]:
        row = silicon_rows.loc[rid]
        assert tdr.decode_slots(row) == slots
        assert cd.decode_slots(row) == slots  # coverage_disagg delegates for recorded rows
        sc = cov.scenario(row, WL)
        assert sc["cluster"]["decode"]["scheduler"]["max_num_seqs"] == slots


def test_hold_summary_by_hand() -> None:
    import ttft_disagg_hold as hold

    t = pd.DataFrame(
        {
            "stream_interval": [100, 100, 100, 100, 20],
            "ttft_in_tpots": [30.0, 60.0, 150.0, 10.0, 25.0],
            "slots_bind": [False, False, False, True, False],
        }
    )
    s = hold.file_summary(t).set_index("stream_interval")
    assert s.loc[100, "rows"] == 3  # the slot-bound row is left out
    assert (s.loc[100, "below_full"], s.loc[100, "below_half"]) == (2, 1)  # < 99 : 30, 60; < 49.5 : 30
    assert (s.loc[20, "below_full"], s.loc[20, "below_half"]) == (0, 0)


def test_alias_container_and_model() -> None:
    alias = {"versions": [_version(container="dynamo-trtllm", container_alias=True)]}
    other = _row(silicon_data_source=_row()["silicon_data_source"].replace("0.8.1.post3", "0.8.1.post2"))
    assert tdr.decode_slots(other, alias) == 8  # an untagged srtctl alias matches any tag
    assert tdr.decode_slots(other, {"versions": [_version(container="dynamo-trtllm")]}) is None  # a tag must match
    assert tdr.decode_slots(_row(model_path="moonshotai/Kimi-K2.5"), alias) is None  # DeepSeek-R1 recipes only
    assert tdr.decode_slots(_row(model_path="deepseek-ai/DeepSeek-V3"), alias) == 8


def test_sampled_gb200_row_reads_an_alias_recipe(silicon_rows: pd.DataFrame) -> None:
    # srt-slurm recipes/trtllm/gb200-fp8/1k1k/stp/ctx1_gen3_tep8_batch8_eplb0_mtp0_27.yaml@5063eb432:
    # `container: dynamo-trtllm`, 1 + 3 workers, decode tp 8, max_batch_size 8, concurrencies [27]
    row = silicon_rows.loc["dsr1_gb200_trtllm_fp8_disagg_1024x1024_c27_cfg386"]
    assert tdr.decode_slots(row) == 8
    # MTP and plain recipes of the same shape disagree (8 vs 32): the recorded row cannot tell them apart
    assert tdr.decode_slots(silicon_rows.loc["dsr1_gb300_trtllm_fp4_disagg_1024x1024_c48_cfg417"]) is None
