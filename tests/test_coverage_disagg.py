"""benchmarks/coverage_disagg.py reads the worker counts of InferenceX's disaggregated rows from InferenceX's
configuration (`.github/configs/nvidia-master.yaml`): hand-checked rows against the cited config items, rows
that cannot be determined flagged as such, bad inputs refused."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage_disagg as cd

from sim.core.speculative import expected_tokens

R1 = "deepseek-ai/DeepSeek-R1"


@pytest.fixture
def rows(silicon_rows: pd.DataFrame) -> pd.DataFrame:
    return silicon_rows  # read once per session (tests/conftest.py)


def test_mtp_and_plain_items_of_one_shape(rows: pd.DataFrame) -> None:
    """nvidia-master.yaml@f316a0ef6 (2026-03-23), dsr1-fp4-gb200-dynamo-trt, 1k1k: the MTP item
    `ctx1_gen4_tep8_batch8_eplb0_mtp3` (conc 4, 8, 12, 24, 48) and a non-MTP item at conc 24 both run 1 prefill
    worker tp 4 / ep 4 / dp-attn and 4 decode workers tp 8 / ep 8 without dp-attn. The row lists decode ep 4
    (the prefill's), which the config corrects."""
    r = rows.loc["2026_03_25_deepseek_r1_gb200_trtllm_fp4_disagg_1024x1024_c24_tp4_0_ep4_0_420"]
    assert (r["decode_tp_size"], r["decode_moe_ep_size"]) == (8, 4)
    d = cd.deployment(r)
    assert d.status == "config" and d.cite.startswith(".github/configs/nvidia-master.yaml@f316a0ef6")
    assert d.pools["prefill"] == {"instances": 1, "tp": 1, "attention_dp": 4, "ep": 4, "moe_tp": 1}
    assert d.pools["decode"] == {"instances": 4, "tp": 8, "ep": 8, "moe_tp": 1}
    assert d.spec is None and d.group == "config, MTP?" and not d.as_run(str(r["model_path"]))


def test_low_latency_sglang_h200(rows: pd.DataFrame) -> None:
    """nvidia-master.yaml@fcc04aaa2 (2026-02-07T22:52:22Z; the row was measured 22:52:25Z; 04b564b39 at 23:20Z
    keeps the same items), dsr1-fp8-h200-dynamo-sglang, 1k1k: "STP: Low latency (1 prefill,
    9 decode, TEP)" and "MTP: Low latency (1 prefill, 9 decode, TEP)", both conc 1 ... 256, prefill and decode tp 8,
    ep 1, no dp-attn (recipes/h200/1k1k/low-latency-1p9d[-mtp].yaml): workers known, MTP not."""
    r = rows.loc["2026_03_25_deepseek_r1_h200_sxm_sglang_fp8_disagg_1024x1024_c8_tp8_0_ep1_0_895"]
    d = cd.deployment(r)
    assert d.pools == {"prefill": {"instances": 1, "tp": 8}, "decode": {"instances": 9, "tp": 8}}
    assert d.spec is None and d.group == "config, MTP?" and not d.as_run(str(r["model_path"]))
    assert "@fcc04aaa2" in d.cite and "dsr1-fp8-h200-dynamo-sglang (none)" in d.cite
    assert cd.reading(r).startswith("1 prefill + 9 decode workers (MTP unknown)")


def test_plain_item_b200_sglang(rows: pd.DataFrame) -> None:
    """nvidia-master.yaml@593fb431a, dsr1-fp8-b200-dynamo-sglang, 1k1k conc 256: one non-MTP item, 1 prefill and
    3 decode workers, each tp 8 / ep 8 without dp-attn."""
    r = rows.loc["2026_03_25_deepseek_r1_b200_sxm_sglang_fp8_disagg_1024x1024_c256_tp8_0_ep8_0_541"]
    d = cd.deployment(r)
    assert d.pools["decode"] == {"instances": 3, "tp": 8, "ep": 8, "moe_tp": 1}
    assert d.pools["prefill"] == {"instances": 1, "tp": 8, "ep": 8, "moe_tp": 1}
    assert (
        d.group == "config" and d.as_run(str(r["model_path"])) and d.cite.endswith("dsr1-fp8-b200-dynamo-sglang (none)")
    )


def test_gpt_oss_one_decode_worker(rows: pd.DataFrame) -> None:
    """gptoss-fp4-gb200-dynamo-trt, 1k1k, "P: 1xTP1 D:1xTP4" (conc 1, 2, 4, 16, 32, 64, 128): at conc 4 only
    this item matches (conc 16 is also in the "P: 1xTP1 D:4xTP2" item, whose decode tp differs)."""
    r = rows.loc["2026_03_25_gpt_oss_120b_gb200_trtllm_fp4_disagg_1024x1024_c4_tp1_0_ep1_0_1284"]
    d = cd.deployment(r)
    assert d.pools == {"prefill": {"instances": 1, "tp": 1}, "decode": {"instances": 1, "tp": 4}}
    assert d.group == "config"


def test_unmatched_and_placeholder_rows_are_unknown(rows: pd.DataFrame) -> None:
    """The H200 TensorRT-LLM rows' concurrencies (11, 13, 36, ...) are in no item's conc-list; the early GB200
    SGLang items carry placeholder pools ("tp, ep, and dp-attn do nothing": set from PREFILL_NODES / DECODE_NODES)."""
    h200 = rows[rows["id"].str.startswith("2026_03_25_deepseek_r1_h200_sxm_trtllm_fp8_disagg_1024x1024_c11_")]
    assert len(h200) >= 1
    d = cd.deployment(h200.iloc[0])
    assert d.status == "unknown" and "matches" in d.why and d.pools == {}
    gb = rows[rows["id"].str.contains("gb200_sglang_fp8_disagg") & (rows["prefill_tp_size"] == 1)]
    gb = gb[gb["decode_num_workers"].isna()]
    assert len(gb) >= 1 and all(cd.deployment(r).group == "unknown" for _, r in gb.iterrows())
    assert "launch script" in cd.deployment(gb.iloc[0]).why
    assert "workers unknown, simulated as 1 prefill + 1 decode" in cd.reading(h200.iloc[0])


def test_recorded_workers_are_kept(rows: pd.DataFrame) -> None:
    r = rows[(rows["mode"] == "disagg") & rows["decode_num_workers"].notna()].iloc[0]
    assert cd.deployment(r).status == "recorded" and cd.deployment(r).as_run(str(r["model_path"]))


def test_every_disagg_row_gets_one_reading(rows: pd.DataFrame) -> None:
    """Every disagg row is recorded, configured, bounded (matching items disagree) or unknown; the exports without
    workers are never `recorded`."""
    d = rows[rows["mode"] == "disagg"]
    groups = pd.Series([cd.deployment(r).group for _, r in d.iterrows()], index=d.index)
    known = {"recorded", "config", "config, MTP", "config, MTP, k?", "config, MTP?", "bound", "unknown"}
    assert set(groups) <= known
    lacking = d["decode_num_workers"].isna()
    assert (groups[lacking] != "recorded").all() and (groups[~lacking] == "recorded").all()
    assert (groups[lacking] == "unknown").sum() < lacking.sum() / 2  # most exports are read from the configs


def _row(**kw: object) -> pd.Series:
    base = {"id": "x", "mode": "disagg", "silicon_data_source": "source_file=2026-03-25.csv; silicon_concurrency=4",
            "prefill_num_workers": float("nan"), "decode_num_workers": float("nan")}  # fmt: skip
    return pd.Series({**base, **kw})


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="expected 'disagg'"):
        cd.deployment(_row(mode="agg"))
    assert "measured" in cd.deployment(_row()).why  # no measured= date: unknown, not a guess
    assert cd.deployment(_row(silicon_data_source="db-dump/x; measured=2026-01-01")).status == "unknown"
    with pytest.raises(ValueError, match="ep dividing tp"):
        cd.pool_layout(1, 8, 3, True)
    with pytest.raises(ValueError, match="positive"):
        cd.pool_layout(0, 8, 8, False)


