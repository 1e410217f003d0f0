"""`serving_engine.stream_interval`: the server streams tokens in chunks, and the client's TTFT/TPOT follow.

Hand-computed timelines on the metrics layer (known engine token times), then whole runs: N = 1 and a first
token sent at once leave every client-view time as the engine's; N = 10 with the first token held moves TTFT
to the 10th token and leaves completion, E2E and closed-loop sends alone (clients react to the completion,
which always goes out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sim
from sim.core.recorder import COMPLETED, RequestLog
from sim.costmodel.engine import ServingEngineConfig, preset
from sim.output.metrics import client_first_token, requests_frame
from tests.helpers import scenario, write_csv

ROOF = {"kind": "roofline", "efficiency": "constant"}


def _log(first: list[float], completion: list[float], output: list[int]) -> RequestLog:
    log = RequestLog(len(first))
    log.first_token[:] = first
    log.completion[:] = completion
    log.first_scheduled[:] = 0.0
    log.generated[:] = output
    log.status[:] = COMPLETED
    return log


def test_hand_timeline_first_chunk_at_the_nth_token():
    # request 0: arrives 0.5, tokens every 10 ms from 1.00: token k at 1.00 + 0.01 (k - 1), 25 tokens (last 1.24).
    # N = 10, first token held: the client's first chunk leaves with token 10 at 1.09 -> TTFT 0.59 (+ 2 ms front
    # end); E2E 0.74 + 0.002; TPOT = (E2E - TTFT)/24 = (1.24 - 1.09)/24.
    # request 1: 4 tokens < N: one chunk at completion (2.03): TTFT = E2E, TPOT 0.
    # request 2: a single token: its chunk is its completion.
    arrival = np.array([0.5, 1.5, 3.0])
    output = np.array([25, 4, 1])
    log = _log([1.0, 2.0, 3.2], [1.24, 2.03, 3.2], output.tolist())
    df = requests_frame(
        arrival, np.full(3, 8), output, log, frontend_s=0.002, stream_interval=10, stream_first_token=False
    )
    assert df["ttft_s"].tolist() == pytest.approx([0.592, 0.532, 0.202], abs=1e-12)
    assert df["e2el_s"].tolist() == pytest.approx([0.742, 0.532, 0.202], abs=1e-12)
    assert df["tpot_s"].iloc[0] == pytest.approx(0.15 / 24, abs=1e-12)
    assert df["tpot_s"].iloc[1] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(df["tpot_s"].iloc[2])
    assert df["first_token_s"].tolist() == [1.0, 2.0, 3.2]  # engine-side timestamps stay the engine's


def test_n_equals_output_and_first_token_at_once():
    first, comp, out = np.array([1.0, 1.0]), np.array([1.5, 1.5]), np.array([11, 51])
    # N = 11 on an 11-token output: the first chunk is the last token
    assert client_first_token(first, comp, out, 11, False).tolist() == pytest.approx([1.5, 1.0 + 0.5 * 10 / 50])
    # the first token sent at once (today's SGLang, TRT-LLM): the engine's first token, whatever N
    assert client_first_token(first, comp, out, 10, True) is first
    assert client_first_token(first, comp, out, 1, False) is first


def test_unfinished_request_has_no_client_first_chunk():
    log = _log([1.0], [np.nan], [20])
    df = requests_frame(
        np.array([0.0]), np.array([8]), np.array([20]), log, stream_interval=4, stream_first_token=False
    )
    assert np.isnan(df["ttft_s"].iloc[0])


def test_field_defaults_and_validation():
    for kind in ("vllm-v1", "vllm-v0", "sglang", "trtllm"):  # every engine ships 1
        assert preset(kind).stream_interval == 1 and preset(kind).stream_first_token
    with pytest.raises(ValueError):
        ServingEngineConfig.model_validate({"kind": "sglang", "stream_interval": 0})


def _runs(tmp_path, engines: list[dict]) -> list[pd.DataFrame]:
    tr = write_csv(tmp_path / "w.csv", [(0.0, 200, 40), (0.003, 120, 25), (0.01, 64, 6)])
    return [sim.run(scenario(tr, cost=ROOF, serving_engine=e)).requests for e in engines]


def test_whole_run_moves_ttft_only(tmp_path):
    base = {"admission_reserve": "none", "kind": "sglang", "frontend_s": 0.001}
    one, at_once, held = _runs(
        tmp_path,
        [base, {**base, "stream_interval": 10}, {**base, "stream_interval": 10, "stream_first_token": False}],
    )
    pd.testing.assert_frame_equal(one, at_once)  # first token sent at once: nothing a mean client sees moves
    for col in ("first_token_s", "completion_s", "e2el_s", "arrival_s"):
        assert (held[col] == one[col]).all(), col
    ft, comp, out = one["first_token_s"], one["completion_s"], one["output_tokens"]
    m = np.minimum(10, out)
    seen = ft + (m - 1) / (out - 1) * (comp - ft)
    np.testing.assert_allclose(held["ttft_s"], seen - one["arrival_s"] + 0.001, rtol=0, atol=1e-12)
    assert (held["ttft_s"] > one["ttft_s"]).all()
    np.testing.assert_allclose(held["tpot_s"], (held["e2el_s"] - held["ttft_s"]) / (out - 1), rtol=1e-12)


def test_closed_loop_clients_react_to_the_completion_not_the_first_chunk(tmp_path):
    """Chunks hold tokens back, never the last one: a client's next send stays at completion + frontend_s."""
    sc = scenario(write_csv(tmp_path / "unused.csv", [(0.0, 1, 1)]), cost=ROOF)
    sc["workload"] = {
        "num_requests": 8,
        "arrival": {"kind": "closed_loop", "concurrency": 2},
        "lengths": {"kind": "fixed", "prompt": 64, "output": 30},
    }
    runs = []
    for extra in ({}, {"stream_interval": 10, "stream_first_token": False}):
        sc["serving_engine"] = {"admission_reserve": "none", "kind": "sglang", "frontend_s": 0.01, **extra}
        runs.append(sim.run(sc).requests)
    a, b = runs
    assert (a["arrival_s"] == b["arrival_s"]).all() and (a["completion_s"] == b["completion_s"]).all()
    assert (b["ttft_s"] > a["ttft_s"]).all()
    for _, g in b.sort_values("arrival_s").groupby("client"):
        np.testing.assert_allclose(g["arrival_s"].to_numpy()[1:], g["completion_s"].to_numpy()[:-1] + 0.01, atol=1e-12)
