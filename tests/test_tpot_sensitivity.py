"""benchmarks/tpot_sensitivity.py: each reading is on inside its block only, and does what it says by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tpot_sensitivity as sens

from sim.costmodel import engine as engine_mod
from sim.costmodel.structured import StructuredCost
from tests.test_costmodel_moe_kernels import _curved


def test_group_width_reads_the_wide_curve_inside_the_block_only() -> None:
    cost, curves = _curved()
    roof = max(2 * 20 * 64 * 200 / 1e12, (64 * 200 * 10 * 2 + (20 * 64 + 20 * 200) * 2) / 1e9)
    with sens.reading("group-width"):
        assert cost.gemm("moe_up", 20, 64, 200, 10.0) == pytest.approx(roof * 1.25, rel=1e-12)  # (64, 2000): wide
        assert curves.asked[-1] == (64.0, 2000.0)
        one = cost.gemm("moe_up", 20, 64, 200)  # one matrix: no group to widen
        assert curves.asked[-1] == (64.0, 200.0) and one == pytest.approx(
            max(2 * 20 * 64 * 200 / 1e12, (64 * 200 + 20 * 264) * 2 / 1e9) * 3.0
        )
    assert cost.gemm("moe_up", 20, 64, 200, 10.0) == pytest.approx(roof * 3.0, rel=1e-12)  # one expert's (64, 200)
    assert StructuredCost.gemm.__name__ == "gemm" and "_curve" not in vars(cost)


def test_no_eager_moe_host_is_restored() -> None:
    before = engine_mod.PRESETS["vllm-v1"]["eager_host_per_moe_layer_s"]
    assert before > 0
    with sens.reading("no-eager-moe-host"):
        assert engine_mod.preset("vllm-v1").eager_host_per_moe_layer_s == 0.0
    assert engine_mod.preset("vllm-v1").eager_host_per_moe_layer_s == before
    with pytest.raises(ValueError), sens.reading("nonsense"):
        pass
