"""benchmarks/tpot_bounds.py: the work a row's own measurement implies, checked by hand on one row of the file."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage as cov
import tpot_bounds as tb

ROW = "nvidia_qwen3_32b_nvfp4_nvidia_qwen3_32b_nvfp4_b200_sxm_trtllm_agg_15000x500_c416_tp2_0_epnone_2"


@pytest.fixture
def rows(silicon_rows: pd.DataFrame) -> pd.DataFrame:
    return silicon_rows  # read once per session (tests/conftest.py)


@pytest.fixture
def one_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """coverage.scenario building the row as one instance, whatever replica reading is in force."""
    monkeypatch.setattr(cov, "replicas", lambda row: 1)


def test_prefill_and_kv_loads_by_hand(rows: pd.DataFrame, one_instance: None) -> None:
    """Qwen3-32B NVFP4, TP 2 on B200 as one instance, 416 clients, 15,000 / 500 tokens (a gap-analysis row: lengths
    exact), measured TTFT 719.28 ms, TPOT 13.656 ms. E2E = 0.71928 + 499 x 0.013656 = 7.5337 s, so 416 / 7.5337 =
    55.22 requests a second, 828k prompt tokens a second, each 2 x 32.762e9 FLOPs: 5.43e16 FLOP/s against two
    B200s' dense FP4 peak of 2 x 9e15 = 1.8e16 -> 3.02, three times what the GPUs can do at 100 %. KV: 416 -
    55.22 x 0.71928 = 376.3 decoders x 15,250 tokens x 131,072 B (64 layers x 8 KV heads x 128 x 2 at 8 bits)
    = 752 GB against 2 x 192.27 GB less 20.66 GB of weights (linear layers at 4.5 bits with their block scales,
    hwprofiles.specs.WEIGHT_BITS; embeddings at 16) = 363.9 GB -> 2.07."""
    r = rows.loc[ROW]
    b = tb.bounds(r)
    assert b is not None
    e2e = 0.71928 + 499 * float(r["silicon_tpot_ms"]) / 1e3
    rate = 416 / e2e
    assert rate == pytest.approx(55.22, abs=0.01)
    assert b["prefill_load"] == pytest.approx(rate * 15000 * 2 * 32.762106880e9 / (2 * 9e15), rel=1e-3)
    assert b["prefill_load"] == pytest.approx(3.02, abs=0.01)
    decoders = 416 - rate * float(r["silicon_ttft_ms"]) / 1e3
    weights = 1555824640 * 2.0 + (32762106880 - 1555824640) * 4.5 / 8
    free = 2 * 192265846784.0 - weights
    assert b["kv_load"] == pytest.approx(decoders * 15250 * 131072 / free, rel=1e-3)
    assert b["gpus"] == 2 and b["instances"] == 1
    assert tb.impossible(b)


def test_replicas_are_bounded_on_all_their_gpus(rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same row as coverage.scenario builds it under the replica reading (416 clients = 32 x batch 13, the
    aiconfigurator rule estimated_concurrency = agg_workers x max_batch_size): 32 instances of TP 2, 64 GPUs.
    The measured rate is the same, so the prefill load is 3.02 / 32 = 0.094, and each replica holds its own
    weights, so the KV room is 32 x 363.9 GB and the KV load 2.07 / 32 = 0.065: inside both bounds."""
    monkeypatch.setattr(cov, "READ_REPLICAS", True, raising=False)
    r = rows.loc[ROW]
    assert cov.replicas(r) == 32
    b = tb.bounds(r)
    assert b is not None and b["instances"] == 32 and b["gpus"] == 64
    monkeypatch.setattr(cov, "replicas", lambda row: 1)
    one = tb.bounds(r)
    assert one is not None and one["gpus"] == 2
    assert b["prefill_load"] == pytest.approx(one["prefill_load"] / 32, rel=1e-9)
    assert b["kv_load"] == pytest.approx(one["kv_load"] / 32, rel=1e-9)
    assert b["prefill_load"] == pytest.approx(0.094, abs=0.001) and b["kv_load"] == pytest.approx(0.065, abs=0.001)
    assert not tb.impossible(b)


def test_loads_scale_with_the_clients_and_spare_a_plausible_row(rows: pd.DataFrame, one_instance: None) -> None:
    """Twice the clients at the same measured times is twice the work; a 4-client row is far inside both bounds;
    disagg rows are not covered."""
    r = rows.loc[ROW].copy()
    b1 = tb.bounds(r)
    r["silicon_data_source"] = str(r["silicon_data_source"]).replace(
        "silicon_concurrency=416", "silicon_concurrency=832"
    )
    b2 = tb.bounds(r)
    assert b1 is not None and b2 is not None
    assert b2["prefill_load"] == pytest.approx(2 * b1["prefill_load"], rel=1e-9)
    small = rows[(rows["mode"] == "agg") & (rows["batch_size"] == 4)].iloc[0]
    bs = tb.bounds(small)
    assert bs is not None and bs["prefill_load"] < 0.5 and bs["kv_load"] < 0.5 and not tb.impossible(bs)
    assert tb.bounds(rows[rows["mode"] == "disagg"].iloc[0]) is None
