"""benchmarks/coverage_agg_mtp.py: whether an InferenceX agg row ran MTP, from the configuration items in force
and the row's image, checked on a hand-read row; bad inputs refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import coverage_agg_mtp as ca
from coverage_disagg import MTP_ACCEPTANCE


@pytest.fixture
def rows(silicon_rows: pd.DataFrame) -> pd.DataFrame:
    return silicon_rows  # read once per session (tests/conftest.py)


def test_image_tells_the_mtp_entry_apart(rows: pd.DataFrame) -> None:
    """nvidia-master.yaml@d7dbd045b (2026-02-05T23:18Z), 1k8k tp 8 / ep 1 conc 64: `dsr1-fp8-b200-trt` (image
    release:1.2.0rc6.post2, conc 4 … 128) and `dsr1-fp8-b200-trt-mtp` (release:1.2.0rc6.post3, conc 4 … 64) both
    match the shape; the row was measured 2026-02-05 with image 1.2.0rc6.post3: the MTP entry."""
    r = rows.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp8_agg_1024x8192_c64_tp8_ep1_887"]
    assert "image=nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6.post3" in r["silicon_data_source"]
    kind, why = ca.reading(r)
    assert kind == "mtp" and why.startswith(".github/configs/nvidia-master.yaml@d7dbd045b")
    assert "dsr1-fp8-b200-trt-mtp (mtp, 1.2.0rc6.post3)" in why and "dsr1-fp8-b200-trt (" not in why
    # without the image the two entries cannot be told apart
    blind = r.copy()
    blind["silicon_data_source"] = r["silicon_data_source"].replace("image=", "img=")
    assert ca.reading(blind)[0] == "MTP?"


def test_readings_are_closed_and_refuse_disagg(rows: pd.DataFrame) -> None:
    counts = ca.count(rows)
    assert {k for c in counts.values() for k in c} <= {"none", "mtp", "MTP?", "unknown"}
    assert sum(c.get("mtp", 0) for c in counts.values()) > 0
    with pytest.raises(ValueError, match="expected 'agg'"):
        ca.reading(rows[rows["mode"] == "disagg"].iloc[0])


def test_mtp_agg_row_is_simulated_with_the_scripts_draft_length(rows: pd.DataFrame) -> None:
    """dsr1_fp8_b200_trt_mtp.sh: MTP=3 unless DP_ATTENTION (then 1); the tp 8 / ep 1 item has no dp-attn: 3 draft
    tokens at R1's published per-position acceptance; coverage.scenario carries it. A row read `MTP?` stays
    without MTP."""
    import coverage as cov

    r = rows.loc["2026_04_06_deepseek_r1_b200_sxm_trtllm_fp8_agg_1024x8192_c64_tp8_ep1_887"]
    assert ca.draft_tokens(r) == 3 and ca.group(r) == "agg, MTP"
    assert cov.scenario(r, cov._fixed_workload(4, r))["speculative"] == {
        "kind": "mtp",
        "num_tokens": 3,
        "acceptance": MTP_ACCEPTANCE["deepseek-ai/DeepSeek-R1"][:3],
    }
    undecided = next(x for _, x in rows[rows["mode"] == "agg"].iterrows() if ca.reading(x)[0] == "MTP?")
    assert ca.group(undecided) == "agg, MTP?" and ca.speculative(undecided) is None
    assert "speculative" not in cov.scenario(undecided, cov._fixed_workload(4, undecided))