def test_pool_layouts() -> None:
    """dep8 = attention DP over 8 GPUs with EP 8; tep8 = TP 8 with EP 8; tp 8 with ep 1 = MoE TP 8."""
    assert cd.pool_layout(2, 8, 8, True) == {"instances": 2, "tp": 1, "attention_dp": 8, "ep": 8, "moe_tp": 1}
    assert cd.pool_layout(5, 8, 8, False) == {"instances": 5, "tp": 8, "ep": 8, "moe_tp": 1}
    assert cd.pool_layout(1, 8, 1, False) == {"instances": 1, "tp": 8}
    assert cd.pool_layout(1, 4, 1, True) == {"instances": 1, "tp": 1, "attention_dp": 4, "ep": 1, "moe_tp": 4}


def test_in_force_reads_a_bare_date_to_the_end_of_its_day() -> None:
    table = {"commits": [["a", "2026-02-01T10:00:00+00:00"], ["b", "2026-02-03T23:00:00-05:00"]]}
    table["_dates"] = [pd.Timestamp(d).to_pydatetime() for _, d in table["commits"]]
    assert cd.in_force("2026-01-31T00:00:00Z", table) == -1
    assert cd.in_force("2026-02-01T00:00:00.000Z", table) == 0  # a bare date (midnight): a commit later that day counts
    assert cd.in_force("2026-02-01", table) == 0
    assert cd.in_force("2026-02-03", table) == 0  # b lands at 04:00Z on the 4th
    assert cd.in_force("2026-02-04", table) == 1


