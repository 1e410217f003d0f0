"""Closed-loop clients and client timeouts: hand timelines, Little's law, conservation, determinism, and
fast-forward exactness (an arrival a completion triggers cuts decode runs as a trace arrival does)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from tests.helpers import scenario, write_csv

LIN = {"kind": "linear", "base_s": 0.01, "per_prefill_token_s": 0.001, "per_decode_seq_s": 0.002}


def closed(tmp_path, n: int, c: int, prompt: int = 10, output: int = 3, **arrival) -> dict:
    sc = scenario(write_csv(tmp_path / "unused.csv", [(0.0, 1, 1)]), cost=LIN)
    lengths = arrival.pop("lengths", {"kind": "fixed", "prompt": prompt, "output": output})
    timeout = arrival.pop("timeout_s", None)
    sc["workload"] = {
        "num_requests": n,
        "arrival": {"kind": "closed_loop", "concurrency": c, **arrival},
        "lengths": lengths,
        **({"timeout_s": timeout} if timeout is not None else {}),
    }
    return sc


def test_single_client_hand_timeline(tmp_path):
    # prefill of 10 tokens: 0.01 + 0.010 = 0.02 (first token), two decodes of 0.012: done at 0.044;
    # the client thinks 0.5 s and sends the next at 0.544, and so on
    df = sim.run(closed(tmp_path, 3, 1, think_time_s=0.5)).requests
    start = [0.0, 0.544, 1.088]
    assert df["arrival_s"].tolist() == pytest.approx(start)
    assert df["first_token_s"].tolist() == pytest.approx([t + 0.02 for t in start])
    assert df["completion_s"].tolist() == pytest.approx([t + 0.044 for t in start])
    assert df["client"].tolist() == [0, 0, 0]


def test_ramp_up_spreads_first_sends(tmp_path):
    df = sim.run(closed(tmp_path, 4, 4, output=500, ramp_up_s=1.0)).requests  # nobody is done before 1 s
    assert df["arrival_s"].tolist() == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert sorted(df["client"].tolist()) == [0, 1, 2, 3]


def test_never_more_than_concurrency_outstanding(tmp_path):
    sc = closed(tmp_path, 60, 5, lengths={"kind": "lognormal", "prompt_median": 40, "output_median": 20})
    df = sim.run(sc).requests
    ev = sorted([(a, 1) for a in df["arrival_s"]] + [(e, -1) for e in df["completion_s"]], key=lambda x: (x[0], x[1]))
    outstanding = np.cumsum([d for _, d in ev])
    assert outstanding.max() == 5 and outstanding[-1] == 0
    # each client's next request is sent exactly when its previous one completed (no think time)
    for _, g in df.sort_values("arrival_s").groupby("client"):
        np.testing.assert_array_equal(g["arrival_s"].to_numpy()[1:], g["completion_s"].to_numpy()[:-1])


@pytest.mark.parametrize("think", [0.0, 0.3])
def test_littles_law_in_closed_loop(tmp_path, think):
    """Operational Little's law of the closed system: per client, the span from its first send to its last
    completion is the sum of its response times plus its think times, so the throughput over the clients'
    spans is X = C / (R + Z (N - C) / N) for the measured mean response R: an identity of the run."""
    n, c = 80, 6
    sc = closed(
        tmp_path, n, c, think_time_s=think, lengths={"kind": "lognormal", "prompt_median": 50, "output_median": 30}
    )
    df = sim.run(sc).requests
    assert (df["status"] == "completed").all()
    r = float(df["e2el_s"].mean())
    spans = df.groupby("client").agg(first=("arrival_s", "min"), last=("completion_s", "max"))
    total = float((spans["last"] - spans["first"]).sum())
    x = n * c / total
    assert x == pytest.approx(c / (r + think * (n - c) / n), rel=1e-9)


def test_exponential_think_times_are_seeded(tmp_path):
    sc = closed(tmp_path, 30, 3, think_time_s=0.2, think_time="exponential")
    a = sim.run(sc).requests
    b = sim.run(sc).requests
    pd.testing.assert_frame_equal(a, b)
    sc["seed"] = 1
    c = sim.run(sc).requests
    assert not np.allclose(a["arrival_s"], c["arrival_s"])


@pytest.mark.parametrize("kind", ["fcfs", "sarathi"])
def test_fast_forward_exact_with_clients_and_timeouts(tmp_path, kind):
    base = closed(
        tmp_path,
        120,
        9,
        think_time_s=0.01,
        timeout_s=0.6,
        lengths={"kind": "lognormal", "prompt_median": 60, "output_median": 40},
    )
    base["cluster"]["instances"] = 2
    base["scheduler"] = {"kind": kind}
    frames = []
    for ff in (True, False):
        base["engine"]["fast_forward"] = ff
        frames.append(sim.run(base).requests)
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert (frames[0]["status"] == "abandoned").any() and (frames[0]["status"] == "completed").any()


def test_timeout_abandons_frees_memory_and_next_request_goes(tmp_path):
    # one client, long outputs: each request gives up 0.1 s after it was sent, mid-decode
    res = sim.run(closed(tmp_path, 3, 1, output=1000, timeout_s=0.1))
    df = res.requests
    assert df["status"].tolist() == ["abandoned"] * 3
    assert res.summary["counts"]["abandoned"] == 3 and res.summary["counts"]["completed"] == 0
    assert df["arrival_s"].tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert df["completion_s"].isna().all()
    assert (df["generated_tokens"] < 1000).all() and (df["generated_tokens"] > 1).all()


def test_timeout_in_open_loop_removes_waiting_requests(tmp_path):
    # 5 requests at once, prefill-first fcfs with room for one sequence: the later ones wait and give up
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 50)] * 5)
    sc = scenario(tr, cost=LIN, scheduler={"kind": "fcfs", "max_num_seqs": 1})
    sc["workload"]["timeout_s"] = 0.7
    res = sim.run(sc)
    st_ = res.requests["status"].tolist()
    # request 0 takes 0.02 + 49 * 0.012 = 0.608 s; request 1 starts then and needs as long again
    assert st_[0] == "completed" and st_[1] == "abandoned" and st_.count("abandoned") == 4
    c = res.summary["counts"]
    assert c["arrived"] == c["completed"] + c["rejected"] + c["abandoned"] + c["in_flight"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 40),
    c=st.integers(1, 8),
    timeout=st.floats(0.02, 2.0),
    think=st.floats(0.0, 0.1),
    kv=st.integers(8, 200),
    kind=st.sampled_from(["fcfs", "sarathi"]),
)
def test_conservation_with_timeouts(tmp_path, n, c, timeout, think, kv, kind):
    sc = closed(
        tmp_path,
        n,
        c,
        think_time_s=think,
        timeout_s=timeout,
        lengths={"kind": "lognormal", "prompt_median": 30, "output_median": 20, "max_prompt": 100, "max_output": 60},
    )
    sc["hardware"] = scenario(tmp_path / "unused.csv", kv_blocks=kv)["hardware"]
    sc["scheduler"] = {"kind": kind}
    res = sim.run(sc)
    df, cnt = res.requests, res.summary["counts"]
    assert cnt["arrived"] == n == cnt["completed"] + cnt["rejected"] + cnt["abandoned"] + cnt["in_flight"]
    assert cnt["in_flight"] == 0  # no horizon: everything ends
    ab = df[df["status"] == "abandoned"]
    assert ab["completion_s"].isna().all()
    done = df[df["status"] == "completed"]
    assert (done["e2el_s"] <= timeout + 1e-9).all()  # nobody completes after giving up
    assert (done["generated_tokens"] == done["output_tokens"]).all()
    assert not math.isnan(res.summary["sim"]["simulated_s"])


ROOF = {"kind": "roofline", "efficiency": "constant"}


@pytest.mark.parametrize("fe", [0.0, 0.25])
def test_client_sends_after_it_sees_the_response(tmp_path, fe):
    """The client reads the response `serving_engine.frontend_s` after the engine produced it (the same term the
    client-side E2E carries), so its next request leaves then: arrival[j+1] = completion[j] + frontend_s.
    Sending on the engine's completion instead would make the client faster than the E2E it measures."""
    sc = closed(tmp_path, 12, 2, lengths={"kind": "lognormal", "prompt_median": 40, "output_median": 10})
    sc["cost_model"] = ROOF
    sc["serving_engine"] = {"kind": "vllm-v1", "frontend_s": fe}
    df = sim.run(sc).requests
    assert (df["status"] == "completed").all()
    for _, g in df.sort_values("arrival_s").groupby("client"):
        a, c, e2e = g["arrival_s"].to_numpy(), g["completion_s"].to_numpy(), g["e2el_s"].to_numpy()
        np.testing.assert_allclose(a[1:], c[:-1] + fe, rtol=0, atol=1e-12)
        # what the client measured ends exactly where its next request starts
        np.testing.assert_allclose(a[1:], a[:-1] + e2e[:-1], rtol=0, atol=1e-9)


def test_abandoned_request_does_not_wait_for_the_front_end(tmp_path):
    """A request the client gave up on ends on the client's clock: the next send is at arrival + timeout_s."""
    sc = closed(tmp_path, 3, 1, output=2000, timeout_s=0.05)
    sc["cost_model"] = ROOF
    sc["serving_engine"] = {"kind": "vllm-v1", "frontend_s": 0.5}
    df = sim.run(sc).requests.sort_values("arrival_s")
    assert (df["status"] == "abandoned").all()
    np.testing.assert_allclose(df["arrival_s"].to_numpy(), [0.0, 0.05, 0.10], atol=1e-9)
