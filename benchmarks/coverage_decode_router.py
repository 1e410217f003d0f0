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
- **Several Dynamo frontends.** srtctl starts nginx on the head node and min(`num_additional_frontends` + 1, worker
  nodes - 1) frontends behind it unless the recipe sets `enable_multiple_frontends: false` (schema defaults: enabled,
  9 additional; `src/srtctl/cli/mixins/frontend_stage.py`, the same at 75f6e32a3 and 5063eb432); nginx's default
  upstream choice is round robin (`src/srtctl/templates/nginx.conf.j2`), and each frontend keeps its own counter.
  229 of the 329 TensorRT-LLM recipes turn it off (one frontend); the other 100 (B200 FP4, GB200 FP4 / FP8) run up
  to 10 (`ttft_disagg_recipes.frontends`). Such a row's decode pool gets `frontends_round_robin` (policies/routers.py)
  with that many front ends, each from a random phase (the warm-up requests and health checks that move each
  counter before the measured requests are not modelled).
A request routed to a worker whose slots are all taken waits in that worker's queue (servesim's decode instance, as
s13-dis's slot caps already simulate); nothing in either front end sends it elsewhere.

SGLang and vLLM disagg rows keep the default: some of their srt-slurm recipes run SGLang's own router with
`policy: cache_aware` (12 of the non-TensorRT-LLM recipes), and which one a row ran is not read here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import ttft_disagg_recipes as tdr

ROUND_ROBIN: dict[str, Any] = {"kind": "round_robin"}
BACKENDS = frozenset({"trtllm"})  # the backends whose disagg front ends are read as round robin (module doc)


def decode_router(row: pd.Series) -> dict[str, Any] | None:
    """The decode pool's router section for a disaggregated row, or None to keep servesim's default."""
    if row["mode"] != "disagg" or str(row["backend"]) not in BACKENDS:
        return None
    found = {v.get("frontends") for v in tdr.row_recipes(row)}
    if len(found) == 1 and (k := found.pop()) is not None and k > 1:  # the recipe's frontends agree: several
        return {"kind": "frontends_round_robin", "frontends": int(k)}
    return dict(ROUND_ROBIN)