def test_in_force_reads_a_timestamp_at_its_time() -> None:
    """A row with a time of day reads the commit in force at that second, not at the end of its day."""
    table = {"commits": [["a", "2026-02-01T10:00:00+00:00"], ["b", "2026-02-03T23:00:00-05:00"]]}
    table["_dates"] = [pd.Timestamp(d).to_pydatetime() for _, d in table["commits"]]
    assert cd.in_force("2026-02-01T09:59:59Z", table) == -1  # the end of that day would read a
    assert cd.in_force("2026-02-01T10:00:00Z", table) == 0  # committed at that very second
    assert cd.in_force("2026-02-04T03:59:59Z", table) == 0  # b is 2026-02-04T04:00Z
    assert cd.in_force("2026-02-04T04:00:00Z", table) == 1
    assert cd.in_force("2026-02-03T23:30:00-05:00", table) == 1  # an offset is converted to UTC


def test_b200_sglang_row_reads_the_item_in_force_at_its_time(rows: pd.DataFrame) -> None:
    """`..._c16_tp4_0_ep4_0_795` was measured 2026-02-11T01:17:05Z: then only the non-MTP item of its shape was in
    force (the MTP item came later that day, which the end-of-day reading mixed in as `config, MTP?`)."""
    d = cd.deployment(rows.loc["2026_03_25_deepseek_r1_b200_sxm_sglang_fp4_disagg_1024x1024_c16_tp4_0_ep4_0_795"])
    assert d.group == "config" and d.spec == "none" and d.cite.endswith("dsr1-fp4-b200-dynamo-sglang (none)")


