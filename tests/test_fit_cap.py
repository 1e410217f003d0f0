"""The CPU-time cap of the silicon cross-fit (`calibrate.time_cap`): a fit that runs too long is stopped with a
clear message, even from inside a simulation (whose engine re-raises a process's error as type(e)(*e.args))."""

from __future__ import annotations

import time

import pytest

from calibrate.replay import replay_once
from calibrate.time_cap import Capped, cpu_cap
from tests.closed_loops import closed_scenario, means_only


def test_the_cap_stops_a_simulation_and_names_its_seconds() -> None:
    run = means_only(64, 1024, 4096, 0.1, 0.01)  # 192 requests of 4,096 tokens: ~1 CPU s uncapped
    sc = closed_scenario(64, 1024, 4096, {"kind": "vllm-v1"})
    t = time.process_time()
    with pytest.raises(Capped) as e, cpu_cap(0.05):
        replay_once(run, sc)
    assert time.process_time() - t < 3.0
    assert str(e.value) == "stopped after 0.05 CPU seconds (cap)"


def test_no_cap_and_a_cap_not_reached_change_nothing() -> None:
    run = means_only(2, 128, 8, 0.1, 0.01)
    sc = closed_scenario(2, 128, 8, {"kind": "vllm-v1"})
    with cpu_cap(None):
        a = replay_once(run, sc)
    with cpu_cap(60.0):
        b = replay_once(run, sc)
    assert a.completed == b.completed == len(run)
    assert (a.e2e_s == b.e2e_s).all()
