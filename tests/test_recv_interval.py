"""SGLang's receive interval (`serving_engine.scheduler_recv_interval`, policies/context_hold.py `RecvSkipper`) on
hand-computed timelines.

Linear costs: an iteration is 10 ms + 1 ms per prefill token + 2 ms per decoding sequence. A (prompt 10) prefills
alone in 20 ms (an extend iteration: the next one polls), then decodes alone at 12 ms a step, so iterations start
at 0.020 (poll), 0.032, 0.044, 0.056, 0.068 (4th decode start: the poll of interval 4), 0.080, ..., 0.116 (poll).
A prompt of 5 beside A's decode takes 10 + 5 + 2 = 17 ms.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

import sim
from sim.costmodel.engine import preset
from sim.errors import ServesimError
from tests.helpers import same_result, scenario, write_csv

SARATHI = {"kind": "sarathi", "max_num_seqs": 16, "token_budget": 64}


def _ttft(tmp_path, rows, interval: int | None, fast_forward: bool = True) -> list[float]:
    tr = write_csv(tmp_path / "w.csv", rows)
    sc = scenario(tr, scheduler=SARATHI, fast_forward=fast_forward)
    sc["serving_engine"] = {"kind": "sglang", **({} if interval is None else {"scheduler_recv_interval": interval})}
    return sim.run(sim.load_scenario(sc)).requests.sort_values("request_id")["ttft_s"].tolist()


@pytest.mark.parametrize("ff", [True, False])
@pytest.mark.parametrize(("arrival", "free", "waited_steps"), [(0.050, 0.023, 1), (0.070, 0.027, 3)])
def test_a_prompt_waits_for_the_next_poll_while_the_batch_only_decodes(tmp_path, ff, arrival, free, waited_steps):
    # B arriving at 0.050 joins at 0.056 without the interval, at the 0.068 poll with it: one decode step later.
    # B arriving at 0.070 (just after that poll) joins at 0.080 without it, at the 0.116 poll with it: three later.
    rows = [(0.0, 10, 100), (arrival, 5, 2)]
    off = _ttft(tmp_path, rows, None, ff)
    on = _ttft(tmp_path, rows, 4, ff)
    assert off[1] == pytest.approx(free, abs=1e-12)
    assert on[1] - off[1] == pytest.approx(waited_steps * 0.012, abs=1e-12)
    assert on[0] == off[0]  # the first prompt found the engine idle: an idle loop polls at once


@pytest.mark.parametrize("ff", [True, False])
def test_a_prefill_iteration_makes_the_next_one_poll(tmp_path, ff):
    # B (at 0.050) joins at the 0.068 poll and prefills 0.068 -> 0.085 (an extend iteration: weight 1000), so C,
    # arriving at 0.075 during it, is received at 0.085 at once: 10 + 5 + 2 x 2 decoders = 19 ms, TTFT 0.029.
    rows = [(0.0, 10, 100), (0.050, 5, 2), (0.075, 5, 2)]
    on = _ttft(tmp_path, rows, 4, ff)
    assert on[1] == pytest.approx(0.068 + 0.017 - 0.050, abs=1e-12)
    assert on[2] == pytest.approx(0.085 + 0.019 - 0.075, abs=1e-12)


def test_fast_forward_and_stepping_agree_on_a_busy_closed_loop(tmp_path):
    # Many arrivals at odd times against decode runs of many steps: the closed-form replay of the counter in
    # fast-forward runs must give stepping's times exactly.
    rows = [(0.0, 10, 60)] + [(0.013 * i + 0.0007 * (i % 3), 3 + i % 7, 5 + (i * 7) % 40) for i in range(1, 40)]
    assert _ttft(tmp_path, rows, 7, True) == pytest.approx(_ttft(tmp_path, rows, 7, False), abs=1e-12)


def test_presets_poll_every_iteration():
    assert preset("sglang").scheduler_recv_interval == 1
    assert preset("trtllm").scheduler_recv_interval == 1
    assert preset("vllm-v1").scheduler_recv_interval == 1


def test_the_interval_with_another_scheduler_is_one_clear_error_at_the_field(tmp_path):
    tr = write_csv(tmp_path / "w.csv", [(0.0, 10, 10)])
    sc = scenario(tr, scheduler={"kind": "fcfs"})
    sc["serving_engine"] = {"kind": "sglang", "scheduler_recv_interval": 10}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc))
    with pytest.raises(ServesimError, match=r"scheduler_recv_interval.*sarathi"):
        sim.load_scenario(path)


def test_only_an_interval_above_one_builds_the_receive_hook():
    """The plain Sarathi's per-plan path carries no receive-interval test: the hook is a subclass built only
    when the interval is above 1 (SGLang's skipper is created only then, `maybe_create`)."""
    from policies.continuous import RecvSarathi, Sarathi, SarathiConfig, _sarathi

    cfg = SarathiConfig(token_budget=8192)
    plain = _sarathi(cfg, engine=preset("sglang"))
    assert type(plain) is Sarathi and not hasattr(plain, "recv")
    hooked = _sarathi(cfg, engine=preset("sglang", scheduler_recv_interval=10))
    assert isinstance(hooked, RecvSarathi) and hooked.recv.interval == 10 and not hooked.steady_decode


# -- an idle engine receives at once (review 11: an instance that drained its batch since the last poll) ----------
# A (prompt 10, 3 tokens) prefills 0 -> 0.020 (the next iteration polls), decodes alone 0.020 -> 0.032 -> 0.044
# (two decode iterations of weight 1: the counter stands at 2 when A leaves) and the engine goes idle. SGLang's
# loop then runs with no batch (`last_batch = None`, weight 1 a spin) and polls within microseconds, so a prompt
# reaching an idle engine is received at once whatever the counter, as with interval 1.


@pytest.mark.parametrize("ff", [True, False])
@pytest.mark.parametrize("interval", [3, 4])
def test_a_prompt_reaching_an_engine_that_went_idle_is_received_at_once(tmp_path, ff, interval):
    # B (prompt 5) at 0.100 finds the engine idle since 0.044: it prefills alone at once, 10 + 5 ms.
    rows = [(0.0, 10, 3), (0.100, 5, 2)]
    off = _ttft(tmp_path, rows, None, ff)
    on = _ttft(tmp_path, rows, interval, ff)
    assert off[1] == pytest.approx(0.015, abs=1e-12)
    assert on == off


@pytest.mark.parametrize("ff", [True, False])
@pytest.mark.parametrize("interval", [3, 4])
def test_a_prompt_arriving_during_the_last_decode_step_is_received_when_the_batch_drains(tmp_path, ff, interval):
    # B (prompt 5) at 0.040 arrives during A's last step (0.032 -> 0.044). At 0.044 A is gone and nothing has been
    # received: the engine idles and polls at once, so B prefills alone 0.044 -> 0.059: TTFT 0.019, as interval 1.
    rows = [(0.0, 10, 3), (0.040, 5, 2)]
    off = _ttft(tmp_path, rows, None, ff)
    on = _ttft(tmp_path, rows, interval, ff)
    assert off[1] == pytest.approx(0.059 - 0.040, abs=1e-12)
    assert on == off


def _poisson_rows(n: int, seed: int, rate: float) -> list[tuple[float, int, int]]:
    """The reviewer's repro workload: Poisson arrivals, prompts 1-119, lognormal outputs 1-300."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1 / rate, n))
    p = rng.integers(1, 120, n)
    o = np.minimum(300, np.maximum(1, rng.lognormal(3.5, 1.0, n).astype(int)))
    return sorted((float(a), int(b), int(c)) for a, b, c in zip(t, p, o, strict=True))


@pytest.mark.parametrize("preemption", ["swap", "recompute"])
@pytest.mark.parametrize("kv_blocks", [10_000, 16])
def test_the_review_repro_completes_every_request(tmp_path, preemption, kv_blocks):
    """40 Poisson requests at 15/s, roofline costs, a 40-token budget, interval 2: main 53634f4 raised "scheduler
    planned nothing with 1 waiting and 0 running" here; every request must complete, in both decode modes alike."""
    rows = _poisson_rows(40, 101, 15.0)
    runs = []
    for ff in (True, False):
        sc = scenario(
            write_csv(tmp_path / "w.csv", rows),
            scheduler={"kind": "sarathi", "token_budget": 40},
            fast_forward=ff,
            cost={"kind": "roofline", "iteration_overhead_s": 0.001},
            kv_blocks=kv_blocks,
            preemption=preemption,
            serving_engine={"kind": "sglang", "scheduler_recv_interval": 2},
        )
        runs.append(sim.run(sim.load_scenario(sc)))
    counts = runs[0].summary["counts"]
    too_big = sum(-(-(p + o) // 16) > kv_blocks for _, p, o in rows)
    assert counts["arrived"] == 40
    assert counts["completed"] == 40 - too_big and counts["rejected"] == too_big and counts["in_flight"] == 0
    same_result(runs[0], runs[1])


# -- an engine that plans one step ahead (`overlap_admission`) receives where it planned -------------------------
# SGLang's `event_loop_overlap` receives, schedules and launches batch N+1, then processes batch N's result: the
# loop turn that plans the step starting at a boundary ran at the start of the step before it. With interval 2
# and A decoding alone (steps start 0.020, 0.032, ..., 12 ms apart), the turns that poll plan the steps starting
# at 0.044, 0.068, 0.092 and receive at 0.032, 0.056, 0.080.


@pytest.fixture
def _overlap_on_linear(monkeypatch: pytest.MonkeyPatch):
    """The engine's terms priced with the linear cost model too, so the lag applies with exact costs (as
    tests/test_overlap_admission.py)."""
    import sim.cluster.pools as pools

    monkeypatch.setattr(pools, "prices_serving_engine", lambda cfg: True)


@pytest.mark.usefixtures("_overlap_on_linear")
@pytest.mark.parametrize("ff", [True, False])
def test_an_engine_that_plans_ahead_receives_at_the_turn_that_polled(tmp_path, ff):
    # B (prompt 5) at 0.060 arrives during the step 0.056 -> 0.068. Interval 1: the plan of the 0.068 step was
    # made at 0.056 and hides it; the 0.080 step's turn (at 0.068) receives it: 0.080 + 0.017 - 0.060 = 0.037.
    # Interval 2: the 0.068 step's turn polled at 0.056, before B; the 0.080 turn does not poll; the 0.092 turn
    # (run at 0.080) receives it: 0.092 + 0.017 - 0.060 = 0.049, two steps later than interval 1, not zero.
    rows = [(0.0, 10, 100), (0.060, 5, 2)]
    one = _ttft(tmp_path, rows, None, ff)
    two = _ttft(tmp_path, rows, 2, ff)
    assert one[0] == two[0] == pytest.approx(0.020, abs=1e-12)
    assert one[1] == pytest.approx(0.037, abs=1e-12)
    assert two[1] == pytest.approx(0.049, abs=1e-12)
