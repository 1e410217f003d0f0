"""benchmarks/coverage.py turns silicon rows into scenarios: layouts, precision and concurrency as the
rows mean them (checked on hand-picked rows of the shared file; skipped where it is not present)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

# loaded under its own name: `coverage` is also the coverage.py package pytest-cov imports
_SPEC = importlib.util.spec_from_file_location(
    "servesim_bench_coverage", Path(__file__).resolve().parents[1] / "benchmarks" / "coverage.py"
)
assert _SPEC is not None and _SPEC.loader is not None
cov = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cov)
layout = sys.modules["coverage_layout"]  # imported by coverage.py from benchmarks/

pytestmark = pytest.mark.skipif(not cov.CSV.exists(), reason="shared silicon_sample.csv not present")


@pytest.fixture
def rows(silicon_rows: pd.DataFrame) -> pd.DataFrame:
    return silicon_rows  # read once per session (tests/conftest.py)


def test_agg_dp_ep_row(rows: pd.DataFrame) -> None:
    r = rows.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp4_ep4_948"]
    assert cov.concurrency(r) == 256  # silicon_concurrency in the source column
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    # listed as attention_dp 16, moe_tp 4, ep 4 (16 GPUs on an 8-GPU node): the id's tp4_ep4 is 4 GPUs
    assert sc["cluster"] == {"tp": 1, "attention_dp": 4, "ep": 4, "moe_tp": 1}
    assert sc["quantization"] == {"weights": "fp4", "activations": "fp4", "kv_cache": "fp8"}
    assert cov.expressible(r) is None


def test_disagg_row_has_per_pool_layouts(rows: pd.DataFrame) -> None:
    r = rows[(rows["mode"] == "disagg") & (rows["prefill_attention_dp_size"] > 1)].iloc[0]
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    pre, dec = sc["cluster"]["prefill"], sc["cluster"]["decode"]
    assert pre["instances"] == int(r["prefill_num_workers"]) and dec["instances"] == int(r["decode_num_workers"])
    assert pre["attention_dp"] == int(r["prefill_attention_dp_size"])
    assert cov.expressible(r) is None


def test_dense_rows_ignore_moe_columns(rows: pd.DataFrame) -> None:
    r = rows[(rows["model_path"] == "Qwen/Qwen3-32B") & (rows["mode"] == "agg")].iloc[0]
    assert set(cov.scenario(r, cov._fixed_workload(1, r))["cluster"]) <= {"tp", "attention_dp"}


def test_single_node_layout_slip_read_back_from_the_id(rows: pd.DataFrame) -> None:
    """tp_size 64 = 8 x 8 on an 8-GPU H200 node: the id's tp8_ep8 (TensorRT-LLM `--tp_size=8 --ep_size=8`)."""
    r = rows.loc["2026_04_06_gpt_oss_120b_h200_sxm_trtllm_fp4_agg_8192x1024_c8_tp8_ep8_928"]
    assert (r["tp_size"], r["moe_tp_size"], r["moe_ep_size"]) == (64, 8, 8)
    assert cov.recorded_layout(r) == (8, 1, 1, 8)
    assert cov.scenario(r, cov._fixed_workload(1, r))["cluster"] == {"tp": 8, "ep": 8, "moe_tp": 1}
    v = rows.loc["2026_04_06_minimax_m2_5_h100_sxm_vllm_fp8_agg_8192x1024_c32_tp4_ep4_1322"]
    assert (v["tp_size"], v["attention_dp_size"], v["moe_tp_size"], v["moe_ep_size"]) == (4, 4, 1, 16)
    assert cov.recorded_layout(v) == (4, 1, 1, 4)


def test_layouts_that_fit_their_node_are_kept(rows: pd.DataFrame) -> None:
    ok = rows.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp4_ep4_948"]
    for _, r in rows.iterrows():
        gpus = cov._int(r["tp_size"]) * cov._int(r["attention_dp_size"])
        vllm_square = r["backend"] == "vllm" and r["tp_size"] == r["attention_dp_size"] > 1  # read back below
        if r["mode"] == "agg" and (gpus <= 8 or r["system"] in ("gb200", "gb300")) and not vllm_square:
            tp, dp = cov.recorded_layout(r)[:2]
            assert (tp, dp) == (cov._int(r["tp_size"]), cov._int(r["attention_dp_size"])), r["id"]
    # disagg pools span nodes (H100 DeepSeek prefill at tp 16): never rewritten
    d = rows[(rows["mode"] == "disagg") & (rows["prefill_tp_size"] == 16)].iloc[0]
    assert cov.recorded_layout(d, "prefill_")[0] == 16
    assert cov.recorded_layout(ok)[0] * cov.recorded_layout(ok)[1] == 4


