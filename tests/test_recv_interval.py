"""SGLang's receive interval (`serving_engine.scheduler_recv_interval`, policies/context_hold.py `RecvSkipper`) on
hand-computed timelines.

Linear costs: an iteration is 10 ms + 1 ms per prefill token + 2 ms per decoding sequence. A (prompt 10) prefills
alone in 20 ms (an extend iteration: the next one polls), then decodes alone at 12 ms a step, so iterations start
at 0.020 (poll), 0.032, 0.044, 0.056, 0.068 (4th decode start: the poll of interval 4), 0.080, ..., 0.116 (poll).
A prompt of 5 beside A's decode takes 10 + 5 + 2 = 17 ms.
"""

from __future__ import annotations

import pytest
import yaml

import sim
from sim.costmodel.engine import preset
from sim.errors import ServesimError
from tests.helpers import scenario, write_csv

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
