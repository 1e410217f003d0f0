"""The vLLM TPOT split's pure parts (benchmarks/tpot_vllm_split.py), by hand: the MoE kernel vLLM's backend oracle
picks per precision / GPU / EP, the sequences-per-rank bands at their edges, the per-layer step deficit, and the
group medians (with a second file's on the same rows only)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tpot_vllm_split as split


def test_moe_kernel_follows_the_oracle() -> None:
    # oracle/fp8.py: Hopper block FP8 puts Triton first without EP, FlashInfer CUTLASS first with EP
    assert split.moe_kernel("fp8", "h200_sxm", 1) == "triton"
    assert split.moe_kernel("fp8", "h100_sxm", 4) == "flashinfer-cutlass"
    # elsewhere FlashInfer TRTLLM-Gen heads the list (FP8 and NVFP4)
    assert split.moe_kernel("fp8", "b200_sxm", 1) == "flashinfer-trtllm"
    assert split.moe_kernel("fp4", "b300_sxm", 4) == "flashinfer-trtllm"
    assert split.moe_kernel("int4", "h200_sxm", 1) == "marlin"
    assert split.moe_kernel("bf16", "h200_sxm", 1) == "other"


@pytest.mark.parametrize(("seqs", "name"), [(1, "<=8"), (8, "<=8"), (9, "9-64"), (64, "9-64"), (65, "65-256")])
def test_band_edges(seqs: int, name: str) -> None:
    assert split.band(seqs) == name


def test_deficit_per_layer() -> None:
    # MiniMax-M2.5 H200 c4: measured 7.958 ms, simulated 5.390 ms, 62 MoE layers -> 2.568 ms / 62 = 41.42 us
    assert split.deficit_per_layer_us(7.958, 5.390, 62) == pytest.approx(41.419, abs=1e-3)
    assert split.deficit_per_layer_us(20.0, 30.0, 50) == pytest.approx(-200.0)  # too slow: negative
    with pytest.raises(ValueError):
        split.deficit_per_layer_us(1.0, 1.0, 0)


def test_groups_medians_and_other_on_same_rows() -> None:
    base = {"kind": "moe", "gpu": "h200_sxm", "precision": "fp8", "moe_kernel": "triton", "layout": "tp8", "sign": "x"}
    a = pd.DataFrame(
        [
            {**base, "id": "a", "band": "<=8", "tpot_err": -0.30},
            {**base, "id": "b", "band": "<=8", "tpot_err": -0.10},
            {**base, "id": "c", "band": "9-64", "tpot_err": 0.40},
        ]
    )
    g = split.groups(a)
    by_band = {d["group"]: d for d in g["band"]}
    assert by_band["<=8"]["n"] == 2
    assert by_band["<=8"]["signed"] == pytest.approx(-0.20)
    assert by_band["<=8"]["abs"] == pytest.approx(0.20)
    assert by_band["9-64"]["abs"] == pytest.approx(0.40)
    other = pd.DataFrame([{"id": "a", "tpot_err": 0.05}, {"id": "c", "tpot_err": -0.10}])  # no row "b"
    g2 = split.groups(a, other)
    small = {d["group"]: d for d in g2["band"]}["<=8"]
    assert small["n"] == 1  # only the rows both files hold
    assert small["signed"] == pytest.approx(-0.30) and small["after_signed"] == pytest.approx(0.05)
    assert {d["group"] for d in g2["moe_kernel x band"]} == {"triton / <=8", "triton / 9-64"}
