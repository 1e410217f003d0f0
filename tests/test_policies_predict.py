"""Length predictors, max-token clipping, traffic classes and routers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sim
from policies.predictors import Bucket, BucketConfig, Noisy, NoisyConfig, Rank, RankConfig, kendall_tau
from policies.routers import Llumnix, freeness
from sim.workload.generate import build_requests
from tests.helpers import scenario, write_csv


# -- predictors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.2, 0.5, 0.8, 1.0])
def test_rank_predictor_hits_its_kendall_tau(tau):
    rng = np.random.default_rng(1)
    true = np.maximum(1, rng.lognormal(5.0, 1.0, 4000).astype(np.int64))
    pred = Rank(RankConfig(tau=tau)).predict(true, true, np.random.default_rng(2))
    assert kendall_tau(pred, true) == pytest.approx(tau, abs=0.03)
    assert sorted(pred.tolist()) == sorted(true.tolist())  # same marginal: the true lengths, reordered


def test_noisy_predictor_spread_and_bias():
    true = np.full(20000, 200)
    pred = Noisy(NoisyConfig(sigma=0.5)).predict(true, true, np.random.default_rng(0))
    assert np.std(np.log(pred / 200)) == pytest.approx(0.5, rel=0.03)
    assert Noisy(NoisyConfig(sigma=0.0, bias=np.log(2))).predict(true, true, np.random.default_rng(0))[0] == 400


def test_noisy_predictor_at_its_bounds_stays_finite_positive_int64():
    """sigma = |bias| = 10 (the most a scenario accepts) on 10M-token outputs: tails of e^40 and more once
    overflowed the int64 cast (negative predictions, a RuntimeWarning); they saturate instead, no warning."""
    true = np.full(100_000, 10_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hi = Noisy(NoisyConfig(sigma=10, bias=10)).predict(true, true, np.random.default_rng(0))
        lo = Noisy(NoisyConfig(sigma=10, bias=-10)).predict(true, true, np.random.default_rng(0))
    assert hi.dtype == np.int64 and hi.min() >= 1 and hi.max() == 2**62  # the top tail saturates
    assert lo.min() == 1 and np.median(lo) == pytest.approx(10_000_000 * np.exp(-10), rel=0.1)
    with pytest.raises(ValueError, match="less than or equal to 10"):
        NoisyConfig(sigma=100)


def test_bucket_predictor():
    true = np.array([1, 100, 101, 250])
    exact = Bucket(BucketConfig(bucket_tokens=100)).predict(true, true, np.random.default_rng(0))
    assert exact.tolist() == [100, 100, 200, 300]
    mid = Bucket(BucketConfig(bucket_tokens=100, report="mid")).predict(true, true, np.random.default_rng(0))
    assert mid.tolist() == [50, 50, 150, 250]
    many = np.full(10000, 150)
    noisy = Bucket(BucketConfig(bucket_tokens=100, accuracy=0.7)).predict(many, many, np.random.default_rng(0))
    assert np.mean(noisy == 200) == pytest.approx(0.7, abs=0.02)
    assert set(noisy.tolist()) == {100, 200, 300}


def test_predictions_are_seeded_and_stored(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.01 * i, 10, 5 + 7 * i) for i in range(30)])
    sc = scenario(tr, predictor={"kind": "noisy", "sigma": 0.7})
    a = build_requests(sim.load_scenario(sc)).predicted
    b = build_requests(sim.load_scenario(sc)).predicted
    c = build_requests(sim.load_scenario({**sc, "seed": 1})).predicted
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    df = sim.run(sc).requests
    assert df["predicted_tokens"].tolist() == a.tolist()


# -- admission: max-token clipping -------------------------------------------------------------------------------
def test_max_tokens_clips_outputs_and_counts_them(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 5), (0.0, 10, 100), (0.0, 10, 30)])
    res = sim.run(scenario(tr, admission={"max_tokens": 20}))
    df = res.requests
    assert df["output_tokens"].tolist() == [5, 20, 20]
    assert df["generated_tokens"].tolist() == [5, 20, 20]
    assert df["clipped"].tolist() == [False, True, True]
    assert res.summary["counts"]["clipped"] == 2
    plain = sim.run(scenario(tr))
    assert "clipped" not in plain.summary["counts"]


# -- classes ----------------------------------------------------------------------------------------------------
def test_classes_are_drawn_by_share(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.001 * i, 10, 3) for i in range(2000)])
    sc = scenario(tr)
    sc["workload"]["classes"] = [{"name": "a", "share": 3, "priority": 0}, {"name": "b", "share": 1, "priority": 5}]
    res = sim.run(sc)
    df = res.requests
    assert (df["class"] == "a").mean() == pytest.approx(0.75, abs=0.03)
    assert (df.loc[df["class"] == "b", "priority"] == 5).all()
    assert res.summary["classes"]["a"]["counts"]["arrived"] + res.summary["classes"]["b"]["counts"]["arrived"] == 2000


def test_trace_class_must_be_known(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,prompt_tokens,output_tokens,class\n0.0,10,3,gold\n")
    sc = scenario(p)
    sc["workload"]["classes"] = [{"name": "a", "share": 1}]
    with pytest.raises(sim.ServesimError, match="gold"):
        sim.run(sc)


# -- routers ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("router", ["random", "power_of_two", "least_kv", "llumnix"])
def test_routers_spread_load_deterministically(tmp_path, router):
    tr = write_csv(tmp_path / "t.csv", [(0.01 * i, 20, 30) for i in range(200)])
    a = sim.run(scenario(tr, instances=4, router=router)).requests
    b = sim.run(scenario(tr, instances=4, router=router)).requests
    assert a["instance"].tolist() == b["instance"].tolist()
    counts = a["instance"].value_counts()
    assert len(counts) == 4 and counts.min() >= 20


def test_power_of_two_beats_random_on_balance(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.002 * i, 50, 60) for i in range(400)])
    e2e = {
        r: sim.run(scenario(tr, instances=8, router=r)).requests["e2el_s"].mean() for r in ("random", "power_of_two")
    }
    assert e2e["power_of_two"] < e2e["random"]


def test_least_kv_and_llumnix_avoid_the_loaded_instance(tmp_path):
    # R0 (long) lands on instance 0 (empty cluster, ties to the lowest index); R1 then sees instance 0 holding
    # KV and goes to instance 1
    tr = write_csv(tmp_path / "t.csv", [(0.0, 200, 500), (1.0, 10, 5)])
    for router in ("least_kv", "llumnix"):
        df = sim.run(scenario(tr, instances=2, router=router)).requests
        assert df["instance"].tolist() == [0, 1], router


class _FakeInst:
    def __init__(self, free: int, waiting_need: list[int], running: int) -> None:
        self.num_blocks = 100
        self._used = 100 - free
        self.waiting = [type("R", (), {"need": n})() for n in waiting_need]
        self.running = [None] * running

    def kv_used_blocks(self) -> int:
        return self._used

    def admit_blocks(self, req) -> int:
        return req.need


def test_llumnix_freeness_formula():
    # (free − waiting demand) / running; an instance with nothing running counts its free blocks whole
    assert freeness(_FakeInst(60, [10, 10], 4)) == pytest.approx(10.0)
    assert freeness(_FakeInst(30, [], 0)) == pytest.approx(30.0)
    assert freeness(_FakeInst(20, [30], 2)) == pytest.approx(-5.0)
    insts = [_FakeInst(60, [10, 10], 4), _FakeInst(30, [], 2), _FakeInst(90, [85], 1)]
    assert Llumnix().route(None, insts, 0.0) == 1  # 15 per running request beats 10 and 5