def test_headline_counts_every_simulated_row() -> None:
    """The headline medians take every simulated (expressible) row, the set the share counts; `as_run` beside it
    leaves out the unknown / MTP rows; the groups keep each apart."""
    res = pd.DataFrame(
        {
            "deployment": ["agg", "agg", "config", "unknown", "config, MTP"],
            "as_run": [True, True, True, False, False],
            "ttft_err": [-0.1, 0.2, -0.3, 5.0, 4.0],
            "tpot_err": [0.1, -0.2, 0.05, 2.0, 1.5],
        }
    )
    h = cd.headline(res)
    # |ttft| 0.1 0.2 0.3 5 4 -> 0.3; |tpot| 0.1 0.2 0.05 2 1.5 -> 0.2; signed tpot 0.1 -0.2 0.05 2 1.5 -> 0.1
    assert h["median_abs_ttft_err"] == pytest.approx(0.3) and h["median_abs_tpot_err"] == pytest.approx(0.2)
    assert h["signed_median"] == {"ttft": pytest.approx(0.2), "tpot": pytest.approx(0.1)}
    a = h["as_run"]  # rows 0-2: |ttft| 0.1 0.2 0.3 -> 0.2; |tpot| 0.1 0.2 0.05 -> 0.1; signed tpot -> 0.05
    assert a["rows"] == 3 and a["median_abs_ttft_err"] == pytest.approx(0.2)
    assert a["median_abs_tpot_err"] == pytest.approx(0.1) and a["signed_median"]["tpot"] == pytest.approx(0.05)
    assert h["by_deployment"]["unknown"]["n"] == 1 and h["by_deployment"]["agg"]["tpot"] == pytest.approx(0.15)


def _item(spec: str, *settings: str) -> dict:
    return {"spec": spec, "settings": list(settings)}


def test_draft_tokens_from_the_recipe() -> None:
    """The draft length is read from the recipe: TensorRT-LLM names (`…_mtp3.yaml`, `…_mtp3_8.yaml`), the early
    GB200 `DECODE_MTP_SIZE=`, the SGLang recipes' `speculative-num-steps` (SRT_RECIPE_MTP); nothing is guessed."""
    cf = "CONFIG_FILE=recipes/trtllm/b200-fp8/1k1k/mtp/"
    assert cd.draft_tokens(_item("mtp", cf + "ctx1_gen5_tep8_batch32_eplb0_mtp3.yaml")) == 3
    assert cd.draft_tokens(_item("mtp", cf + "ctx1_gen1_dep8_batch128_eplb0_mtp2_1088.yaml")) == 2
    assert cd.draft_tokens(_item("mtp", "DECODE_MAX_BATCH_SIZE=32", "DECODE_MTP_SIZE=1")) == 1
    assert cd.draft_tokens(_item("mtp", "CONFIG_FILE=recipes/h200/8k1k/bs8-1p6d-mtp.yaml")) == 2
    assert cd.draft_tokens(_item("mtp", cf + "ctx1_gen1_dep32_batch8_eplb0_mtp.yaml")) is None  # no length named
    assert cd.draft_tokens(_item("mtp", "CONFIG_FILE=recipes/h200/1k1k/low-latency-1p9d-mtp.yaml")) is None
    assert cd.draft_tokens(_item("none", cf + "ctx1_gen5_tep8_batch32_eplb0_mtp3.yaml")) is None
    assert cd.draft_tokens(_item("mtp", cf + "a_mtp3.yaml", "DECODE_MTP_SIZE=1")) is None  # two lengths: unknown


