"""The torch harness on this CPU with tiny shapes: tables + provenance written and usable by the cost
model; the real serving loop and its comparison with the simulator on a handful of requests."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import sim  # noqa: F401  (initialises sim before hwprofiles' catalogue)
from hwprofiles import GPUSpec, ModelSpec
from hwprofiles.tables import load_tables
from sim.costmodel.build import build_physical
from sim.costmodel.models import TableCostConfig

torch = pytest.importorskip("torch")

SMALL = ModelSpec(
    name="harness-test",
    num_layers=2,
    hidden_size=128,
    num_heads=4,
    num_kv_heads=2,
    head_dim=32,
    intermediate_size=256,
    vocab_size=512,
    max_context=512,
    dtype_bytes=4,
)


@pytest.fixture(scope="module")
def tiny_tables(tmp_path_factory):
    from calibrate.harness import Plan, measure

    d = tmp_path_factory.mktemp("tables")
    return measure(SMALL, d, device="cpu", plan=Plan.tiny(), threads=1)


def test_harness_writes_tables_and_provenance(tiny_tables):
    d = tiny_tables
    for f in ("operators.csv", "attention.csv", "spread.csv", "provenance.yaml", "device.yaml", "model.yaml"):
        assert (d / f).exists(), f
    prov = yaml.safe_load((d / "provenance.yaml").read_text())
    for key in ("device", "driver", "torch", "date", "dtype_bytes", "threads"):
        assert key in prov
    assert prov["device_kind"] == "cpu" and prov["dtype_bytes"] == 4 and prov["plan"]["clock"] == "thread"
    t = load_tables(d)
    assert sorted(t.operators["num_tokens"]) == [1, 2, 4, 8, 12, 16, 24, 32]
    assert (t.operators[["attn_pre_proj", "mlp_up_proj", "lm_head", "add"]] > 0).all().all()
    assert set(t.attention["phase"]) == {"prefill", "decode"}
    spread = pd.read_csv(d / "spread.csv")
    assert (spread["p10_ms"] <= spread["median_ms"]).all() and (spread["median_ms"] <= spread["p90_ms"]).all()


def test_measured_tables_drive_the_table_kind(tiny_tables):
    hw = GPUSpec.model_validate(yaml.safe_load((tiny_tables / "device.yaml").read_text()))
    cm = build_physical(TableCostConfig(tables=str(tiny_tables), iteration_overhead_s=0.0), SMALL, hw, 1)
    ops = load_tables(tiny_tables).operators.set_index("num_tokens")
    assert cm.operator("mlp_up_proj", 8) * 1e3 == pytest.approx(ops.loc[8, "mlp_up_proj"], rel=1e-9)
    for n in (16, 32):  # every operator read from the table, not from noise: CPU timings need not grow with n
        assert cm.operator("mlp_up_proj", n) * 1e3 == pytest.approx(ops.loc[n, "mlp_up_proj"], rel=1e-9)
    t1 = cm.iteration([(16, 0)], 0, 0)
    assert t1 > 0
    # The same tables with every operator timing doubled must price the same iteration dearer.
    doubled = tiny_tables.parent / "doubled"
    shutil.copytree(tiny_tables, doubled, dirs_exist_ok=True)
    table = pd.read_csv(tiny_tables / "operators.csv")
    cols = list(table.columns[table.columns.get_loc("num_tokens") + 1 :])  # the timings follow the shape columns
    table[cols] = table[cols] * 2.0
    table.to_csv(doubled / "operators.csv", index=False)
    cm2 = build_physical(TableCostConfig(tables=str(doubled), iteration_overhead_s=0.0), SMALL, hw, 1)
    assert cm2.operator("mlp_up_proj", 16) == pytest.approx(2.0 * cm.operator("mlp_up_proj", 16), rel=1e-9)
    assert cm2.iteration([(16, 0)], 0, 0) > t1
    run = cm.decode_run(3, np.array([30.0, 60.0, 90.0]))
    assert run.tolist() == [float(cm.decode_run(3, np.array([x]))[0]) for x in (30.0, 60.0, 90.0)]


def test_cli_measure_tiny(tmp_path):
    from sim.tools.cli import app

    (tmp_path / "m.yaml").write_text(yaml.safe_dump(SMALL.model_dump(exclude={"num_params"})))
    r = CliRunner().invoke(
        app,
        [
            "calibrate",
            "measure",
            "--device",
            "cpu",
            "--model",
            str(tmp_path / "m.yaml"),
            "--out",
            str(tmp_path / "t"),
            "--tiny",
            "--max-tokens",
            "8",
            "--threads",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert sorted(load_tables(tmp_path / "t").operators["num_tokens"]) == [1, 2, 4, 8]
    assert "expect seconds on a CPU" in r.output  # the small model: said up front, and it was seconds
    bad = CliRunner().invoke(app, ["calibrate", "measure", "--device", "tpu", "--model", "llama-2-7b", "--out", "x"])
    assert bad.exit_code == 2 and "--device" in bad.output


def test_measure_says_how_big_and_slow_before_starting():
    """--tiny shrinks the grid, not the layers: an 8B model on a CPU is minutes and GBs, and says so first."""
    from calibrate.cli import work_estimate
    from hwprofiles import catalog

    msg = work_estimate(catalog.model("llama-3.1-8b"), 1, "fp32", "cpu")
    assert "expect minutes on a CPU" in msg
    gb = float(msg.split(" GB")[0].rsplit(" ", 1)[-1])
    assert 2.5 < gb < 4.5  # one layer (~218 M) + LM head (128256 x 4096 = 525 M) parameters in fp32
    assert "expect seconds" in work_estimate(SMALL, 1, "fp32", "cpu")


@pytest.mark.slow  # process start-up and gloo rendezvous: seconds to tens of seconds on a busy machine
def test_gloo_allreduce_two_workers():
    from calibrate.harness import Plan, measure_allreduce

    df = measure_allreduce("cpu", 2, Plan.tiny())
    assert set(df["num_workers"]) == {2} and (df["time_ms"] > 0).all() and len(df) >= 3


def test_real_run_and_simulation_agree_on_a_few_requests(tiny_tables):
    from calibrate.cpu_fidelity import price_iterations, request_errors, simulate
    from calibrate.realrun import Engine, add_latencies, measure_iterations, serve

    eng = Engine(SMALL, seed=3)
    work = pd.DataFrame(
        {"arrival_s": [0.0, 0.0, 0.0, 0.5], "prompt_tokens": [9, 20, 5, 12], "output_tokens": [3, 1, 6, 2]}
    )
    log = serve(work, engine=eng, max_num_seqs=8, max_num_batched_tokens=24)
    rq = log.requests
    assert len(rq) == 4 and (rq["first_token_s"] >= rq["arrival_s"]).all()
    assert (rq["completion_s"] >= rq["first_token_s"]).all()
    it = log.iterations
    # fcfs: 9 + 20 > 24 and 20 + 5 > 24, so the three prompts are three prefills; decodes never carry prefill
    assert it["prefill_tokens"].iloc[:3].tolist() == [9, 20, 5]
    assert ((it["prefill_seqs"] == 0) | (it["decode_seqs"] == 0)).all()
    assert it["decode_seqs"].sum() == (work["output_tokens"] - 1).sum()
    rows = measure_iterations([(8, 2, 0), (0, 2, 16)], engine=eng, reps=2, warmup=1)
    assert (rows["time_ms"] > 0).all()
    hw = GPUSpec.model_validate(yaml.safe_load((tiny_tables / "device.yaml").read_text()))
    cost = {"kind": "table", "tables": str(tiny_tables)}
    pred = price_iterations(build_physical(TableCostConfig(**cost), SMALL, hw, 1), it)
    assert (pred > 0).all()
    sim_rq = simulate(work, hw, cost, 8, 24, model=SMALL)
    assert len(sim_rq) == 4 and sim_rq["status"].astype(str).eq("completed").all()
    errs = request_errors(add_latencies(rq), sim_rq)
    assert set(errs) == {"ttft_s", "tpot_s", "e2el_s"}
