"""benchmarks/coverage_recipes_sglang.py: the srt-slurm recipes behind InferenceX's SGLang disagg items, read by hand
(qiching/srt-slurm, the fork carrying ishandhanani/srt-slurm's history) and checked against the reader: the decode
workers' `max-running-requests` as slots, `moe-a2a-backend: deepep` as the exchange, the version in force by date,
and no reading where the recipes matching a row disagree."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage_disagg as cd
import coverage_recipes_sglang as srt

H200_8K_MTP = "recipes/h200/8k1k/bs128-1p1d-dep-mtp.yaml"


@pytest.fixture
def rows(silicon_rows: pd.DataFrame) -> pd.DataFrame:
    return silicon_rows  # read once per session (tests/conftest.py)


def _item(*recipes: str, backend: str = "sglang") -> dict:
    return {"backend": backend, "settings": [f"CONFIG_FILE={r}" for r in recipes]}


def test_recipe_facts_of_a_recipe_text() -> None:
    text = """
resources: {prefill_workers: 1, decode_workers: 6}
frontend: {type: dynamo}
backend:
  sglang_config:
    prefill: {tp-size: 8, dp-size: 8, enable-dp-attention: true, chunked-prefill-size: 131072,
              moe-a2a-backend: deepep, max-running-requests: 30000}
    decode: {tp-size: 48, dp-size: 48, enable-dp-attention: true, max-running-requests: 45000,
             cuda-graph-bs: [1, 2, 768], moe-a2a-backend: deepep, stream-interval: 50}
"""
    f = srt.recipe_facts(text)
    assert f["decode_workers"] == 6 and f["prefill"]["chunk"] == 131072
    assert f["decode"] == {"max_running": 45000, "cuda_graph_bs": 768, "a2a": "deepep", "dp": 48, "dp_attention": True,
                           "stream_interval": 50}  # fmt: skip
    # 45000 requests over 48 attention-DP ranks: 937 per rank (SGLang's integer division)
    assert srt.decode_batch([_item("x")], "2026-02-01") is None  # a recipe the table does not hold


def test_version_in_force_by_date() -> None:
    """`gb200-fp8/1k1k/low-latency.yaml`: decode `max-running-requests` 512 at 75f6e32a3 (2026-01-27), 128 from
    686df21eb (2026-02-04); a row before the first version reads none (a value the run could not have used)."""
    name = "recipes/gb200-fp8/1k1k/low-latency.yaml"
    assert srt.version(name, "2026-02-01T00:00:00Z")["decode"]["max_running"] == 512
    assert srt.version(name, "2026-02-05")["decode"]["max_running"] == 128
    assert srt.version(name, "2025-12-01") is None
    assert srt.version("recipes/none.yaml", "2026-02-05") is None


def test_no_version_after_the_row() -> None:
    """Every recipe, read the day before its first version in the fork, gives none, and on that day gives that day's
    last version: a version committed after the row's measured day is never read."""
    from datetime import date, timedelta

    for name, versions in srt._table()["recipes"].items():
        first = versions[0]["date"][:10]
        assert srt.version(name, str(date.fromisoformat(first) - timedelta(days=1))) is None, name
        last_that_day = [v for v in versions if v["date"][:10] == first][-1]
        assert srt.version(name, first)["commit"] == last_that_day["commit"], name


def test_decode_batch_per_attention_rank() -> None:
    """`h200/8k1k/bs128-1p1d-dep-mtp.yaml`: decode dp-size 8 with DP attention, max-running-requests 192: 24 per
    rank. `h200/1k1k/low-latency-1p9d.yaml` (2026-02-05, 838acc8cf): TP decode, 256 per worker. The MTP and the
    plain `bs256-1p6d-dep` recipes give 128 and 512 per worker: no reading."""
    assert srt.decode_batch([_item(H200_8K_MTP)], "2026-02-07") == 24
    assert srt.decode_batch([_item("recipes/h200/1k1k/low-latency-1p9d.yaml")], "2026-02-07") == 256
    both = [_item("recipes/h200/1k1k/bs256-1p6d-dep-mtp.yaml"), _item("recipes/h200/1k1k/bs256-1p6d-dep.yaml")]
    assert srt.decode_batch(both, "2026-02-07") is None
    assert srt.decode_batch([_item(H200_8K_MTP, backend="trtllm")], "2026-02-07") is None