def test_vllm_tp_ep_items_are_t_gpus(rows: pd.DataFrame) -> None:
    """vLLM's `{tp: T, ep: T}` items are listed tp T x attention_dp T, ep T^2 at every T; the recipes run T GPUs
    (`--tensor-parallel-size=$TP --enable-expert-parallel`), attention DP only for the dated `dp-attn` items."""
    sq = rows[(rows["backend"] == "vllm") & (rows["mode"] == "agg") & (rows["tp_size"] == rows["attention_dp_size"])]
    sq = sq[(sq["tp_size"] > 1) & (sq["moe_ep_size"] == sq["tp_size"] ** 2)]
    assert len(sq) == 97 and set(sq["tp_size"]) == {2.0, 4.0}
    two = rows.loc["2026_04_06_minimax_m2_5_b200_sxm_vllm_fp8_agg_1024x1024_c64_tp2_ep2_1395"]
    assert (two["tp_size"], two["attention_dp_size"], two["moe_ep_size"]) == (2, 2, 4)
    assert cov.recorded_layout(two) == (2, 1, 1, 2)
    assert cov.scenario(two, cov._fixed_workload(1, two))["cluster"] == {"tp": 2, "ep": 2, "moe_tp": 1}
    dp = rows.loc["minimaxm2_5_b200_vllm_fp4_agg_1024x1024_c512_cfg707"]  # measured 04-22, dp-attn item from 04-08
    assert cov.recorded_layout(dp) == (1, 2, 1, 2)
    early = dp.copy()
    early["silicon_data_source"] = str(dp["silicon_data_source"]).replace("2026-04-22", "2026-04-07")
    assert cov.recorded_layout(early) == (2, 1, 1, 2)  # before the dp-attn item was listed
    other = dp.copy()
    other["silicon_data_source"] = str(dp["silicon_data_source"]).replace(
        "silicon_concurrency=512", "silicon_concurrency=128"
    )
    assert cov.recorded_layout(other) == (2, 1, 1, 2)  # outside its conc range
    before = dp.copy()  # c256 the day before 13962fcfa (2026-04-22T04:01Z) widened the dp-attn item to 256-1024
    before["silicon_data_source"] = (
        str(dp["silicon_data_source"]).replace("2026-04-22", "2026-04-21").replace("concurrency=512", "concurrency=256")
    )
    assert cov.recorded_layout(before) == (2, 1, 1, 2)
    assert cov.recorded_layout(rows.loc["minimaxm2_5_b200_vllm_fp4_agg_1024x1024_c256_cfg707"]) == (1, 2, 1, 2)
    # 0c2467c15 lists c1024 in a non-DP and a dp-attn item: config 735 (which also ran c512) is the non-DP one
    assert cov.recorded_layout(rows.loc["minimaxm2_5_b300_vllm_fp8_agg_1024x1024_c1024_cfg735"]) == (2, 1, 1, 2)
    assert cov.recorded_layout(rows.loc["minimaxm2_5_b300_vllm_fp8_agg_1024x1024_c1024_cfg827"]) == (1, 2, 1, 2)
    on_dp = {i for i, r in sq.iterrows() if cov.recorded_layout(r)[1] > 1}
    assert len(on_dp) == 9 and {i.rsplit("_cfg", 1)[1] for i in on_dp} == {"707", "727", "827"}


def test_vllm_tp_ep_config_ids_are_one_item(rows: pd.DataFrame) -> None:
    """A config id is one search-space item: every row of it reads one layout (the reader decides per row, by date
    and conc, so a config whose rows split between DP and non-DP would be a misread item)."""
    sq = rows[(rows["backend"] == "vllm") & (rows["mode"] == "agg") & (rows["tp_size"] == rows["attention_dp_size"])]
    sq = sq[(sq["tp_size"] > 1) & (sq["moe_ep_size"] == sq["tp_size"] ** 2)]
    layouts: dict[str, set[tuple[int, int, int, int]]] = {}
    for _, r in sq.iterrows():
        cfg = re.search(r"config_id=(\d+)", str(r["silicon_data_source"]))
        if cfg:  # the 2026_04_06_* rows carry none
            layouts.setdefault(cfg.group(1), set()).add(cov.recorded_layout(r))
    assert len(layouts) == 12 and all(len(v) == 1 for v in layouts.values()), layouts


