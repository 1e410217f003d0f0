"""The TensorRT-LLM release a silicon row ran, and the engine terms that follow from it (`trt_release_terms`).

The release is the row's `backend_version` where it names a TensorRT-LLM release (`1.1.0rc2.post2`), else the
TensorRT-LLM image its source names (`image=nvcr.io/nvidia/tensorrt-llm/release:<release>`). Dynamo runtime
images (`ai-dynamo/tensorrtllm-runtime:0.8.1`) and `gpt-oss-dev` do not say which TensorRT-LLM they carry, and
the rows without either (the 2026-04-06 export's Llama / DeepSeek / gpt-oss rows of Oct-Nov 2025, which match
no InferenceX item of `ground_truth/inferencex_agg.json` either): None, the preset's exchange.

Terms: up to 1.2.0rc2 (released 2025-11-07, before PR #8950 changed `select_alltoall_method_type`), the MoE runs
its all-to-all only when ep > experts per token, else all-gather + reduce-scatter
(`serving_engine.moe_alltoall_above_topk`, sim/costmodel/alltoall.py module doc). Nothing here is fitted.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from coverage_disagg import _fact

LAST_BEFORE_8950 = (1, 2, 0, 2)  # 1.2.0rc2 (and its .postN patch releases): the rule before PR #8950
_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:rc(\d+))?")


def parse(name: str) -> tuple[int, int, int, int] | None:
    """(major, minor, patch, rc) of a TensorRT-LLM release name; a final release sorts after its rcs (rc 99);
    None for a name that is not a 1.x release (Dynamo's 0.x runtime versions, `gpt-oss-dev`)."""
    m = _RELEASE.match(name.strip())
    if m is None or int(m.group(1)) < 1:
        return None
    rc = int(m.group(4)) if m.group(4) is not None else (-1 if "-dev" in name else 99)
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), rc


def _from_image(image: str | None) -> tuple[int, int, int, int] | None:
    if not image or "tensorrt-llm/release:" not in image.replace("#", "/"):
        return None
    return parse(image.rsplit(":", 1)[-1])


def release(row: pd.Series) -> tuple[int, int, int, int] | None:
    """The TensorRT-LLM release the row ran (module doc), None where nothing read names one."""
    if row["backend"] != "trtllm":
        return None
    version = row.get("backend_version")
    if isinstance(version, str) and (got := parse(version)) is not None:
        return got
    if isinstance(version, str):
        return None  # a Dynamo runtime version or a dev image: the TensorRT-LLM inside is not named
    src = str(row["silicon_data_source"])
    return _from_image(_fact(row, "image") or (src.rsplit("; ", 1)[-1] if "release:" in src else None))


def trt_release_terms(row: pd.Series) -> dict[str, Any]:
    """`serving_engine` terms of the row's TensorRT-LLM release (module doc); empty where the release is unread."""
    got = release(row)
    if got is None or got > LAST_BEFORE_8950:
        return {}
    return {"moe_alltoall_above_topk": True}
