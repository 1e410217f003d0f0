"""benchmarks/ttft_parts.py: the release a silicon row names, and a simulated TTFT split into its parts (by hand)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "servesim_bench_ttft_parts", Path(__file__).resolve().parents[1] / "benchmarks" / "ttft_parts.py"
)
assert _SPEC is not None and _SPEC.loader is not None
parts = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(parts)


@pytest.mark.parametrize(
    ("src", "want"),
    [
        ("db-dump/2026-04-27; config_id=733; workflow_run_id=758; vllm/vllm-openai:v0.19.0-cu130", "v0.19.0-cu130"),
        ("x; image=nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.1.post2", "0.8.1.post2"),
        ("x; nvcr.io#nvidia/tensorrt-llm/release:1.2.0rc6.post3", "1.2.0rc6.post3"),
        ("gap-analysis; dynamo_version=0.9.0; silicon_concurrency=16", "dynamo 0.9.0"),
        ("source_file=2026.csv; wip=False", "-"),
    ],
)
def test_release(src: str, want: str) -> None:
    assert parts.release(src) == want


def test_parts_by_hand() -> None:
    # two clients; request 0 and 1 arrive at 0 (first wave), request 2 at 1.0 (later). Request 1 waits 0.1 s,
    # prefills 0.2 s, its KV copy takes 0.05 s and it waits 0.05 s for the decode batch; the rest is 0.01 s.
    df = pd.DataFrame(
        {
            "arrival_s": [0.0, 0.0, 1.0],
            "first_scheduled_s": [0.0, 0.1, 1.0],
            "first_token_s": [0.2, 0.3, 1.2],
            "kv_transfer_s": [np.nan, 0.05, np.nan],
            "decode_wait_s": [np.nan, 0.05, np.nan],
            "ttft_s": [0.2, 0.41, 0.2],
        }
    )
    got = parts.parts_of(df, clients=2)
    assert got["queue"] == pytest.approx(1e3 * 0.1 / 3)
    assert got["prefill"] == pytest.approx(200.0)
    assert got["kv"] == pytest.approx(1e3 * 0.05 / 3)
    assert got["wait"] == pytest.approx(1e3 * 0.05 / 3)
    assert got["rest"] == pytest.approx(1e3 * 0.01 / 3)
    assert got["first_wave"] == pytest.approx(305.0)
    assert got["later"] == pytest.approx(200.0)
    # the parts add up to the mean TTFT
    assert sum(got[k] for k in ("queue", "prefill", "kv", "wait", "rest")) == pytest.approx(1e3 * df["ttft_s"].mean())
