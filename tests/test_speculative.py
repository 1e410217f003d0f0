"""Speculative decoding: tokens per step against the closed form, hand-computed steps, conservation, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from hwprofiles import ModelSpec
from sim.core.engine import Simulation
from sim.core.recorder import COMPLETED
from sim.core.speculative import Speculation, expected_tokens
from sim.errors import ServesimError
from tests.helpers import TINY_MODEL, scenario, write_csv
from tests.strategies import examples, linear_costs, request_rows

# linear cost: verify = 0.01 + 0.001 × (k + 1) × n; each draft step of a one-layer head = 0.01 + 0.002 × n
LIN = {"kind": "linear", "base_s": 0.01, "per_prefill_token_s": 0.001, "per_decode_seq_s": 0.002}


def _sc(tmp_path, rows, spec, **kw):
    sc = scenario(write_csv(tmp_path / "t.csv", rows), **kw)
    sc["speculative"] = spec
    return sc


def test_expected_tokens_closed_form():
    assert expected_tokens([0.8, 0.6, 0.4]) == pytest.approx(1 + 0.8 + 0.48 + 0.192)
    assert expected_tokens([0.5] * 4) == pytest.approx(1 + 0.5 + 0.25 + 0.125 + 0.0625)
    assert expected_tokens([1.0] * 3) == 4.0 and expected_tokens([0.0] * 3) == 1.0


@pytest.mark.parametrize("rates", [[0.7] * 4, [0.9, 0.7, 0.5, 0.3, 0.1], [0.3]])
def test_draws_match_the_closed_form(rates):
    """Mean accepted tokens over 200 000 draws within 5 standard errors of Σ_i Π_{j≤i} a_j; the
    distribution of the count matches P(accepted = i) = Π_{j≤i} a_j (1 − a_{i+1})."""
    spec = Speculation(rates, np.random.default_rng(7), lambda n, c: 0.0)
    acc = spec.draw(200_000)
    mean = expected_tokens(rates) - 1
    assert abs(acc.mean() - mean) < 5 * acc.std() / np.sqrt(len(acc))
    k = len(rates)
    p = [float(np.prod(rates[:i])) * (1 - (rates[i] if i < k else 0.0)) for i in range(k + 1)]
    freq = np.bincount(acc, minlength=k + 1) / len(acc)
    assert freq == pytest.approx(p, abs=0.005)


def test_simulated_tokens_per_step_and_conservation(tmp_path):
    """A long run: every output token is generated exactly once, and the tokens emitted per verified
    sequence-step match the closed form (less the cap at each request's last step)."""
    rows = [(0.1 * i, 32, 400) for i in range(40)]
    res = sim.run(_sc(tmp_path, rows, {"kind": "mtp", "num_tokens": 3, "acceptance": 0.6}, cost=LIN))
    df = res.requests
    assert (df["generated_tokens"] == 400).all()
    sp = res.summary["speculative"]
    assert sp["tokens"] == 40 * 399  # the first token of each comes from the prefill
    assert sp["tokens_per_step"] == pytest.approx(expected_tokens([0.6] * 3), rel=0.03)


def test_hand_computed_step(tmp_path):
    """One request, acceptance 1: every step emits k + 1 = 3 tokens. Prefill 0.01 + 10·0.001 = 0.02; each
    step drafts 2 head steps (0.01 + 0.002 each) and verifies 3 tokens (0.01 + 3·0.001): 0.037."""
    spec = {"kind": "eagle", "num_tokens": 2, "acceptance": 1.0}
    df = sim.run(_sc(tmp_path, [(0.0, 10, 7)], spec, cost=LIN)).requests
    r = df.iloc[0]
    assert r["first_token_s"] == pytest.approx(0.02)
    # 6 tokens after the first: two steps of 3
    assert r["completion_s"] == pytest.approx(0.02 + 2 * 0.037)
    assert r["tpot_s"] == pytest.approx(2 * 0.037 / 6)
    # acceptance 0: one token per step, each step still pays for the draft
    df0 = sim.run(_sc(tmp_path, [(0.0, 10, 7)], {**spec, "acceptance": 0.0}, cost=LIN)).requests
    assert df0.iloc[0]["completion_s"] == pytest.approx(0.02 + 6 * 0.037)


def test_draft_model_cost_and_capped_last_step(tmp_path):
    """draft_model: k sequential decode steps of the draft model; the last step emits only what is left."""
    draft = {**TINY_MODEL, "name": "tiny-draft", "num_layers": 1}
    spec = {"kind": "draft_model", "num_tokens": 4, "acceptance": 1.0, "draft_model": draft}
    sc = _sc(tmp_path, [(0.0, 10, 8)], spec, cost=LIN)
    df = sim.run(sc).requests
    step = 4 * (0.01 + 0.002) + (0.01 + 5 * 0.001)  # linear: the draft model costs what the target does
    # 7 tokens after the first: 5 + 2 (capped)
    assert df.iloc[0]["completion_s"] == pytest.approx(0.02 + 2 * step)
    assert df.iloc[0]["generated_tokens"] == 8
    # the draft's weights come off the KV memory: 1 of the tiny model's 2 layers, its embeddings in full
    block = 16 * 512  # the tiny model's KV per 16-token block; the GPU leaves exactly 10 000 of them
    left = (10_000 * block - ModelSpec(**draft).weight_bytes(1)) // block
    assert Simulation(sim.load_scenario(sc)).capacity.num_blocks == left < 10_000


def test_same_seed_same_result_and_seed_matters(tmp_path):
    rows = [(0.05 * i, 20 + i, 50 + 3 * i) for i in range(30)]
    spec = {"kind": "eagle", "num_tokens": 4, "acceptance": [0.9, 0.7, 0.5, 0.3]}
    a = sim.run(_sc(tmp_path, rows, spec, cost=LIN)).requests
    b = sim.run(_sc(tmp_path, rows, spec, cost=LIN)).requests
    c = sim.run(_sc(tmp_path, rows, spec, cost=LIN, seed=1)).requests
    assert a["completion_s"].tolist() == b["completion_s"].tolist()
    assert a["completion_s"].tolist() != c["completion_s"].tolist()


@pytest.mark.parametrize("kind", ["sarathi", "priority", "mlfq"])
def test_other_schedulers_conserve_tokens_under_memory_pressure(tmp_path, kind):
    """Mixed steps (chunked prefill) and per-request schedulers: with little KV memory requests are preempted
    and recomputed, yet every token is generated once and no block leaks."""
    rows = [(0.01 * i, 40, 60) for i in range(25)]
    spec = {"kind": "mtp", "num_tokens": 2, "acceptance": 0.7}
    sc = sim.load_scenario(_sc(tmp_path, rows, spec, cost=LIN, kv_blocks=40, scheduler={"kind": kind}))
    run = Simulation(sc).run()
    assert (run.log.generated == 60).all() and run.log.done == 25
    assert all(inst.allocator.free == inst.allocator.total for inst in run.instances)
    assert run.log.preemptions.sum() > 0


def test_bad_speculative_sections(tmp_path):
    base = _sc(tmp_path, [(0.0, 10, 5)], None, cost=LIN)
    for spec, msg in [
        ({"kind": "eagle", "num_tokens": 3, "acceptance": [0.5, 0.5]}, "one per draft token"),
        ({"kind": "eagle", "num_tokens": 2, "acceptance": 1.5}, "probabilities"),
        ({"kind": "draft_model", "num_tokens": 2, "acceptance": 0.5}, "draft_model"),
        ({"kind": "draft_model", "num_tokens": 2, "acceptance": 0.5, "draft_model": "nope"}, "nope"),
    ]:
        with pytest.raises(ServesimError, match=msg):
            sim.run({**base, "speculative": spec})


def test_mixed_step_verifies_decodes_beside_a_prefill(tmp_path):
    """sarathi, acceptance 1, k = 2. A: prefill [0, 0.02]; speculative step [0.02, 0.057] (3 tokens). B arrives
    at 0.021: the next iteration mixes B's 10-token prefill with A's verification — draft 2 × 0.012, verify
    0.01 + 0.001 × (10 + 3) — ending 0.104, where A has its 7 tokens; B then takes two steps of 0.037."""
    spec = {"kind": "eagle", "num_tokens": 2, "acceptance": 1.0}
    rows = [(0.0, 10, 7), (0.021, 10, 7)]
    for ff in (True, False):
        sc = _sc(tmp_path, rows, spec, cost=LIN, scheduler={"kind": "sarathi"}, fast_forward=ff)
        df = sim.run(sc).requests
        assert df["completion_s"][0] == pytest.approx(0.104)
        assert df["first_token_s"][1] == pytest.approx(0.104)
        assert df["completion_s"][1] == pytest.approx(0.104 + 2 * 0.037)


@settings(max_examples=examples(25))
@given(
    rows=st.lists(request_rows(1.0, 80, 50), min_size=1, max_size=15),
    cost=linear_costs,
    k=st.integers(1, 5),
    a=st.floats(0.0, 1.0),
    sched=st.sampled_from([{"kind": "fcfs"}, {"kind": "sarathi", "token_budget": 32}, {"kind": "sjf"}]),
    blocks=st.sampled_from([12, 1000]),
)
def test_property_every_token_once_no_block_leak(tmp_path_factory, rows, cost, k, a, sched, blocks):
    """Any workload, scheduler and memory: every request completes with its output, once; blocks all return;
    time runs forward (first token ≤ completion); fast-forward on or off changes nothing."""
    tmp = tmp_path_factory.mktemp("w")
    spec = {"kind": "mtp", "num_tokens": k, "acceptance": a}
    out = []
    for ff in (True, False):
        sc = sim.load_scenario(
            _sc(tmp, sorted(rows), spec, cost=cost, kv_blocks=blocks, scheduler=sched, fast_forward=ff)
        )
        run = Simulation(sc).run()
        log = run.log
        ok = log.status == COMPLETED
        assert log.done == len(rows)
        outputs = np.array([o for _, _, o in sorted(rows)])
        assert (log.generated[ok] == outputs[ok]).all()
        assert (log.first_token[ok] <= log.completion[ok]).all()
        assert all(inst.allocator.free == inst.allocator.total for inst in run.instances)
        out.append(log.completion.tolist())
    assert np.array_equal(out[0], out[1], equal_nan=True)