def test_deepep_only_where_every_dp_pool_runs_it() -> None:
    """`gb200-fp8/1k1k/mid-curve.yaml` passes `moe-a2a-backend: deepep` to its DEP prefill and decode workers;
    `gb200-fp4/1k1k/mid-curve.yaml` only to its decode workers while its prefill runs DP attention without it
    (one exchange per scenario: none read); the H200 recipes pass none."""
    assert srt.moe_all2all([_item("recipes/gb200-fp8/1k1k/mid-curve.yaml")], "2026-02-10") == "deepep"
    v = srt.version("recipes/gb200-fp4/1k1k/mid-curve.yaml", "2026-02-10")
    assert v is not None and v["decode"]["a2a"] == "deepep"
    assert v["prefill"]["dp_attention"] and v["prefill"]["a2a"] is None
    assert srt.moe_all2all([_item("recipes/gb200-fp4/1k1k/mid-curve.yaml")], "2026-02-10") is None
    assert srt.moe_all2all([_item(H200_8K_MTP)], "2026-02-10") is None


def test_configured_sglang_rows_read_their_recipes(rows: pd.DataFrame) -> None:
    """The `config, MTP` H200 8k/1k row at 512 clients (`bs128-1p1d-dep-mtp`, one decode worker of 8 DP ranks):
    192 slots for 512 clients. The sampled B200 fp4 1k/1k row at 128 clients (`low-latency-dep4-1p-tep8-5d`, 5 TEP8
    decode workers) reads none: measured before the fork's first version of that recipe, from whose day it would
    read 512. The `config, MTP?` H200 row reads none (the recipes disagree)."""
    r = rows.loc["2026_03_25_deepseek_r1_h200_sxm_sglang_fp8_disagg_8192x1024_c512_tp8_0_ep1_0_910"]
    d = cd.deployment(r)
    assert d.group.startswith("config, MTP") and d.spec == "mtp"
    assert d.decode_batch == 24 and cd.decode_slots(r, d) == 192 and d.moe_all2all is None
    b200 = rows.loc["2026_04_06_deepseek_r1_b200_sxm_sglang_fp4_disagg_1024x1024_c128_tp4_ep4_1785"]
    d = cd.deployment(b200)  # measured 2026-02-11; the fork holds its recipe only from 5063eb432 (2026-03-03)
    assert cd.decode_slots(b200, d) is None and d.pools["decode"]["instances"] == 5
    later = b200.copy()
    later["silicon_data_source"] = str(b200["silicon_data_source"]).replace("2026-02-11", "2026-03-03")
    assert cd.decode_slots(later) == 512
    amb = rows.loc["2026_03_25_deepseek_r1_h200_sxm_sglang_fp8_disagg_1024x1024_c1024_tp8_0_ep8_0_882"]
    assert cd.deployment(amb).group == "config, MTP?" and cd.decode_slots(amb) is None


def test_deepep_rows_set_the_engine_exchange(rows: pd.DataFrame) -> None:
    """coverage.serving_engine sets `moe_all2all: deepep` exactly for the disagg rows whose recipes run it."""
    import coverage

    fp8 = rows[(rows["backend"] == "sglang") & (rows["mode"] == "disagg") & (rows["system"] == "gb200")]
    deep = [i for i, r in fp8.iterrows() if cd.deployment(r).moe_all2all == "deepep"]
    assert deep, "the GB200 fp8 mid-curve / max-tpt rows run DeepEP"
    for i in deep:
        assert coverage.serving_engine(fp8.loc[i])["moe_all2all"] == "deepep"
    plain = rows.loc["2026_04_06_deepseek_r1_b200_sxm_sglang_fp4_disagg_1024x1024_c128_tp4_ep4_1785"]
    assert "moe_all2all" not in coverage.serving_engine(plain)