def test_mtp_row_is_simulated_with_its_draft_length(rows: pd.DataFrame) -> None:
    """nvidia-master.yaml@f316a0ef6, dsr1-fp8-b200-dynamo-trt (mtp), 1k1k conc 1184: 1 prefill DEP8 and 3 decode
    DEP8 workers, recipe `…_mtp3…`: speculative MTP with 3 draft tokens at R1's published per-position rates.
    The SGLang B200 fp8 item at conc 8 (recipes/b200-fp8/1k1k/mtp/low-latency-tep8-1p3d.yaml) drafts 2."""
    import coverage as cov

    r = rows.loc["2026_03_25_deepseek_r1_b200_sxm_trtllm_fp8_disagg_1024x1024_c1184_tp8_0_ep8_0_356"]
    d = cd.deployment(r)
    assert (
        d.group == "config, MTP"
        and d.as_run(str(r["model_path"]))
        and d.mtp == 3
        and "dsr1-fp8-b200-dynamo-trt (mtp)" in d.cite
    )
    assert cd.reading(r).startswith("1 prefill + 3 decode workers (MTP, 3 draft tokens)")
    sc = cov.scenario(r, cov._fixed_workload(4, r))
    assert sc["speculative"] == {"kind": "mtp", "num_tokens": 3, "acceptance": cd.MTP_ACCEPTANCE[R1][:3]}
    s = rows.loc["2026_03_25_deepseek_r1_b200_sxm_sglang_fp8_disagg_1024x1024_c8_tp8_0_ep8_0_534"]
    assert cd.deployment(s).speculative(R1) == {"kind": "mtp", "num_tokens": 2, "acceptance": cd.MTP_ACCEPTANCE[R1][:2]}
    # a recipe without a length (`…_eplb0_mtp.yaml`): MTP left out, reported apart, not as run
    u = rows.loc["2026_03_25_deepseek_r1_gb300_trtllm_fp4_disagg_1024x1024_c333_tp2_0_ep2_0_1112"]
    du = cd.deployment(u)
    assert (
        du.group == "config, MTP, k?"
        and not du.as_run(str(u["model_path"]))
        and du.speculative(str(u["model_path"])) is None
    )
    assert "speculative" not in cov.scenario(u, cov._fixed_workload(4, u))
    # a plain row has no speculative section; nor does a model without a cited acceptance
    p = rows.loc["2026_03_25_deepseek_r1_b200_sxm_sglang_fp8_disagg_1024x1024_c256_tp8_0_ep8_0_541"]
    assert "speculative" not in cov.scenario(p, cov._fixed_workload(4, p))
    assert d.speculative("zhipuai/GLM-5") is None
    # ... and such a row is simulated without MTP, so it does not count as run as it ran (reviewer finding 3)
    assert not d.as_run("zhipuai/GLM-5") and d.as_run("deepseek-ai/DeepSeek-R1")


def test_mtp_rates_reproduce_the_published_acceptance_lengths() -> None:
    """TensorRT-LLM blog 1's acceptance lengths 1.92 / 2.58 / 2.82 (1, 2, 3 MTP layers): by hand, P(first i drafts
    accepted) = 0.92, 0.66, 0.24, so the conditional rates are 0.92, 0.66 / 0.92 = 0.71739, 0.24 / 0.66 = 0.36364;
    and servesim's expected tokens per step with the first k rates is the published AL_k for every k."""
    assert cd.rates_from_lengths((1.92, 2.58, 2.82)) == pytest.approx([0.92, 0.717391, 0.363636], abs=1e-6)
    for k, al in enumerate(cd.MTP_LENGTHS[R1], start=1):
        spec = cd.mtp_speculative(R1, k)
        assert spec is not None and len(spec["acceptance"]) == k
        assert expected_tokens(spec["acceptance"]) == pytest.approx(al, abs=1e-9)
    # the geometric 0.875 of before overstates the third position: 3.31 tokens a step against the published 2.82
    assert (
        expected_tokens([0.875] * 3)
        == pytest.approx(1 + 0.875 + 0.875**2 + 0.875**3)
        == pytest.approx(3.3105, abs=1e-4)
    )
    assert cd.mtp_speculative(R1, 6) is None  # beyond the published curve: not invented
    assert cd.mtp_speculative("Qwen/Qwen3.5-397B-A17B", 1) is None  # no cited acceptance


