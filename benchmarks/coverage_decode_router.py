"""How a disaggregated row's front end picked the decode worker of each prefilled request: round robin.

servesim's decode pool routes by `least_kv` unless told otherwise (`sim/cluster/pools.py`: the fewest KV blocks in
use). The silicon file's TensorRT-LLM disagg rows ran behind one of two front ends, and both pick decode workers in
turn, blind to their load or free slots:
- **Dynamo** (srt-slurm recipes, `frontend: type: dynamo`, and InferenceX's `*-dynamo-trt` items). The
  PrefillRouter sends the prefilled request to a decode worker chosen by the frontend's `--router-mode`
  (ai-dynamo/dynamo `docs/design_docs/disagg_serving.md`, "Router Orchestration"), whose default is `round-robin`
  (`components/src/dynamo/frontend/main.py`@0179043ab: `default=os.environ.get("DYN_ROUTER_MODE", "round-robin")`;
  `lib/runtime/src/pipeline/network/egress/push_router.rs`: `RouterMode::RoundRobin` is the `#[default]`, one
  shared counter per request). No srt-slurm TensorRT-LLM recipe passes frontend `args` (qiching/srt-slurm@f0a303b
  `recipes/trtllm/**`: 329 files, none with `router-mode`; e.g. cfg421's
  `gb300-fp4/1k8k/stp/ctx1_gen15_tep4_batch4_eplb0_mtp0.yaml`@75f6e32a3: `frontend: {type: dynamo,
  enable_multiple_frontends: false}`, so one frontend and one counter).
- **`trtllm-serve disaggregated`** (TensorRT-LLM's own slurm scripts): `extract_router_config` defaults the
  context and generation routers to `type: "round_robin"` (`tensorrt_llm/llmapi/disagg_utils.py`@0228a7122), and
  `RoundRobinRouter.get_next_server` (`tensorrt_llm/serve/router.py`) cycles `_server_idx` without looking at load.
A request routed to a worker whose slots are all taken waits in that worker's queue (servesim's decode instance, as
s13-dis's slot caps already simulate); nothing in either front end sends it elsewhere.

SGLang and vLLM disagg rows keep the default: some of their srt-slurm recipes run SGLang's own router with
`policy: cache_aware` (12 of the non-TensorRT-LLM recipes), and which one a row ran is not read here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

ROUND_ROBIN: dict[str, Any] = {"kind": "round_robin"}
BACKENDS = frozenset({"trtllm"})  # the backends whose disagg front ends are read as round robin (module doc)


def decode_router(row: pd.Series) -> dict[str, Any] | None:
    """The decode pool's router section for a disaggregated row, or None to keep servesim's default."""
    if row["mode"] != "disagg" or str(row["backend"]) not in BACKENDS:
        return None
    return dict(ROUND_ROBIN)