def test_vllm_tp_ep_rows_ran_an_item_in_force_on_their_day(rows: pd.DataFrame) -> None:
    """Every row of a dated config ran a conc some item in force on its day lists. This needs a commit on the row's
    day to count (fp4 B300 1k c1024 / c2048 of 2026-04-21 exist only from 633fd2377, 22:46Z that day)."""
    checked = 0
    for _, r in rows[(rows["backend"] == "vllm") & (rows["mode"] == "agg")].iterrows():
        versions = layout.VLLM_TP_EP_ITEMS.get((str(r["precision"]), str(r["system"]), int(r["isl"]), 2))
        if not versions or not (r["tp_size"] == r["attention_dp_size"] == 2 and r["moe_ep_size"] == 4):
            continue
        day = str(r["silicon_data_source"]).split("measured=")[1][:10]
        items = [it for d, _, it in versions if d <= day][-1]
        assert any(lo <= cov.concurrency(r) <= hi for _, lo, hi in items), r["id"]
        checked += 1
    assert checked == 21


def test_inferencex_lengths_are_uniform_between_0_8_and_1() -> None:
    r = pd.Series({"isl": 1024, "osl": 8192})
    p, o = cov.lengths(r, 20_000, "inferencex")
    assert p.min() == int(1024 * 0.8) and p.max() == 1024  # np.random.randint(int(L * 0.8), L + 1)
    assert o.min() == int(8192 * 0.8) and o.max() == 8192
    assert abs(p.mean() - (819 + 1024) / 2) < 3 and abs(o.mean() - (6553 + 8192) / 2) < 20
    fp, fo = cov.lengths(r, 5, "fixed")
    assert list(fp) == [1024] * 5 and list(fo) == [8192] * 5
    assert (cov.lengths(r, 50, "inferencex")[0] == cov.lengths(r, 50, "inferencex")[0]).all()  # seeded


def test_source_campaign(rows: pd.DataFrame) -> None:
    assert (
        cov.source(rows.loc["2026_04_06_gpt_oss_120b_h200_sxm_trtllm_fp4_agg_8192x1024_c8_tp8_ep8_928"]) == "inferencex"
    )
    gap = rows[rows["silicon_data_source"].str.contains("gap-analysis")].iloc[0]
    assert cov.source(gap) == "gap-analysis"


def test_recipe_streaming_goes_into_the_serving_engine(rows: pd.DataFrame) -> None:
    """The InferenceX recipes' stream interval is the scenario's `serving_engine.stream_interval` (the model then
    gives the client's TTFT/TPOT, tests/test_stream_interval.py); `fixed` keeps the default engine."""
    by = {
        b: rows[(rows["backend"] == b) & (rows.apply(cov.source, axis=1) == "inferencex")].iloc[0] for b in cov.ENGINES
    }
    assert cov.serving_engine(by["vllm"]) == {"kind": "vllm-v1"}
    sg = cov.serving_engine(by["sglang"])
    assert sg == {"kind": "sglang", "stream_interval": 10, "stream_first_token": True}  # at once: the rows refute
    assert cov.serving_engine(by["sglang"], sglang_first=False)["stream_first_token"] is False  # holding it
    # the first InferenceX TensorRT-LLM row ran a Dynamo image (Kimi-K2.5 GB200, `1.1.0-dev.2` is Dynamo's tag):
    # no TensorRT-LLM release read, so no MoE exchange term (benchmarks/coverage_trt_release.py)
    assert by["trtllm"]["backend_version"] == "1.1.0-dev.2"
    assert cov.serving_engine(by["trtllm"]) == {"kind": "trtllm", "stream_interval": 10, "stream_first_token": True}
    # a TensorRT-LLM 1.1.0rc2.post2 row (before PR #8950) carries the exchange rule, beside its recipe's DP terms
    old = rows.loc["2026_03_25_deepseek_r1_h200_sxm_trtllm_fp8_agg_8192x1024_c128_tp8_0_ep8_0_1246"]
    assert cov.serving_engine(old) == {
        "kind": "trtllm",
        "stream_interval": 10,
        "stream_first_token": True,
        "attention_dp_balance": True,
        "attention_dp_batching_wait_iters": 0,
        "attention_dp_timeout_iters": 60,
        "moe_alltoall_above_topk": True,
    }
    assert cov.serving_engine(by["sglang"], "fixed") == {}
    c, prompt, output = cov.load(by["sglang"])
    assert len(prompt) == len(output) == cov.WAVES * c
    assert prompt.min() >= int(0.8 * by["sglang"]["isl"]) and prompt.max() <= by["sglang"]["isl"]


