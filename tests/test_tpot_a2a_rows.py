"""benchmarks/tpot_a2a_rows.py: which scenarios price an expert-parallel token exchange (attention DP and EP
together, in the cluster or in any pool)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tpot_a2a_rows as a2a


def test_only_attention_dp_with_expert_parallelism_exchanges() -> None:
    assert a2a.exchanges({"cluster": {"tp": 1, "attention_dp": 8, "ep": 8}})
    assert not a2a.exchanges({"cluster": {"tp": 8, "ep": 8}})  # EP without DP: an all-reduce, no exchange
    assert not a2a.exchanges({"cluster": {"tp": 1, "attention_dp": 8}})  # DP without EP (moe_tp)
    pools = {"cluster": {"pools": [{"role": "prefill", "tp": 4}, {"role": "decode", "attention_dp": 4, "ep": 4}]}}
    assert a2a.exchanges(pools)  # the decode pool does
    assert not a2a.exchanges({"cluster": {"attention_dp": 2, "pools": [{"ep": 4}]}})  # not in the same mapping
