"""The TensorRT-LLM release a silicon row ran, and the engine terms that follow from it (`trt_release_terms`).

The release is the row's `backend_version` where it names a TensorRT-LLM release (`1.1.0rc2.post2`), else the
TensorRT-LLM image its source names (`image=nvcr.io/nvidia/tensorrt-llm/release:<release>`). Dynamo runtime
images (`ai-dynamo/tensorrtllm-runtime:0.8.1`) and `gpt-oss-dev` do not say which TensorRT-LLM they carry, and
the rows without either (the 2026-04-06 export's Llama / DeepSeek / gpt-oss rows of Oct-Nov 2025, which match
no InferenceX item of `ground_truth/inferencex_agg.json` either): None, the preset's exchange. A row whose source
names an `ai-dynamo/` image is None whatever its `backend_version` says: the 15 Kimi-K2.5 GB200 disagg rows carry
`1.1.0-dev.2`, the tag of their Dynamo image `ai-dynamo/tensorrtllm-runtime:1.1.0-dev.2` (a Dynamo version, not
TensorRT-LLM's). Dev builds of 1.2.0 (`1.2.0.dev…`, `1.2.0-dev…`) are None too: the name does not place them before
or after PR #8950.

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
    rc = int(m.group(4)) if m.group(4) is not None else (-1 if "dev" in name[m.end() :] else 99)
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), rc


def _from_image(image: str | None) -> tuple[int, int, int, int] | None:
    if not image or "tensorrt-llm/release:" not in image.replace("#", "/"):
        return None
    return _placed(parse(image.rsplit(":", 1)[-1]))


def _placed(got: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
    """`got` unless it is a dev build of 1.2.0, which cannot be placed against PR #8950 (module doc)."""
    return None if got is not None and got[:3] == (1, 2, 0) and got[3] < 0 else got


def release(row: pd.Series) -> tuple[int, int, int, int] | None:
    """The TensorRT-LLM release the row ran (module doc), None where nothing read names one."""
    if row["backend"] != "trtllm":
        return None
    src = str(row["silicon_data_source"])
    if "ai-dynamo/" in src.replace("#", "/"):  # (the `image=` fact, if any, is part of the source)
        return None  # a Dynamo image: its tag (and a backend_version copied from it) is Dynamo's, not TensorRT-LLM's
    version = row.get("backend_version")
    if isinstance(version, str) and (got := parse(version)) is not None:
        return _placed(got)
    if isinstance(version, str):
        return None  # a Dynamo runtime version or a dev image: the TensorRT-LLM inside is not named
    return _from_image(_fact(row, "image") or (src.rsplit("; ", 1)[-1] if "release:" in src else None))


def trt_release_terms(row: pd.Series) -> dict[str, Any]:
    """`serving_engine` terms of the row's TensorRT-LLM release (module doc); empty where the release is unread."""
    got = release(row)
    if got is None or got > LAST_BEFORE_8950:
        return {}
    return {"moe_alltoall_above_topk": True}