def test_decode_batch_from_the_recipe() -> None:
    """The generation workers' max batch is read from TensorRT-LLM recipes: the name's `batch<n>` (a `gen` recipe),
    the early GB200 `DECODE_MAX_BATCH_SIZE=`; SGLang items and unnamed or conflicting values give None."""
    cf = "CONFIG_FILE=recipes/trtllm/b300-fp8/1k1k/mtp/"
    trt = {"backend": "trtllm"}
    assert cd.decode_batch(trt | _item("mtp", cf + "ctx1_gen5_dep8_batch16_eplb0_mtp2_720.yaml")) == 16
    assert cd.decode_batch(trt | _item("none", cf + "ctx2_gen5_tep8_batch64_eplb0_mtp0.yaml")) == 64
    assert cd.decode_batch(trt | _item("mtp", "PREFILL_MAX_BATCH_SIZE=4", "DECODE_MAX_BATCH_SIZE=32")) == 32
    assert cd.decode_batch(trt | _item("none", "CONFIG_FILE=recipes/x/agg_batch16_.yaml")) is None  # not a gen recipe
    assert cd.decode_batch(trt | _item("mtp", cf + "ctx1_gen1_dep32_batch8_.yaml", "DECODE_MAX_BATCH_SIZE=16")) is None
    sgl = {"backend": "sglang"} | _item("none", "CONFIG_FILE=recipes/h200/1k1k/low-latency-1p9d.yaml")
    assert cd.decode_batch(sgl) is None


def test_decode_slots_of_a_configured_row(rows: pd.DataFrame) -> None:
    """dsr1-fp8-b300-dynamo-trt, 1k1k conc 720, recipe `ctx1_gen5_dep8_batch16_eplb0_mtp2_720`: 5 decode workers of
    8 attention-DP ranks, each rank 16 requests at once: 128 per worker, 640 in all, 80 fewer than the clients.
    Unknown rows get none; a recorded row gets the srt-slurm recipe it ran (ttft_disagg_recipes, s13-dis)."""
    r = rows.loc["2026_04_06_deepseek_r1_b300_sxm_trtllm_fp8_disagg_1024x1024_c720_tp4_ep1_1408"]
    d = cd.deployment(r)
    assert d.decode_batch == 16 and d.pools["decode"]["attention_dp"] == 8 and d.pools["decode"]["instances"] == 5
    assert cd.decode_slots(r, d) == 128
    assert cd.decode_slots(rows.loc["dsr1_h100_trtllm_fp8_disagg_1024x1024_c30_cfg494"]) == 8  # ctx1_gen3_tep16_batch8
    assert cd.decode_slots(rows.loc["dsr1_gb300_trtllm_fp4_disagg_1024x1024_c48_cfg417"]) is None  # MTP 8 vs plain 32
    unknown = rows.loc["2026_03_25_glm_5_gb200_trtllm_fp4_disagg_1024x1024_c5_tp4_0_ep_148"]
    assert cd.deployment(unknown).status == "unknown" and cd.decode_slots(unknown) is None


def _pools_item(pre: list[Any], dec: list[Any], name: str = "x", batch: int | None = None) -> dict[str, Any]:
    cfg = [f"CONFIG_FILE=recipes/ctx1_gen1_dep8_batch{batch}_eplb0_mtp0.yaml"] if batch else []
    return {"prefill": pre, "decode": dec, "entry": name, "spec": "none", "backend": "trtllm", "settings": cfg}


def test_smallest_matching_item_by_hand() -> None:
    """Fewest GPUs (prefill workers x tp + decode workers x tp) first: 3 x 8 + 1 x 8 = 32 beats 5 x 8 + 3 x 8 = 64;
    at equal GPUs the fewer decode slots (batch x attention-DP ranks x workers: 32 x 8 = 256 < 64 x 8 = 512), and a
    batch the recipe does not name counts as unbounded."""
    a = _pools_item([3, 8, 8, False], [1, 8, 8, True], "a", 32)
    b = _pools_item([5, 8, 8, False], [3, 8, 8, True], "b", 256)
    assert cd.smallest([b, a]) is a
    c = _pools_item([3, 8, 8, False], [1, 8, 8, True], "c", 64)
    assert cd.smallest([c, a]) is a and cd.smallest([a, c]) is a
    unnamed = _pools_item([3, 8, 8, False], [1, 8, 8, True], "d")
    assert cd.smallest([unnamed, c]) is c
    # dp-attn off: slots are batch x workers (one scheduler per worker), 64 x 1 < 32 x 8
    tep = _pools_item([3, 8, 8, False], [1, 8, 8, False], "e", 64)
    assert cd.smallest([a, tep]) is tep


