"""The CPU-time cap of the silicon cross-fit (`calibrate.time_cap`): a fit that runs too long is stopped with a
clear message, even from inside a simulation (whose engine re-raises a process's error as type(e)(*e.args))."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from calibrate.replay import replay_once
from calibrate.time_cap import cpu_cap
from tests.closed_loops import closed_scenario, means_only

CAPPED = """
import time
from calibrate.replay import replay_once
from calibrate.time_cap import Capped, cpu_cap
from tests.closed_loops import closed_scenario, means_only
run = means_only(64, 1024, 4096, 0.1, 0.01)  # 192 requests of 4,096 tokens: ~0.5 CPU s uncapped
sc = closed_scenario(64, 1024, 4096, {"kind": "vllm-v1"})
t = time.process_time()
try:
    with cpu_cap(0.05):
        replay_once(run, sc)
    print("not capped")
except Capped as e:
    print(f"{e} after {time.process_time() - t:.2f}")
"""


def test_the_cap_stops_a_simulation_and_names_its_seconds() -> None:
    """In a process of its own: signals reach the main thread only, and a pytest-xdist worker may run tests in
    another (where `cpu_cap` runs the block uncapped, by design)."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-c", CAPPED], capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert r.returncode == 0, r.stderr
    msg, _, took = r.stdout.strip().rpartition(" after ")
    assert msg == "stopped after 0.05 CPU seconds (cap)", r.stdout
    assert float(took) < 1.0


def test_no_cap_and_a_cap_not_reached_change_nothing() -> None:
    run = means_only(2, 128, 8, 0.1, 0.01)
    sc = closed_scenario(2, 128, 8, {"kind": "vllm-v1"})
    with cpu_cap(None):
        a = replay_once(run, sc)
    with cpu_cap(60.0):
        b = replay_once(run, sc)
    assert a.completed == b.completed == len(run)
    assert (a.e2e_s == b.e2e_s).all()
