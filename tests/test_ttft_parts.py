"""benchmarks/ttft_parts.py: the release a silicon row names, and a simulated TTFT split into its parts (by hand)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "servesim_bench_ttft_parts", Path(__file__).resolve().parents[1] / "benchmarks" / "ttft_parts.py"
)
assert _SPEC is not None and _SPEC.loader is not None
parts = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(parts)


@pytest.mark.parametrize(
    ("src", "want"),
    [
        ("db-dump/2026-04-27; config_id=733; workflow_run_id=758; vllm/vllm-openai:v0.19.0-cu130", "v0.19.0-cu130"),
        ("x; image=nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.1.post2", "0.8.1.post2"),
        ("x; nvcr.io#nvidia/tensorrt-llm/release:1.2.0rc6.post3", "1.2.0rc6.post3"),
        ("gap-analysis; dynamo_version=0.9.0; silicon_concurrency=16", "dynamo 0.9.0"),
        ("source_file=2026.csv; wip=False", "-"),
    ],
)
def test_release(src: str, want: str) -> None:
    assert parts.release(src) == want


def test_parts_by_hand() -> None:
    # two clients; request 0 and 1 arrive at 0 (first wave), request 2 at 1.0 (later). Request 1 waits 0.1 s,
    # prefills 0.2 s, its KV copy takes 0.05 s and it waits 0.05 s for the decode batch; the rest is 0.01 s.
    df = pd.DataFrame(
        {
            "arrival_s": [0.0, 0.0, 1.0],
            "first_scheduled_s": [0.0, 0.1, 1.0],
            "first_token_s": [0.2, 0.3, 1.2],
            "kv_transfer_s": [np.nan, 0.05, np.nan],
            "decode_wait_s": [np.nan, 0.05, np.nan],
            "ttft_s": [0.2, 0.41, 0.2],
        }
    )
    got = parts.parts_of(df, clients=2)
    assert got["queue"] == pytest.approx(1e3 * 0.1 / 3)
    assert got["prefill"] == pytest.approx(200.0)
    assert got["kv"] == pytest.approx(1e3 * 0.05 / 3)
    assert got["wait"] == pytest.approx(1e3 * 0.05 / 3)
    assert got["rest"] == pytest.approx(1e3 * 0.01 / 3)
    assert got["first_wave"] == pytest.approx(305.0)
    assert got["later"] == pytest.approx(200.0)
    # the parts add up to the mean TTFT
    assert sum(got[k] for k in ("queue", "prefill", "kv", "wait", "rest")) == pytest.approx(1e3 * df["ttft_s"].mean())


def _pair_rows() -> pd.DataFrame:
    """Two configurations, each at a 1,024- and an 8,192-token prompt. Config A: measured = simulated + 100 ms at
    both prompts (a per-request miss). Config B: simulated slope 10 ms per 1k mean prompt tokens, measured slope
    30 (a per-token miss of 20 ms per 1k) and no miss at the short prompt. The mean prompt is 0.9 x isl."""
    ktok = 0.9 * (8192 - 1024) / 1e3
    rows = []
    for cfg, short_sim, short_meas, sim_slope, meas_slope in (("A", 50.0, 150.0, 10.0, 10.0),
                                                              ("B", 80.0, 80.0, 10.0, 30.0)):  # fmt: skip
        rows.append({"backend": "x", "system": "g", "cfg": cfg, "prompt": "short", "isl": 1024,
                     "measured_ms": short_meas, "sim_ms": short_sim})  # fmt: skip
        long_meas, long_sim = short_meas + meas_slope * ktok, short_sim + sim_slope * ktok
        rows.append({"backend": "x", "system": "g", "cfg": cfg, "prompt": "long", "isl": 8192,
                     "measured_ms": long_meas, "sim_ms": long_sim})  # fmt: skip
    # a configuration with only the short prompt is no pair
    rows.append({"backend": "x", "system": "g", "cfg": "C", "prompt": "short", "isl": 1024,
                 "measured_ms": 1.0, "sim_ms": 1.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_pair_table_splits_the_miss_by_hand() -> None:
    pairs = parts.pair_table(_pair_rows(), ["backend", "system", "cfg"]).set_index("cfg")
    assert list(pairs.index) == ["A", "B"]
    assert pairs.loc["A", "miss_short"] == pytest.approx(100.0)
    assert pairs.loc["A", "miss_long"] == pytest.approx(100.0)
    assert pairs.loc["A", "miss_slope"] == pytest.approx(0.0, abs=1e-9)
    assert pairs.loc["A", "slope_ratio"] == pytest.approx(1.0)
    assert pairs.loc["B", "miss_short"] == pytest.approx(0.0, abs=1e-9)
    assert pairs.loc["B", "meas_slope"] == pytest.approx(30.0)
    assert pairs.loc["B", "sim_slope"] == pytest.approx(10.0)
    assert pairs.loc["B", "miss_slope"] == pytest.approx(20.0)
    assert pairs.loc["B", "slope_ratio"] == pytest.approx(3.0)
    assert pairs.loc["B", "miss_long"] == pytest.approx(20.0 * 0.9 * 7.168)


def test_pair_tests_report_the_medians() -> None:
    pairs = parts.pair_table(_pair_rows(), ["backend", "system", "cfg"])
    (line,) = parts.pair_tests(pairs)
    assert line.startswith("x: 2 pairs")
    assert "short prompt 50 ms" in line  # median of 100 and 0
    assert "slope miss +10.0 ms per 1k tokens" in line  # median of 0 and 20
    assert "by GPU {'g': 10.0}" in line


def test_carry_table_by_hand() -> None:
    # configuration A missed 100 and 120 ms at low load with the short prompt (median 110) and 300 with the long;
    # at higher load it misses 150 ms (short) and 300 ms (long). Configuration B has no low-load row: dropped.
    low = pd.DataFrame({"cfg": ["A", "A", "A"], "prompt": ["short", "short", "long"],
                        "measured_ms": [200.0, 220.0, 600.0], "sim_ms": [100.0, 100.0, 300.0],
                        "silicon_tpot_ms": [4.0, 6.0, 5.0]})  # fmt: skip
    high = pd.DataFrame({"cfg": ["A", "A", "B"], "prompt": ["short", "long", "short"],
                         "measured_ms": [400.0, 900.0, 50.0], "sim_ms": [250.0, 600.0, 40.0],
                         "clients": [10, 10, 10], "osl": [1000, 1000, 1000],
                         "silicon_tpot_ms": [10.0, 10.0, 10.0], "tpot_ms": [8.0, 8.0, 8.0]})  # fmt: skip
    got = parts.carry_table(high, low, ["cfg"]).set_index("prompt")
    assert list(got.index) == ["short", "long"]
    assert got.loc["short", "low_miss"] == pytest.approx(110.0)
    assert got.loc["short", "rest"] == pytest.approx(40.0)
    assert got.loc["long", "low_miss"] == pytest.approx(300.0)
    assert got.loc["long", "rest"] == pytest.approx(0.0)
    assert got.loc["short", "err"] == pytest.approx(250.0 / 400.0 - 1)
    assert got.loc["short", "err_low"] == pytest.approx(360.0 / 400.0 - 1)
    assert got.loc["long", "err_low"] == pytest.approx(0.0)
    # short: E2E 0.4 + 899 x 0.01 = 9.39 s, 10 clients -> 1.065 prompts/s x 0.110 s = 0.117 of each second
    assert got.loc["short", "stall"] == pytest.approx(10 / 9390.0 * 110.0)
    assert got.loc["short", "tpot_x_stall"] == pytest.approx(1 / (1 - 10 / 9390.0 * 110.0))
    assert got.loc["short", "tpot_x_meas"] == pytest.approx(1.25)
    assert got.loc["short", "miss_x"] == pytest.approx(150.0 / 110.0)
    assert got.loc["short", "tpot_x_load"] == pytest.approx(10.0 / 5.0)  # the low-load TPOT is the median, 5 ms


def _load_rows() -> pd.DataFrame:
    # deployment A at 1k/1k measured at 32, 64 and 128 clients, and at 8k/1k at 64 and 128; B at 1k/1k at 64 only
    # (no doubling: dropped). Simulated first waves grow x2 per doubling.
    return pd.DataFrame({
        "backend": ["trtllm"] * 6, "dep": ["A", "A", "A", "A", "A", "B"],
        "isl": [1024, 1024, 1024, 8192, 8192, 1024], "osl": [1024] * 6,
        "clients": [32, 64, 128, 64, 128, 64],
        "meas_ms": [300.0, 400.0, 600.0, 1000.0, 2000.0, 50.0], "sim_ms": [200.0, 250.0, 350.0, 800.0, 1300.0, 40.0],
        "first_wave": [500.0, 1000.0, 2000.0, 4000.0, 8000.0, 100.0],
        "meas_tpot": [10.0, 12.0, 18.0, 20.0, 30.0, 5.0], "sim_tpot": [10.0, 12.0, 15.0, 20.0, 25.0, 5.0],
        "kvu_max": [0.1, 0.2, 0.3, 0.4, 0.5, 0.1], "in_sample": [False] * 5 + [True],
    })  # fmt: skip


def test_load_steps_by_hand() -> None:
    got = parts.load_steps(_load_rows(), ["backend", "dep", "isl", "osl"]).set_index(["isl", "lo"])
    assert sorted(got.index) == [(1024, 32), (1024, 64), (8192, 64)]
    one = got.loc[(1024, 64)]
    assert one["hi"] == 128
    assert one["d_meas"] == pytest.approx(200.0)
    assert one["d_sim"] == pytest.approx(100.0)
    assert one["rest"] == pytest.approx(100.0)
    assert one["burst"] == pytest.approx(100.0)  # (2000 - 1000) / 10 waves
    assert one["burst_x"] == pytest.approx(1.0)
    assert one["tpot_growth_meas"] == pytest.approx(1.5)
    assert one["tpot_growth_sim"] == pytest.approx(1.25)
    # E2E at 128 clients: 600 + (0.9 x 1024 - 1) x 18 ms = 17,170.8 ms; 128 / 17.1708 s x 921.6 prompt tokens
    assert one["tok_s"] == pytest.approx(128 / 17.1708 * 921.6)
    assert one["kvu_max"] == pytest.approx(0.3)  # the higher load's
    assert got.loc[(1024, 32), "rest"] == pytest.approx(50.0)  # 100 - 50
    assert got.loc[(8192, 64), "rest"] == pytest.approx(500.0)  # 1000 - 500
    assert got.loc[(8192, 64), "burst_x"] == pytest.approx(500.0 / 400.0)


def test_load_tests_compare_lengths_and_doublings() -> None:
    steps = parts.load_steps(_load_rows(), ["backend", "dep", "isl", "osl"])
    lines = parts.load_tests(steps, ["backend", "dep"])
    assert lines[0].startswith("trtllm: median rest by isl/osl 1024/1024: 75 ms (n=2), 8192/1024: 500 ms (n=1)")
    # the prompt-length comparison pairs the 64 -> 128 doublings of A: 100 ms at 1k in, 500 ms at 8k in
    assert any("1 pairs): rest at 1k in 100 ms, at 8k in 500 ms" in line for line in lines)
    assert not any("output length" in line for line in lines)  # no 1k/8k rows


def test_load_tests_output_length_and_two_doublings() -> None:
    # one deployment: 1k/1k and 1k/8k at 64 and 128 clients; 8k/1k at 32, 64 and 128
    rows = pd.DataFrame({
        "backend": ["sglang"] * 7, "dep": ["A"] * 7,
        "isl": [1024, 1024, 1024, 1024, 8192, 8192, 8192], "osl": [1024, 1024, 8192, 8192, 1024, 1024, 1024],
        "clients": [64, 128, 64, 128, 32, 64, 128],
        "meas_ms": [400.0, 700.0, 300.0, 350.0, 500.0, 800.0, 1600.0],
        "sim_ms": [300.0, 400.0, 250.0, 280.0, 400.0, 600.0, 1000.0],
        "first_wave": [1000.0, 2000.0, 1000.0, 2000.0, 1000.0, 2000.0, 4000.0],
        "meas_tpot": [10.0] * 7, "sim_tpot": [10.0] * 7, "kvu_max": [0.1] * 7, "in_sample": [False] * 7,
    })  # fmt: skip
    steps = parts.load_steps(rows, ["backend", "dep", "isl", "osl"])
    lines = parts.load_tests(steps, ["backend", "dep"])
    # rest 1k/1k: 300 - 100 = 200; 1k/8k: 50 - 30 = 20; 8k/1k: 300 - 200 = 100, then 800 - 400 = 400
    assert any("(same deployment, doubling, prompt ~1k; 1 pairs): rest at 1k out 200 ms, at 8k out 20 ms" in x
               for x in lines)  # fmt: skip
    assert any("8k/1k, two doublings in a row (1 deployments): rest 100 ms, then 400 ms" in x for x in lines)
    # burst_x at 8k/1k: 100 / ((2000 - 1000) / 10) = 1.0 and 400 / 200 = 2.0: median 1.5
    assert any("burst_x median 1.50" in x for x in lines)


def test_slope_burst_by_hand() -> None:
    # deployment A: low-load slopes 1.5 and 2.5 times the simulated ones (median 2.0); B has no low-load pair
    steps = pd.DataFrame({"dep": ["A", "B"], "burst": [300.0, 100.0], "rest": [250.0, 10.0]})
    pairs = pd.DataFrame({"dep": ["A", "A"], "slope_ratio": [1.5, 2.5]})
    got = parts.slope_burst(steps, pairs, ["dep"])
    assert list(got["dep"]) == ["A"]
    assert got["slope_ratio"].iloc[0] == pytest.approx(2.0)
    assert got["pred_rest"].iloc[0] == pytest.approx(300.0)  # (2 - 1) x the simulated burst's 300 ms
