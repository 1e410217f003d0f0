"""Prefill/decode disaggregation (Splitwise, DistServe): the hand-off of a prefilled request's KV cache.

A request is prefilled on a prefill-pool instance, which emits its first token (TTFT ends there). Then:

1. the decode-pool router picks a decode instance, once, as the prefill ends; that instance must take the
   request's blocks above its watermark (memory is held on both ends during the copy); if it has no room
   the request waits at THAT instance, in a FIFO of its own, until it frees blocks (see "Routing once"
   below);
2. the KV cache crosses the sending instance's link (`sim.cluster.links`): `serialized` starts after the
   prefill; `layerwise` sends each layer as soon as it is computed, overlapping the copy with the
   prefill iteration, so only the last layer's share (~1/L of the copy) and the latency stay exposed —
   when the link is free and fast enough; a busy link or a late decode slot shrinks the overlap;
3. the prefill instance frees its copy; the decode instance admits the request like a swap-in that
   copies nothing (its KV is present: `prefill_done == prefill_target`, `kv_tokens > 0`).

Per request: `decode_instance` (routed to, as the prefill ends: set even if the run stops while the hand-off
still waits there), `kv_transfer_s` (prefill end → KV usable on the decode side, i.e. the
exposed transfer), `kv_transfer_wait_s` (the part of it spent queueing for the link or for decode
memory) and `decode_wait_s` (KV usable → taken into the decode instance's batch: the rest of the step in flight,
then any wait for a decode slot; where the client's first token comes from the decode worker it follows that
step, `serving_engine.disagg_first_token`). Decode memory on the receiving side is counted from the prefill's
end (a simplification for `layerwise`, whose first layers land a little earlier).

Routing once (branch s15-place). The front ends that run disaggregated serving choose the decode worker once
per request and never move it:
- Dynamo's `PrefillRouter` selects a prefill worker, waits for its `disaggregated_params`, then selects the decode
  worker and sends it the decode request (ai-dynamo/dynamo `docs/design_docs/disagg_serving.md`, "Router
  Orchestration": "Select decode worker" follows "Prefill-->>Router: disaggregated_params");
- `trtllm-serve disaggregated` (the default `context_first` schedule style): `_send_disagg_request_ctx_first`
  awaits the context server's response, then calls `self._gen_router.get_next_server(gen_req)` once and sends the
  generation request there (NVIDIA/TensorRT-LLM `tensorrt_llm/serve/openai_disagg_service.py`); only conditional
  disagg (a KV-cache-aware generation router) picks the generation server before the context phase;
- vLLM's orchestrated proxies send the prefill (`max_tokens=1`), take its `kv_transfer_params`, then forward to a
  decode endpoint (vllm-project/production-stack `examples/disaggregated_prefill_orchestrated/README.md`);
- SGLang's mini load balancer picks the pair at arrival (`MiniLoadBalancer.select_pair`, a random prefill and a
  random decode server, sgl-project/sglang `python/sglang/srt/disaggregation/mini_lb.py`) and posts the request to
  both at once; the decode server pre-allocates its KV for it.
None of them re-routes when the chosen worker is full: the request waits in that worker's own queue (TensorRT-LLM's
generation server schedules the `generation_only` request when its KV manager has room; SGLang's decode server
holds it in its pre-allocation queue). servesim routes when the prefill ends — the moment Dynamo, TensorRT-LLM and
vLLM's proxies route, and the silicon file's round-robin rows ran behind Dynamo or `trtllm-serve`
(benchmarks/coverage_decode_router.py); SGLang's choice at arrival is not modelled (with its random router, the
draw's timing does not change its distribution). Each decode instance keeps a FIFO of the hand-offs routed to it
and still waiting for memory; only that instance's queue is retried when it frees blocks. A load-aware router sees
each instance through `_Load`: the blocks and requests already routed to it and still queued or in flight count as
its load, as the real routers count what they have sent a worker and not yet seen finish.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from sim.cluster.links import Link, link_bandwidth
from sim.config.scenario import Scenario
from sim.core.instance import Instance
from sim.core.late import LateQueue
from sim.core.registry import ROUTERS
from sim.core.request import Request

if TYPE_CHECKING:
    from sim.cluster.pools import PoolSpec


@dataclass
class _Handoff:
    req: Request
    src: Instance
    start: float  # the prefill's last iteration: start and end
    end: float
    blocks: int
    to: Instance | None = None  # the decode instance routed to, once, as the prefill ends
    dst: Instance | None = None  # the same, once its decode memory is reserved


class _Load:
    """A decode instance as the decode router sees it (`sim.core.router.InstanceLoad`): its own state plus the
    hand-offs already routed to it — waiting for its memory (their blocks count as used, as if reserved) or in
    flight (their blocks are reserved already; they count as requests). Dynamo's KV router keeps each worker's
    "active decoding blocks" itself, incremented when it routes a request there and decremented on completion
    (ai-dynamo/dynamo `docs/design_docs/router_design.md`, "Block Tracking Mechanisms"), so what it has sent and
    the worker has not yet taken counts as that worker's load."""

    __slots__ = ("inst", "queue", "queued_blocks", "routed")

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.queue: deque[_Handoff] = deque()  # routed here, waiting for memory here, in order
        self.queued_blocks = 0  # the blocks of `queue`, kept as it changes (routing reads it per hand-off)
        self.routed = 0  # routed here and not landed yet (queued or in flight)

    @property
    def index(self) -> int:
        return self.inst.index

    @property
    def block_size(self) -> int:
        return self.inst.block_size  # (`prefix_affinity` sizes its index by it)

    @property
    def num_blocks(self) -> int:
        return self.inst.num_blocks

    @property
    def waiting(self) -> Iterable[Request]:
        return self.inst.waiting

    @property
    def running(self) -> list[Request]:
        return self.inst.running

    @property
    def num_requests(self) -> int:
        return self.inst.num_requests + self.routed

    def kv_used_blocks(self) -> int:
        return self.inst.kv_used_blocks() + self.queued_blocks

    def admit_blocks(self, req: Request) -> int:
        return self.inst.admit_blocks(req)