def test_clients_beyond_one_batch_are_replicas(rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """416 clients at batch_size 13 on tp 2: 32 replicas (64 GPUs, as the same campaign's disagg rows of the model
    use 40 x 1 + 6 x 4), routed round robin; before, 416 clients went to one tp-2 instance (3,239 % TTFT)."""
    r = rows.loc["nvidia_qwen3_32b_nvfp4_nvidia_qwen3_32b_nvfp4_b200_sxm_trtllm_agg_15000x500_c416_tp2_0_epnone_2"]
    assert cov.replicas(r) == 32 and not cov.unrecorded_dp(r)
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    assert sc["cluster"] == {"tp": 2, "instances": 32, "router": {"kind": "round_robin"}}
    d = rows.loc["nvidia_qwen3_32b_nvfp4_nvidia_qwen3_32b_nvfp4_b200_sxm_trtllm_disagg_15000x500_c480_tp_epnone_1"]
    assert cov.replicas(d) == 1  # disagg rows list their workers


def test_replica_reading_is_not_gated_on_servesim_kv_fit(rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """One reading for every row of k x batch clients (trtllm.rule@581e459: estimated_concurrency = agg_workers x
    max_batch_size), whatever servesim's KV room: 128 clients x 5k tokens on one GB200 tp-2 instance of
    Qwen/Qwen3-32B fits its KV (the reading gated on servesim's fit left it one instance), yet it is 4 replicas."""
    q = rows.loc["qwen_qwen3_32b_qwen_qwen3_32b_gb200_trtllm_agg_4000x1000_c128_tp2_epnone_15"]
    assert cov.replicas(q) == 4 and cov.instances(q) == 4
    sc = cov.scenario(q, cov._fixed_workload(1, q))
    assert sc["cluster"] == {"tp": 2, "instances": 4, "router": {"kind": "round_robin"}}
    from sim.cluster.pools import pool_specs

    one = cov.load_scenario({**sc, "cluster": {"tp": 2}})
    assert pool_specs(one)[0].capacity.tokens >= 128 * (4000 + 1000)  # one instance holds the loop: no gate
    monkeypatch.setattr(cov, "READ_REPLICAS", False)  # `--no-replicas`: the same switch for every row
    for rid in (
        q["id"],
        "nvidia_qwen3_32b_nvfp4_nvidia_qwen3_32b_nvfp4_b200_sxm_trtllm_agg_15000x500_c416_tp2_0_epnone_2",
    ):
        assert "instances" not in cov.scenario(rows.loc[rid], cov._fixed_workload(1, rows.loc[rid]))["cluster"]


def test_moe_clients_of_tp_times_batch_are_attention_dp_ranks(rows: pd.DataFrame, monkeypatch) -> None:
    """80 clients, batch_size 10, tp 8, no DP listed, MoE: batch_size is per DP rank, the 8 GPUs are DP ranks."""
    r = rows.loc["nvidia_deepseek_r1_nvfp4_nvidia_deepseek_r1_nvfp4_b200_sxm_trtllm_agg_4000x1000_c80_tp8_epnone_3"]
    assert cov.unrecorded_dp(r) and cov.replicas(r) == 1
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    assert sc["cluster"] == {"tp": 1, "attention_dp": 8, "ep": 8, "moe_tp": 1}  # moe_ep_size 8 as listed
    # a gap-analysis row (deployment unrecorded, READ_GAP_ANALYSIS off): the harness's Sarathi budget, per rank
    assert sc["scheduler"]["kind"] == "sarathi" and sc["scheduler"]["token_budget"] == 8 * 8192
    # read through aiconfigurator's generator, TensorRT-LLM's scheduler reads max_num_tokens per rank itself
    # (aiconfigurator's rule: ceil32(512 + 4000 + 1500))
    import coverage_recipes_trt  # (benchmarks/ on the path via coverage)

    monkeypatch.setattr(coverage_recipes_trt, "READ_GAP_ANALYSIS", True)
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    assert sc["scheduler"] == {"kind": "trtllm", "max_batch_size": 512, "max_num_tokens": 6016}
    monkeypatch.setattr(cov, "READ_TRT_SCHEDULER", False)  # `--no-trt-scheduler`: the harness's Sarathi budget
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    assert sc["scheduler"]["token_budget"] == 8 * 8192  # TensorRT-LLM: a token budget per rank


def test_token_budget_per_attention_dp_rank_except_sglang() -> None:
    s = {"kind": "sarathi", "max_num_seqs": 256, "token_budget": 8192}
    assert cov.rank_budget(s, "trtllm", 4)["token_budget"] == 32768
    assert cov.rank_budget(s, "vllm", 2)["token_budget"] == 16384
    assert cov.rank_budget(s, "sglang", 8) == s  # SGLang divides --chunked-prefill-size by dp_size
    assert cov.rank_budget(s, "trtllm", 1) == s


def test_trtllm_recipe_context_holds(rows: pd.DataFrame) -> None:
    adp = rows.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp4_ep4_948"]
    eng = cov.serving_engine(adp)
    assert eng["attention_dp_balance"] and eng["attention_dp_timeout_iters"] == 60
    assert eng["attention_dp_batching_wait_iters"] == 0
    oss = rows.loc["2026_04_06_gpt_oss_120b_b200_sxm_trtllm_fp4_agg_1024x1024_c64_tp4_ep4_1904"]
    e = cov.serving_engine(oss)
    assert e["attention_dp_balance"] and "attention_dp_timeout_iters" not in e  # TRT-LLM's defaults 50 / 10
    tp = rows.loc["2026_04_06_gpt_oss_120b_h200_sxm_trtllm_fp4_agg_8192x1024_c8_tp8_ep8_928"]  # no attention DP
    assert not set(cov.serving_engine(tp)) & {"attention_dp_balance", "batch_wait_timeout_iters"}


def test_context_holds_follow_the_simulated_attention_dp(rows: pd.DataFrame) -> None:
    """An agg TensorRT-LLM row whose DP ranks are not listed (`unrecorded_dp`) is simulated with attention DP:
    it takes the recipe's attention-DP balance, never batch waiting (which TensorRT-LLM skips with attention DP).
    No InferenceX row is of that kind today, so one gap-analysis row is read as an InferenceX DeepSeek-R1 FP8
    1k/1k row at 80 clients on B200: by its listed layout (no DP) it would take `BATCH_WAIT`."""
    r = rows.loc[
        "nvidia_deepseek_r1_nvfp4_nvidia_deepseek_r1_nvfp4_b200_sxm_trtllm_agg_4000x1000_c80_tp8_epnone_3"
    ].copy()
    r["silicon_data_source"] = "source_file=2026-03-17.csv; silicon_concurrency=80"
    r["moe_quant_mode"], r["isl"], r["osl"] = "fp8", 1024, 1024
    assert cov.source(r) == "inferencex" and cov.unrecorded_dp(r) and cov.recorded_layout(r)[1] == 1
    assert cov.scenario(r, cov._fixed_workload(1, r))["cluster"]["attention_dp"] == 8
    assert cov.trtllm_holds(r) == cov.ADP_BALANCE["deepseek"]
    engine = cov.serving_engine(r)
    assert engine["attention_dp_balance"] is True and "batch_wait_timeout_iters" not in engine


def test_recipe_knobs_follow_the_inferencex_recipes(rows: pd.DataFrame) -> None:
    """SGLang's receive interval is 10 below 16 clients and 30 from 16 in the DeepSeek-R1 / Qwen3.5 B200 / B300
    recipes, absent elsewhere; the Llama-3.1-70B TensorRT-LLM recipes batch-wait (0.9, 20) at 1k/1k below TP 8
    with a 16,384-token budget (coverage_recipes.py)."""
    from coverage_recipes import recipe_terms

    def row(**kw: object) -> pd.Series:
        base = {**dict(rows.iloc[0]), "mode": "agg", "attention_dp_size": 1.0, "moe_tp_size": float("nan")}
        return pd.Series({**base, "moe_ep_size": 1.0, **kw})

    ds = row(model_path="deepseek-ai/DeepSeek-R1", system="b200_sxm", precision="fp4", backend="sglang", tp_size=8.0)
    ds["silicon_data_source"] = "source_file=2026-03-25.csv; measured=2026-03-25"
    chunk = {"token_budget": 16384}  # dsr1_fp4_b200.sh `--chunked-prefill-size 16384`
    no_radix = {"admission_reserve": "sglang_ignore_eos"}  # ... and `--disable-radix-cache`
    assert recipe_terms(ds, 8) == ({"scheduler_recv_interval": 10, **no_radix}, chunk)
    assert recipe_terms(ds, 16) == ({"scheduler_recv_interval": 30, **no_radix}, chunk)
    h200 = row(**{**dict(ds), "system": "h200_sxm", "precision": "fp8"})
    assert recipe_terms(h200, 16) == (no_radix, {"token_budget": 32768})  # no receive interval on H200
    assert recipe_terms(row(**{**dict(ds), "backend": "trtllm"}), 16) == ({}, {})
    q = row(model_path="Qwen/Qwen3.5-397B-A17B", system="b300_sxm", precision="fp8", backend="sglang", tp_size=4.0)
    q["silicon_data_source"] = "source_file=2026-04-03.csv; measured=2026-04-03"  # no recipe of the name read then
    assert recipe_terms(q, 64) == ({"scheduler_recv_interval": 10}, {"token_budget": 16384})  # a fixed 10
    mm = row(model_path="MiniMaxAI/MiniMax-M2.5", system="b200_sxm", precision="fp8", backend="vllm", isl=8192)
    late = "db-dump/2026-04-27; silicon_concurrency=4; measured=2026-04-08T00:00:00.000Z"
    graphs = {"cuda_graph_max_batch": 2048}  # --max-cudagraph-capture-size 2048, same recipe version (bddbf4031)
    assert recipe_terms(row(**{**dict(mm), "silicon_data_source": late}), 4) == (graphs, {"token_budget": 16384})
    early = late.replace("2026-04-08", "2026-03-28")  # before the recipe passed --max-num-batched-tokens
    assert recipe_terms(row(**{**dict(mm), "silicon_data_source": early}), 4) == ({}, {})
    ll = row(model_path="meta-llama/Llama-3.1-70B", system="h200_sxm", precision="fp8", backend="trtllm", tp_size=2.0)
    wait = {"batch_wait_timeout_iters": 20, "batch_wait_max_tokens_ratio": 0.9}
    assert recipe_terms(row(**{**dict(ll), "isl": 1024, "osl": 1024}), 4) == (wait, {"token_budget": 16384})
    assert recipe_terms(row(**{**dict(ll), "isl": 1024, "osl": 8192}), 4) == ({}, {"token_budget": 16384})
    assert recipe_terms(row(**{**dict(ll), "isl": 1024, "osl": 1024, "tp_size": 8.0}), 4)[0] == {}


def test_the_fit_split_keeps_each_configuration_on_one_side(rows: pd.DataFrame) -> None:
    """Every client count and prompt length of a deployment falls on one side of the split (a held-out row never
    shares its configuration with a fitted one), and both sides hold rows of every backend."""
    halves = rows.apply(cov.half, axis=1)
    sides = halves.groupby([rows[k].astype(str) for k in cov.CONFIG_KEYS]).nunique()
    assert (sides == 1).all()
    assert set(halves.groupby(rows["backend"]).nunique()) == {2}
    r = rows.iloc[0].copy()
    side = cov.half(r)
    r["batch_size"], r["isl"], r["osl"], r["id"] = 7, 123, 456, "another-id"
    assert cov.half(r) == side


def test_recipe_kv_cache_dtype_follows_the_recipe_in_force(rows: pd.DataFrame) -> None:
    """`--kv-cache-dtype fp8` (vLLM) / `fp8_e4m3` (SGLang) as the InferenceX recipe in force on the row's date passes
    it: MiniMax-M2.5 fp8 B300 from 340d7854c (2026-04-17), not the H200 recipe; SGLang DeepSeek-R1 fp8 B200 yes,
    H200 no; gap-analysis rows keep the engine default. The FP8 KV doubles the loop's KV room."""
    b300 = rows.loc["minimaxm2_5_b300_vllm_fp8_agg_8192x1024_c256_cfg732"]  # measured 2026-04-21
    assert cov.quantization(b300, cov.catalog.gpu("b300_sxm"))["kv_cache"] == "fp8"
    h200 = rows[(rows["model_path"] == "MiniMaxAI/MiniMax-M2.5") & (rows["system"] == "h200_sxm")].iloc[0]
    assert cov.quantization(h200, cov.catalog.gpu("h200_sxm"))["kv_cache"] == "bf16"
    early = b300.copy()
    early["silicon_data_source"] = str(b300["silicon_data_source"]).replace("2026-04-21", "2026-04-16")
    assert cov.quantization(early, cov.catalog.gpu("b300_sxm"))["kv_cache"] == "bf16"  # before the recipe passed it
    r1 = rows.loc["2026_03_25_deepseek_r1_b200_sxm_sglang_fp8_agg_1024x8192_c256_tp8_0_ep1_0_251"]
    assert cov.quantization(r1, cov.catalog.gpu("b200_sxm"))["kv_cache"] == "fp8"
    sg = rows[(rows["backend"] == "sglang") & (rows["system"] == "h200_sxm") & (rows["mode"] == "agg")]
    sg = sg[sg["model_path"].str.contains("DeepSeek") & ~sg["silicon_data_source"].str.contains("gap-analysis")]
    assert (sg.apply(lambda r: cov.quantization(r, cov.catalog.gpu("h200_sxm"))["kv_cache"], axis=1) == "bf16").all()
    gap = rows[rows["silicon_data_source"].str.contains("gap-analysis") & (rows["backend"] == "sglang")].iloc[0]
    assert cov.quantization(gap, cov.catalog.gpu(gap["system"]))["kv_cache"] == "bf16"

    from sim.cluster.pools import pool_specs
    from sim.config.scenario import load_scenario

    def tokens(r: pd.Series) -> int:
        return int(pool_specs(load_scenario(cov.scenario(r, cov._fixed_workload(1, r))))[0].capacity.tokens)

    assert tokens(b300) > 1.9 * tokens(early)  # the weights and reserve are the same, KV bytes halve


def test_sglang_disagg_recipe_prefill_chunk_and_fp8_kv(rows: pd.DataFrame) -> None:
    """srt-slurm gb200-fp8/8k1k/mid-curve.yaml (5 prefill workers tp 8 dp 8, 1 decode dp 32): `chunked-prefill-size:
    131072` on the prefill workers, `kv-cache-dtype: fp8_e4m3` on both; the decode pool keeps coverage's budget,
    and a TRT-LLM disagg row is untouched."""
    r = rows.loc["dsr1_gb200_sglang_fp8_disagg_8192x1024_c512_cfg253"]
    sc = cov.scenario(r, cov._fixed_workload(1, r))
    assert sc["cluster"]["prefill"]["scheduler"]["chunked_prefill_size"] == 131072  # (the `sglang` kind's chunk)
    assert "scheduler" not in sc["cluster"]["decode"]  # SGLang's instance budget stays 8,192 there
    assert sc["quantization"]["kv_cache"] == "fp8"
    b = rows.loc["dsr1_b200_sglang_fp8_disagg_8192x1024_c288_cfg641"]  # b200-fp8/8k1k: 8 ranks x 8192 per step
    assert (
        cov.scenario(b, cov._fixed_workload(1, b))["cluster"]["prefill"]["scheduler"]["chunked_prefill_size"] == 65536
    )
    g3 = rows[(rows["backend"] == "sglang") & (rows["mode"] == "disagg") & (rows["system"] == "gb300")]
    g3 = g3[g3["isl"] == 1024].iloc[0]  # GB300 1k/1k: no recipe read, nothing applied
    assert cov.quantization(g3, cov.catalog.gpu("gb300"))["kv_cache"] == "bf16"
    h = rows[(rows["backend"] == "sglang") & (rows["mode"] == "disagg") & (rows["system"] == "h200_sxm")].iloc[0]
    assert cov.quantization(h, cov.catalog.gpu("h200_sxm"))["kv_cache"] == "bf16"  # no recipe read there


def test_gpt_oss_trtllm_precision_follows_the_moe_backend(rows: pd.DataFrame) -> None:
    """openai/gpt-oss-120b ships MXFP4 experts; TensorRT-LLM's gpt-oss MoE support matrix runs them with MXFP8
    activations on Blackwell and BF16 ones on Hopper (TRITON, the H200 recipe's `moe_config.backend`), whatever the
    row's `nvfp4` mode column says. The H200 recipe's `kv_cache_config.dtype: auto` keeps the checkpoint's BF16 KV;
    the B200 recipe's `dtype: fp8` an FP8 one. Before s15-worst: W4A8 + FP8 KV on H200, W4A4 on Blackwell. Only the
    experts: the checkpoint keeps attention, router and embeddings BF16 (`modules_to_not_convert`); before s15-quant
    every GEMM ran at the experts' precision."""
    gpu = cov.catalog.gpu
    h200 = rows.loc["2026_04_06_gpt_oss_120b_h200_sxm_trtllm_fp4_agg_8192x1024_c8_tp8_ep8_928"]
    bf16 = {"weights": "bf16", "activations": "bf16"}
    assert cov.quantization(h200, gpu("h200_sxm")) == {
        **bf16,
        "kv_cache": "bf16",
        "experts": {"weights": "fp4", "activations": "bf16"},
    }
    b200 = rows.loc["2026_04_06_gpt_oss_120b_b200_sxm_trtllm_fp4_agg_1024x1024_c32_tp2_ep1_335"]
    w4a8 = {"weights": "fp4", "activations": "fp8"}
    assert cov.quantization(b200, gpu("b200_sxm")) == {**bf16, "kv_cache": "fp8", "experts": w4a8}
    gb200 = rows.loc["2026_03_25_gpt_oss_120b_gb200_trtllm_fp4_disagg_1024x1024_c4_tp1_0_ep1_0_1284"]
    assert cov.quantization(gb200, gpu("gb200")) == {**bf16, "kv_cache": "fp8", "experts": w4a8}
    # the gap-analysis H100 rows say fp8 and keep it for the experts (W8A8, FP8 KV): no recipe read, no MXFP4 in
    # their columns; attention stays the checkpoint's BF16
    gap = rows.loc["openai_gpt_oss_120b_openai_gpt_oss_120b_h100_sxm_trtllm_agg_4000x1000_c160_tp4_epnone_5"]
    w8a8 = {"weights": "fp8", "activations": "fp8"}
    assert cov.quantization(gap, gpu("h100_sxm")) == {**bf16, "kv_cache": "fp8", "experts": w8a8}
    # every other model's precision is unchanged by the gpt-oss rule: an NVFP4 DeepSeek-R1 on B200 stays W4A4
    r1 = rows.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp4_ep4_948"]
    assert cov.quantization(r1, gpu("b200_sxm"))["activations"] == "fp4"
    # the BF16 KV is twice the bytes a token: the H200 row's KV pool holds about half the tokens it did in FP8
    from sim.cluster.pools import pool_specs
    from sim.config.scenario import load_scenario

    sc = cov.scenario(h200, cov._fixed_workload(1, h200))
    bf16_kv = pool_specs(load_scenario(sc))[0].capacity.tokens
    as_fp8 = {**sc, "quantization": {**sc["quantization"], "kv_cache": "fp8"}}
    fp8 = pool_specs(load_scenario(as_fp8))[0].capacity.tokens
    assert 1.9 < fp8 / bf16_kv < 2.1


def test_fp4_weights_without_fp4_cores_run_weight_only(rows: pd.DataFrame) -> None:
    """An NVFP4 checkpoint on a GPU without FP4 tensor cores is dequantised into BF16 (W4A16: vLLM's Marlin FP4 on
    Hopper), never W4A8 as before s15-worst: the NVFP4 Qwen3-32B row read as if it had run on an H200 / H100."""
    r = rows[rows["model_path"] == "nvidia/Qwen3-32B-NVFP4"].iloc[0].copy()
    assert cov.quantization(r, cov.catalog.gpu(r["system"]))["activations"] == "fp4"  # on its own Blackwell GPU
    for system in ("h200_sxm", "h100_sxm"):
        r["system"] = system
        q = cov.quantization(r, cov.catalog.gpu(system))
        assert (q["weights"], q["activations"]) == ("fp4", "bf16")


def test_trt_kv_dtype_reads_only_inferencex_trtllm_rows(rows: pd.DataFrame) -> None:
    """`coverage_recipes_trt.kv_dtype`: BF16 for the gpt-oss H200 recipe only; None for other TensorRT-LLM rows
    (coverage.py's FP8), for other backends and for gap-analysis rows (no recipe read)."""
    import coverage_recipes_trt as trt

    assert trt.kv_dtype(rows.loc["2026_04_06_gpt_oss_120b_h200_sxm_trtllm_fp4_agg_8192x1024_c8_tp8_ep8_928"]) == "bf16"
    assert trt.kv_dtype(rows.loc["2026_04_06_gpt_oss_120b_b200_sxm_trtllm_fp4_agg_1024x1024_c32_tp2_ep1_335"]) is None
    assert trt.kv_dtype(rows.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp4_agg_8192x1024_c256_tp4_ep4_948"]) is None
    vllm = rows[(rows["backend"] == "vllm") & (rows["system"] == "h200_sxm")].iloc[0]
    assert trt.kv_dtype(vllm) is None
    gap = rows.loc["openai_gpt_oss_120b_openai_gpt_oss_120b_h100_sxm_trtllm_agg_4000x1000_c160_tp4_epnone_5"].copy()
    gap["system"] = "h200_sxm"  # a gap-analysis gpt-oss row on H200: no recipe read
    assert trt.kv_dtype(gap) is None