def test_disagreeing_items_read_as_the_smallest(rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """nvidia-master.yaml@f316a0ef6, dsr1-fp8-h200-dynamo-trt 8k1k conc 256: the MTP item runs 3 prefill workers
    (tp 8 / ep 8) and 1 decode worker (dep8, `…_ctx3_gen1_dep8_batch32_eplb0_mtp2`), the plain one 5 + 3
    (`…_ctx5_gen3_dep8_batch256_eplb0_mtp0`). The row cannot tell them apart; both run at least 3 prefill workers
    and 8 attention-DP decode ranks, where the former reading simulated 1 + 1 with tensor-parallel decode. The
    smallest is simulated, without MTP; READ_BOUND off restores `unknown`."""
    r = rows.loc["2026_03_25_deepseek_r1_h200_sxm_trtllm_fp8_disagg_8192x1024_c256_tp8_0_ep8_0_360"]
    d = cd.deployment(r)
    assert d.status == "bound" and d.group == "bound" and d.pools_read and not d.as_run(str(r["model_path"]))
    assert "2 deployments match" in d.why and d.cite.endswith("dsr1-fp8-h200-dynamo-trt (mtp), the smallest of 2")
    assert d.pools["prefill"] == {"instances": 3, "tp": 8, "ep": 8, "moe_tp": 1}
    assert d.pools["decode"] == {"instances": 1, "tp": 1, "attention_dp": 8, "ep": 8, "moe_tp": 1}
    assert d.spec is None and d.speculative(str(r["model_path"])) is None  # MTP left out
    assert cd.decode_slots(r, d) == 32 * 8
    assert cd.reading(r).startswith("2 deployments match") and "3 prefill + 1 decode workers, no MTP" in cd.reading(r)
    # GB300 fp8 8k1k conc 666: both items run 1 decode worker dep16 batch32 -> 512 slots, fewer than the clients
    g = rows.loc["2026_03_25_deepseek_r1_gb300_trtllm_fp8_disagg_8192x1024_c666_tp4_0_ep4_0_936"]
    assert cd.decode_slots(g) == 512 and cd.deployment(g).pools["prefill"]["instances"] == 4
    monkeypatch.setattr(cd, "READ_BOUND", False)
    u = cd.deployment(r)
    assert u.status == "unknown" and u.pools == {} and not u.pools_read and cd.decode_slots(r, u) is None


def test_bound_never_exceeds_a_matching_item(rows: pd.DataFrame) -> None:
    """Property over every `bound` row: its pools are one of the matching items', with no more GPUs than any of
    them, and at least one GPU more than the 1 prefill + 1 decode fallback's smaller pool (never a smaller
    deployment than the configs allow)."""
    t = cd._table()
    d = rows[rows["mode"] == "disagg"]
    seen = 0
    for _, r in d.iterrows():
        dep = cd.deployment(r, t)
        if dep.status != "bound":
            continue
        seen += 1
        conc, measured = cd._fact(r, "silicon_concurrency"), cd._fact(r, "measured")
        hits = [it for it in t["items"] if cd._matches(it, r, int(str(conc)), cd.in_force(str(measured), t))]
        gpus = [it["prefill"][0] * it["prefill"][1] + it["decode"][0] * it["decode"][1] for it in hits]

        def total(p: dict[str, int]) -> int:
            return p["instances"] * p["tp"] * p.get("attention_dp", 1)

        mine = total(dep.pools["prefill"]) + total(dep.pools["decode"])
        assert mine == min(gpus) and len(hits) >= 2
        assert any(cd.pool_layout(*it["prefill"]) == dep.pools["prefill"] for it in hits)
    assert seen >= 20
