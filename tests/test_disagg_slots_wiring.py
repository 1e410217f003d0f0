"""benchmarks/disagg_first_token.py: the decode slots wired into a disagg row's scenario (the one change coverage.py
would take) and the closed-form slot wait it checks the simulation against."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

import queueing  # noqa: F401  the package first: once benchmarks/ leads sys.path, its queueing.py would shadow it

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage as cov
import disagg_first_token as dft

WL = {"arrival": {"kind": "closed_loop", "concurrency": 1}, "num_requests": 1,
      "lengths": {"kind": "fixed", "prompt": 16, "output": 4}}  # fmt: skip


def test_slots_go_to_the_decode_pool_only(silicon_rows: pd.DataFrame) -> None:
    r = silicon_rows.loc["2026_04_06_deepseek_r1_b300_sxm_trtllm_fp8_disagg_1024x1024_c720_tp4_ep1_1408"]
    plain, wired = dft._PLAIN(r, WL), dft.with_decode_slots(r, WL)
    assert cov.scenario(r, WL) == wired  # coverage.py reads the slots (READ_DECODE_SLOTS)
    assert wired["cluster"]["decode"]["scheduler"]["max_num_seqs"] == 128  # 16 per rank x 8 DP ranks
    assert plain["cluster"]["decode"].get("scheduler", plain["scheduler"])["max_num_seqs"] == 720  # max(256, c)
    assert wired["cluster"]["prefill"] == plain["cluster"]["prefill"]
    recorded = silicon_rows.loc["dsr1_h100_trtllm_fp8_disagg_1024x1024_c30_cfg494"]
    assert dft.with_decode_slots(recorded, WL) == cov.scenario(recorded, WL)  # the srt-slurm recipe's slots (s13-dis)
    assert cov.scenario(recorded, WL)["cluster"]["decode"]["scheduler"]["max_num_seqs"] == 8


def test_little_wait_by_hand(silicon_rows: pd.DataFrame) -> None:
    # 720 clients, 640 slots, mean output 922 tokens: 80 / 640 x 921 x TPOT (15.477 ms measured) = 1781.8 ms
    r = silicon_rows.loc["2026_04_06_deepseek_r1_b300_sxm_trtllm_fp8_disagg_1024x1024_c720_tp4_ep1_1408"]
    assert dft.little(r, 640, 922.0) == pytest.approx(80 / 640 * 921 * float(r["silicon_tpot_ms"]))
    assert dft.little(r, 720, 922.0) == 0.0 and dft.little(r, None, 922.0) == 0.0
