"""Disaggregated serving: the first token reaches the client from the decode worker
(`serving_engine.disagg_first_token: decode`, the `sglang` and `trtllm` presets) or from the prefill worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import sim
from sim.costmodel.engine import preset
from sim.output.metrics import decode_first_token

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "regression" / "disagg-2p2d.yaml"


def test_decode_first_token_by_hand():
    # taken into the decode batch at 1.0 s; 11 tokens, the last at 2.0 s: 10 decode steps of 0.1 s,
    # the first ending at 1.1 s. Not handed off (NaN ready): the prefill's first token stays.
    first = np.array([0.5, 0.5, 0.5])
    ready = np.array([1.0, np.nan, 1.0])
    completion = np.array([2.0, 2.0, 1.0])
    output = np.array([11, 11, 1])
    got = decode_first_token(first, ready, completion, output)
    assert got.tolist() == pytest.approx([1.1, 0.5, 1.0])


def test_handed_off_but_not_admitted_has_no_first_token():
    # handed off (ready = +inf: `decode_wait_s` still NaN when the run stopped): no first token at the client,
    # never the prefill's 0.5 s
    got = decode_first_token(np.array([0.5, 0.5]), np.array([np.inf, np.inf]), np.array([np.nan, np.nan]),
                             np.array([11, 1]))  # fmt: skip
    assert np.isnan(got).all()


def test_decode_admission_first_token_by_hand():
    # SGLang: the token leaves as the decode worker admits the request (1.0 s), no step of its own; the 10 decode
    # steps that follow end at 2.0 s, so a client's TPOT is (2.0 - 1.0) / 10 = 0.1 s, the step itself
    first = np.array([0.5, 0.5, 0.5, 0.5])
    ready = np.array([1.0, np.nan, 1.0, np.inf])
    completion = np.array([2.0, 2.0, 1.0, np.nan])
    output = np.array([11, 11, 1, 11])
    got = decode_first_token(first, ready, completion, output, at_admission=True)
    assert got[:3].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert np.isnan(got[3])  # handed off, not admitted when the run stopped: no first token yet


def test_presets_stream_disaggregated_first_tokens_from_decode():
    assert preset("trtllm").disagg_first_token == "decode"
    assert preset("sglang").disagg_first_token == "decode_admission"  # process_batch_result_prebuilt
    assert preset("vllm-v1").disagg_first_token == "prefill"  # servesim's default, as before


def _run(engine: dict) -> tuple:
    data = yaml.safe_load(SCENARIO.read_text())
    data["workload"]["num_requests"] = 60
    data["serving_engine"] = engine
    res = sim.run(sim.load_scenario(data))
    return res.requests, engine


def test_disaggregated_ttft_ends_on_the_decode_side():
    fe = 2e-3  # the presets' front end
    pre, _ = _run({"kind": "trtllm", "disagg_first_token": "prefill"})
    dec, _ = _run({"kind": "trtllm"})
    # same run either way: only what the client sees moves
    assert np.array_equal(pre["completion_s"], dec["completion_s"], equal_nan=True)
    assert np.allclose(pre["ttft_s"], pre["first_token_s"] - pre["arrival_s"] + fe)
    moved = dec["kv_transfer_s"].notna() & (dec["output_tokens"] > 1)
    assert moved.sum() > 0
    d = dec[moved]
    assert (d["decode_wait_s"] >= 0).all()
    ready = d["first_token_s"] + d["kv_transfer_s"] + d["decode_wait_s"]  # taken into the decode batch
    want = ready + (d["completion_s"] - ready) / (d["output_tokens"] - 1) - d["arrival_s"] + fe
    assert np.allclose(d["ttft_s"], want)
    assert (d["ttft_s"] > pre.loc[moved, "ttft_s"]).all()  # later by the KV copy and one decode step
    # TPOT as a client computes it: (E2E - TTFT) / (output - 1), so it shrinks by as much as TTFT grew
    assert np.allclose(d["tpot_s"], (d["e2el_s"] - d["ttft_s"]) / (d["output_tokens"] - 1))


def test_run_stopped_before_decode_admission_leaves_no_client_first_token():
    data = yaml.safe_load(SCENARIO.read_text())
    data["workload"]["num_requests"] = 60
    data["serving_engine"] = {"kind": "trtllm"}
    full = sim.run(sim.load_scenario(data)).requests
    handed = full[full["kv_transfer_s"].notna()]
    # stop the clock just after one handed-off request's KV is usable, before the decode side takes it
    r = handed.iloc[len(handed) // 2]
    data["engine"] = {**data.get("engine", {}), "horizon_s": float(r["first_token_s"] + r["kv_transfer_s"]) + 1e-9}
    cut = sim.run(sim.load_scenario(data)).requests
    waiting = cut["kv_transfer_s"].notna() & cut["decode_wait_s"].isna()
    assert waiting.any()  # the horizon leaves some request between hand-off and admission
    assert cut.loc[waiting, "ttft_s"].isna().all()  # never the prefill's first token


def test_decode_admission_is_one_decode_step_before_decode():
    # the same run (admission is what the client sees, not what the engine does): the decode-side first token
    # moves from the end of the first decode step to its start, by the request's own mean decode step exactly
    fe = 2e-3
    dec, _ = _run({"kind": "trtllm"})
    adm, _ = _run({"kind": "trtllm", "disagg_first_token": "decode_admission"})
    assert np.array_equal(dec["completion_s"], adm["completion_s"], equal_nan=True)
    moved = adm["kv_transfer_s"].notna() & (adm["output_tokens"] > 1)
    assert moved.sum() > 0
    a = adm[moved]
    admitted = a["first_token_s"] + a["kv_transfer_s"] + a["decode_wait_s"]
    assert np.allclose(a["ttft_s"], admitted - a["arrival_s"] + fe)
    step = (a["completion_s"] - admitted) / (a["output_tokens"] - 1)
    assert np.allclose(dec.loc[moved, "ttft_s"] - a["ttft_s"], step)
    assert np.allclose(a["tpot_s"], step)  # every remaining token is one decode step after the last
