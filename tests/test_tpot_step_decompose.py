"""benchmarks/tpot_step_decompose.py: one silicon row's decode step, by hand — the batch is the row's clients, the
context the closed loop's mean, and the operators add up to what the decode run charges."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage as cov
import tpot_step_decompose as dec

from sim.cluster.pools import pool_specs
from sim.config.scenario import load_scenario

ROW = "2026_04_06_minimax_m2_5_h100_sxm_vllm_fp8_agg_1024x1024_c64_tp4_ep4_1327"


def test_step_of_one_row_by_hand(silicon_rows: pd.DataFrame) -> None:
    row = silicon_rows.loc[ROW]
    n, ctx, ops = dec.step(row)
    assert n == 64  # one instance, all 64 clients decoding
    assert ctx == int(64 * 0.9 * (1024 + 512))  # mean lengths 0.9 x (isl + osl / 2)
    sc = cov.scenario(row, cov._fixed_workload(1, row))
    sc["serving_engine"] = {**cov.serving_engine(row), **cov.recipe_terms(row, 64)[0]}
    cost = pool_specs(load_scenario(sc))[0].cost
    assert sum(ops.values()) == pytest.approx(float(cost.decode_run(64, np.array([float(ctx)]))[0]), rel=1e-9)
    assert ops["moe_experts"] > 0.5 * sum(ops.values())  # this row's step is mostly routed experts
