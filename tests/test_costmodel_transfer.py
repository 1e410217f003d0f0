"""Efficiency curves transferred to GPUs without tables: checked by pretending A100 had none, transferring
H100's curves onto it, and comparing with A100's own measured operator rows (held out entirely)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest

from hwprofiles import catalog
from hwprofiles.tables import MEASURED_DIR, load_tables, spec_from_shape
from sim.costmodel.build import build_physical
from sim.costmodel.models import RooflineCost, RooflineCostConfig, _efficiency
from sim.costmodel.transfer import RidgeShifted, launch_floors, nearest_measured

GEMMS = ("mlp_up_proj", "mlp_down_proj")
ELEMENTWISE = ("input_layernorm", "post_attention_layernorm", "add", "mlp_act")


def _errors(cost: RooflineCost, rows: pd.DataFrame, op: str) -> np.ndarray:
    m = rows["num_tokens"].to_numpy(np.int64)
    measured = rows[op].to_numpy(np.float64) * 1e-3
    pred = np.array([cost.operator(op, int(x)) for x in m])
    return np.abs(pred / measured - 1)


def test_transfer_h100_to_a100_beats_the_spec_sheet() -> None:
    a100, h100 = catalog.gpu("a100-80g"), catalog.gpu("h100-sxm")
    tables = load_tables(MEASURED_DIR / "a100-80g")
    ops = tables.operators
    rows = ops[(ops["tp"] == 1)]
    shape = rows.iloc[0]
    rows = rows[(rows[["n_head", "n_embd"]] == shape[["n_head", "n_embd"]]).all(axis=1)]
    model = spec_from_shape("held-out", shape)
    root = MEASURED_DIR / "h100-sxm"
    transferred = RooflineCost(
        RooflineCostConfig(),
        model,
        a100,
        1,
        fallback=_efficiency(root.resolve(), h100.bf16_flops, h100.mem_bw),
        floors=launch_floors(root.resolve()),
        transferred_from="h100-sxm",
    )
    spec = RooflineCost(RooflineCostConfig(efficiency="constant"), model, a100, 1)
    # elementwise kernels: the spec sheet's constant 80 % of bandwidth is far off at small sizes (A100: 40-60 %
    # median error); H100's curves carry the launch-bound shape over
    t_err = np.concatenate([_errors(transferred, rows, op) for op in ELEMENTWISE])
    s_err = np.concatenate([_errors(spec, rows, op) for op in ELEMENTWISE])
    assert np.median(t_err) < 0.2
    assert np.median(t_err) < 0.5 * np.median(s_err)
    # GEMMs: within 20 % of A100's own measurements (the spec sheet's 0.7 happens to suit A100's MLPs too)
    assert np.median(np.concatenate([_errors(transferred, rows, op) for op in GEMMS])) < 0.2


def test_gpus_without_tables_say_where_their_curves_come_from() -> None:
    m = catalog.model("llama-3.1-8b")
    a40, b200_src = nearest_measured(catalog.gpu("a40")), nearest_measured(catalog.gpu("b200"))
    assert a40 is not None and a40.name == "a100-80g"
    assert b200_src is not None and b200_src.name == "h100-sxm"
    b200 = build_physical(RooflineCostConfig(), m, catalog.gpu("b200"), 1)
    assert b200.provenance["gemm"].startswith("transferred from h100-sxm")
    assert build_physical(RooflineCostConfig(), m, catalog.gpu("h100"), 1).provenance["gemm"].startswith("measured")
    const = build_physical(RooflineCostConfig(efficiency="constant"), m, catalog.gpu("b200"), 1)
    assert const.provenance["gemm"].startswith("spec-sheet")


def test_launch_floor_holds_small_kernels_up() -> None:
    m, b200 = catalog.model("llama-3.1-8b"), catalog.gpu("b200")
    cost = build_physical(RooflineCostConfig(), m, b200, 1)
    floor = launch_floors((MEASURED_DIR / "h100-sxm").resolve())["input_layernorm"]
    assert cost.operator("input_layernorm", 1) >= floor * 0.999
    assert floor > 0
    assert cost.operator("mlp_up_proj", 1) == pytest.approx(max(cost.operator("mlp_up_proj", 1), floor))


def _held_out_gemm_error(shifted: bool) -> float:
    """Median |error| of A100's own GEMM rows priced with H100's curves, read at the same M or at the same
    position relative to the ridge point."""
    a100, h100 = catalog.gpu("a100-80g"), catalog.gpu("h100-sxm")
    ops = load_tables(MEASURED_DIR / "a100-80g").operators
    rows = ops[(ops["tp"] == 1)]
    shape = rows.iloc[0]
    rows = rows[(rows[["n_head", "n_embd"]] == shape[["n_head", "n_embd"]]).all(axis=1)]
    root = (MEASURED_DIR / "h100-sxm").resolve()
    eff = _efficiency(root, h100.bf16_flops, h100.mem_bw)
    shift = math.log((a100.bf16_flops / a100.mem_bw) / (h100.bf16_flops / h100.mem_bw)) if shifted else 0.0
    cost = RooflineCost(
        RooflineCostConfig(),
        spec_from_shape("held-out", shape),
        a100,
        1,
        fallback=RidgeShifted(eff, shift),
        floors=launch_floors(root),
        transferred_from="h100-sxm",
    )
    return float(np.median(np.concatenate([_errors(cost, rows, op) for op in GEMMS])))


def test_ridge_shift_brings_transferred_gemms_closer() -> None:
    # reading H100's curves at M x ridge(H100)/ridge(A100) fits A100's held-out GEMMs better than at the same M
    # (a shift of the wrong sign or size would not)
    assert _held_out_gemm_error(True) < 0.9 * _held_out_gemm_error(False)


def test_equal_ridge_keeps_the_transferred_curves() -> None:
    # a GPU with the source's exact FLOP/byte ratio (shift 0) still takes the curves, not the spec-sheet constant
    m, h100 = catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm")
    same = h100.model_copy(update={"name": "h100-renamed"})
    near = h100.model_copy(update={"name": "h100-renamed", "mem_bw": h100.mem_bw * (1 + 1e-12)})
    a = build_physical(RooflineCostConfig(), m, same, 1)
    b = build_physical(RooflineCostConfig(), m, near, 1)
    assert a.provenance["gemm"].startswith("transferred from h100-sxm")
    assert a.operator("mlp_up_proj", 256) == pytest.approx(b.operator("mlp_up_proj", 256), rel=1e-9)


def test_ridge_shifted_copies_without_recursion() -> None:
    h100 = catalog.gpu("h100-sxm")
    r = RidgeShifted(_efficiency((MEASURED_DIR / "h100-sxm").resolve(), h100.bf16_flops, h100.mem_bw), 0.5)
    c = copy.copy(r)
    assert c.shift == 0.5 and c.gemm_curve(4096, 4096) == r.gemm_curve(4096, 4096)
