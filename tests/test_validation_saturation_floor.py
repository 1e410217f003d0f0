"""benchmarks/validation_saturation_floor.py: the saturation flag on each side's queue (branch s14-sat), by hand."""

from __future__ import annotations

import pandas as pd

from benchmarks.validation_saturation import side, side_queue
from benchmarks.validation_saturation_floor import corrected, key, low_row, queue_s


def _r(meas: float, simd: float) -> dict:
    return {"ttft": {"measured_s": meas, "simulated_s": simd}}


def test_queue_is_ttft_above_the_sides_own_low_load_ttft() -> None:
    assert queue_s(3.0, 0.5) == 2.5
    assert queue_s(1.0, 2.0) == 0.0  # faster than at low load: no queue, never negative
    assert queue_s(3.0, float("nan")) == 3.0  # no low-load row: the TTFT proxy
    c = corrected(_r(1.88, 0.41), {"measured_s": 2.15, "simulated_s": 0.04})
    assert c["ttft"]["measured_s"] == 0.0 and abs(c["ttft"]["simulated_s"] - 0.37) < 1e-12


def test_a_per_request_time_is_not_a_queue() -> None:
    # TensorRT-LLM B200 disagg 1k/1k: 2.15 s measured already at 4 clients (servesim 0.04 s), 1.88 s at 1,024
    # (servesim 0.41 s). The TTFT proxy flags it (1.88 > 1 s and > 3 x 0.41); neither side queued.
    r, low = _r(1.88, 0.41), {"measured_s": 2.15, "simulated_s": 0.04}
    assert side(r) == "measured"
    assert side_queue(r, low) is None
    # the same row with the measured TTFT 8 s: 5.85 s of queue against 0.37 s, still measured-only
    assert side_queue(_r(8.0, 0.41), low) == "measured"
    # no low-load row: the TTFT proxy alone
    assert side_queue(r, None) == "measured"


def test_the_queue_test_never_adds_a_flag() -> None:
    # measured 1.32 s, servesim 1.72 s: the TTFT proxy flags neither; the queues alone (0 vs 1.36 s) would flag
    # servesim, the conjunction does not (a 30 % TTFT gap is not one side saturating alone)
    r, low = _r(1.32, 1.72), {"measured_s": 1.33, "simulated_s": 0.36}
    assert side(corrected(r, low)) == "servesim"
    assert side_queue(r, low) is None


def _row(rid: str, c: int, ttft_ms: float, image: str = "img:1") -> dict:
    return {
        "id": rid,
        "silicon_data_source": f"source_file=2026-03-25.csv; silicon_concurrency={c}; image={image}",
        "model_path": "m", "system": "b200_sxm", "backend": "trtllm", "mode": "agg", "precision": "fp8",
        "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "tp_size": 8, "pp_size": 1, "attention_dp_size": 1,
        "moe_tp_size": 1, "moe_ep_size": 8, "isl": 1024, "osl": 1024, "backend_version": "1.2",
        "batch_size": c, "silicon_ttft_ms": ttft_ms, "silicon_tpot_ms": 20.0,
    }  # fmt: skip


def _table(rows: list[dict]) -> pd.DataFrame:
    for p in ("prefill_", "decode_"):
        for k in ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size", "num_workers"):
            for r in rows:
                r.setdefault(f"{p}{k}", float("nan"))
    df = pd.DataFrame(rows)
    df["_key"] = [key(r) for _, r in df.iterrows()]
    df["_c"] = [int(r["batch_size"]) for _, r in df.iterrows()]
    return df.set_index("id", drop=False)


def test_low_row_is_the_lightest_load_of_the_same_deployment() -> None:
    df = _table(
        [
            _row("c4", 4, 300.0),
            _row("c8", 8, 320.0),
            _row("c256", 256, 5000.0),
            _row("other_image_c2", 2, 9000.0, image="img:2"),  # another deployment: never the floor
            _row("c16", 16, 700.0),
        ]
    )
    lo = low_row(df, df.loc["c256"])
    assert lo is not None and lo["id"] == "c4"
    # at most half the row's clients and at most 8: c8's floor is c4, c4 has none
    lo8 = low_row(df, df.loc["c8"])
    assert lo8 is not None and lo8["id"] == "c4"
    assert low_row(df, df.loc["c4"]) is None


def test_low_rows_that_disagree_are_two_deployments() -> None:
    df = _table([_row("a", 4, 300.0), _row("b", 4, 2970.0), _row("c64", 64, 4500.0)])
    assert low_row(df, df.loc["c64"]) is None  # 2970 > 2 x 300: no floor, the TTFT proxy stays
    df = _table([_row("a", 4, 300.0), _row("b", 4, 500.0), _row("c", 4, 400.0), _row("c64", 64, 4500.0)])
    lo = low_row(df, df.loc["c64"])
    assert lo is not None and lo["silicon_ttft_ms"] == 400.0  # the median duplicate


def test_throughput_is_littles_law_and_the_knee_reads_its_growth() -> None:
    from benchmarks.validation_saturation import knee
    from benchmarks.validation_saturation_floor import elasticity, throughput

    # 64 clients, TTFT 0.4 s, TPOT 20 ms, osl 1000: decode 0.02 x 899 = 17.98 s, X = 64 / 18.38
    assert abs(throughput(0.4, 0.02, 1000, 64) - 64 / 18.38) < 1e-9
    # the same deployment at 128 clients with TTFT 18.78 s: X = 128 / 36.76 = 64 / 18.38, flat -> elasticity 0
    df = _table([_row("c64", 64, 400.0) | {"osl": 1000}, _row("c128", 128, 18780.0) | {"osl": 1000}])
    e, lighter = elasticity(df, df.loc["c128"])
    assert lighter == 64 and abs(e) < 1e-9
    assert knee(e) == "past the knee"
    # TTFT unchanged at 128 clients: X doubles, elasticity 1: below the knee (whatever the TTFT is)
    df = _table([_row("c64", 64, 4000.0) | {"osl": 1000}, _row("c128", 128, 4000.0) | {"osl": 1000}])
    e, _ = elasticity(df, df.loc["c128"])
    assert abs(e - 1.0) < 1e-9 and knee(e) == "below the knee"
    assert elasticity(df, df.loc["c64"])[1] == 0  # no lighter row
    assert knee(float("nan")) == "no lighter row"