class Disaggregation:
    """Moves prefilled requests from the prefill pool to the decode pool (see the module docstring)."""

    name = "disaggregation"

    def __init__(
        self,
        sc: Scenario,
        pools: list[PoolSpec],
        env: simpy.Environment,
        late: LateQueue,
        n_requests: int,
        routing_rng: np.random.Generator,
    ) -> None:
        """Built before the instances, which take it as their hand-off (prefill pool) or release listener
        (decode pool); `bind` then gives it the instances."""
        self.env, self.late = env, late
        p_spec, d_spec = pools
        self.router = ROUTERS.build(d_spec.router, rng=routing_rng)
        bw = link_bandwidth(sc.cluster.link, p_spec.gpu, d_spec.gpu, p_spec.gpus + d_spec.gpus)
        self.block_s = max(p_spec.capacity.bytes_per_block, d_spec.capacity.bytes_per_block) / bw
        self.block_bytes = p_spec.capacity.bytes_per_block * p_spec.tp * p_spec.pp  # all GPUs' shards
        self.layerwise = sc.cluster.kv_transfer == "layerwise"
        self.layers = sc.model_spec.num_layers
        self.latency_s = sc.cluster.link.latency_s
        d_watermark = int(sc.kv_cache.watermark * d_spec.capacity.num_blocks)
        # a request that can never fit a decode instance is rejected on arrival at the prefill instance
        self.max_kv_tokens = (d_spec.capacity.num_blocks - d_watermark) * d_spec.capacity.block_size
        self.prefill: list[Instance] = []
        self.decode: list[Instance] = []
        self.links: dict[int, Link] = {}
        self.decode_instance = np.full(n_requests, -1, dtype=np.int32)
        self.kv_transfer_s = np.full(n_requests, np.nan)
        self.kv_transfer_wait_s = np.full(n_requests, np.nan)
        self.decode_wait_s = np.full(n_requests, np.nan)  # KV usable on the decode side -> taken into its batch
        self.ready = np.full(n_requests, np.nan)  # when the KV became usable on the decode side
        self._slot: dict[int, int] = {}  # decode instance index -> its position in the pool
        self.loads: list[_Load] = []  # per decode instance, in pool order: its queue of hand-offs routed to it
        self._retry_due: set[int] = set()  # decode instances (pool position) whose queue is retried this instant
        self.in_transit = 0
        self.moving: dict[int, _Handoff] = {}  # request id -> its hand-off, from prefill end to landing

    def bind(self, instances: list[Instance]) -> None:
        """The run's instances: the pools it moves requests between, a link per prefill instance."""
        self.prefill = [i for i in instances if i.role == "prefill"]
        self.decode = [i for i in instances if i.role == "decode"]
        self.loads = [_Load(d) for d in self.decode]
        self._slot = {d.index: k for k, d in enumerate(self.decode)}
        self.links = {p.index: Link(self.latency_s) for p in self.prefill}
        for d in self.decode:
            d.copies.on_admit = self._admitted

    # -- the hand-off ----------------------------------------------------------------------------------
    def prefilled(self, src: Instance, req: Request, start: float, end: float) -> None:
        """Called by the prefill instance as the prefill ends (its blocks stay held there)."""
        self.in_transit += 1
        x = self.moving[req.id] = _Handoff(req, src, start, end, src.blocks_for(req.kv_tokens))
        self.late.at(end, (0, req.id), partial(self._arrive, x))

    def _arrive(self, x: _Handoff) -> None:
        """The prefill has ended: route the hand-off once (module docstring, "Routing once"); it waits at the
        chosen instance, behind those already waiting there, if that instance has no room now."""
        k = self.router.route(x.req, self.loads, self.env.now)
        load = self.loads[k]
        load.routed += 1
        x.to = load.inst
        self.decode_instance[x.req.id] = load.inst.index
        if load.queue or not self._place(x):
            load.queue.append(x)
            load.queued_blocks += x.blocks

    def released(self, inst: Instance) -> None:
        """A decode instance freed blocks: retry the hand-offs waiting for it once this instant's events are in."""
        k = self._slot.get(inst.index)
        if k is not None and self.loads[k].queue and k not in self._retry_due:
            self._retry_due.add(k)
            self.late.at(self.env.now, (1, k), partial(self._retry, k))

    def _retry(self, k: int) -> None:
        self._retry_due.discard(k)
        load = self.loads[k]
        queue = load.queue
        while queue and self._place(queue[0]):
            load.queued_blocks -= queue.popleft().blocks

    def _place(self, x: _Handoff) -> bool:
        """Reserve memory on the routed decode instance and book the copy; False if it has no room now."""
        req, now, dst = x.req, self.env.now, x.to
        assert dst is not None
        if not dst.copies.reserve_incoming(x.blocks):
            return False
        x.dst = dst
        link = self.links[x.src.index]
        secs = x.blocks * self.block_s
        overlap = self.layerwise and now == x.end  # layer-wise copy alongside the prefill's last iteration
        if overlap:
            start, data_end = link.book(x.start, secs, x.blocks, earliest_end=x.end + secs / self.layers)
            queued = start - x.start
        else:
            start, data_end = link.book(now, secs, x.blocks)
            queued = (now - x.end) + (start - now)
        ready = data_end + link.latency_s
        self.kv_transfer_s[req.id] = ready - x.end
        self.ready[req.id] = ready
        self.kv_transfer_wait_s[req.id] = queued
        tracer = x.src.tracer
        if tracer is not None:
            tracer.kv_transfer(x.src.index, dst.index, start, ready, req.id, x.blocks * self.block_bytes)
        self.late.at(ready, (0, req.id), partial(self._land, x, dst))
        return True

    def _land(self, x: _Handoff, dst: Instance) -> None:
        req = x.req
        x.src.copies.release(req)
        req.blocks = x.blocks
        dst.copies.deliver(req)
        self.loads[self._slot[dst.index]].routed -= 1
        del self.moving[req.id]
        self.in_transit -= 1
        if not self.in_transit and all(p.arrivals_closed and not p.waiting and not p.running for p in self.prefill):
            for d in self.decode:
                d.close_arrivals()

    def _admitted(self, req: Request, t: float) -> None:
        """A decode instance took a handed-off request into its batch at `t` (first time only): the wait since its
        KV became usable there — the step in flight when it landed (TensorRT-LLM's generation executor checks
        transfers once per iteration, `_check_disagg_gen_transfer_status`; SGLang's decode scheduler polls its
        transfer queue once per event-loop pass), then any wait for a decode slot or KV room."""
        i = req.id
        if math.isnan(self.decode_wait_s[i]) and not math.isnan(self.ready[i]):
            self.decode_wait_s[i] = t - self.ready[i]

    # -- results ---------------------------------------------------------------------------------------
    def columns(self) -> dict[str, np.ndarray]:
        return {
            "decode_instance": self.decode_instance,
            "kv_transfer_s": self.kv_transfer_s,
            "kv_transfer_wait_s": self.kv_transfer_wait_s,
            "decode_wait_s": self.decode_wait_s,
        }

    def summary(self) -> dict[str, Any]:
        x = self.kv_transfer_s[~np.isnan(self.kv_transfer_s)]
        w = self.kv_transfer_wait_s[~np.isnan(self.kv_transfer_wait_s)]
        a = self.decode_wait_s[~np.isnan(self.decode_wait_s)]

        def pct(v: np.ndarray, q: float) -> float:
            return float(np.percentile(v, q)) if v.size else math.nan

        return {
            "mode": "layerwise" if self.layerwise else "serialized",
            "transfers": int(x.size),
            "kv_transfer_s": {"mean": float(x.mean()) if x.size else math.nan, "p50": pct(x, 50), "p99": pct(x, 99)},
            "kv_transfer_wait_s": {"mean": float(w.mean()) if w.size else math.nan, "p99": pct(w, 99)},
            "decode_wait_s": {"mean": float(a.mean()) if a.size else math.nan, "p99": pct(a, 99)},
            "link_busy_s": sum(link.busy_s for link in self.links.values()),
            "blocks_moved": sum(link.blocks for link in self.links.values()),
            "waiting_for_decode_memory": sum(len(load.queue) for load in self.loads),
        }
