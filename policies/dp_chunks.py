"""Prompt chunks per attention-DP rank: SGLang's step plan under `--enable-dp-attention`.

With DP attention SGLang runs one scheduler per DP rank, each on its own requests, and the ranks step in
lockstep (idle ranks run an idle batch so the MoE collectives line up):

- Budget. `ServerArgs._handle_data_parallelism` sets `chunked_prefill_size = chunked_prefill_size // dp_size`
  ("DP attention is enabled. The chunked prefill size is adjusted to ... to avoid MoE kernel issues",
  python/sglang/srt/server_args.py, sgl-project/sglang@469c63e54e7d94591617ef9590c6aa26d54dc1bb): each rank's
  PrefillAdder fills at most that many prompt tokens per step, so the instance takes at most the configured
  size, spread over the ranks.
- Dispatch. The `DataParallelController` sends each request to one rank as it arrives: `round_robin_scheduler`
  (a counter over the ranks) in an aggregated server, `follow_bootstrap_room_scheduler` (`bootstrap_room %
  dp_size`, the router's random room id) in a disaggregated one (python/sglang/srt/managers/
  data_parallel_controller.py, sgl-project/sglang@000a3db1c0c42140f14ddab7b4c6dda86de1fa4b). The request stays
  on that rank: its KV cache is there.

`RankChunks` plans this over servesim's one waiting queue: each request gets a rank the first time the plan
sees it, round robin in arrival order (the bootstrap room's residue is uniform over the ranks, so round robin
is its deterministic equal in expectation), and each rank takes its own prompts' chunks up to its budget. A
rank whose budget is spent lets the next waiting request of another rank go ahead of it, as that rank's own
scheduler would. Memory and the running-request cap stay the instance's (servesim pools the KV cache). The
cost model prices such a step at its busiest rank, from the chunks alone, not from this plan's ranks
(`StructuredCost._busiest_tokens`): chunks placed whole, largest-first on the least-loaded rank, for attention
and for the dense layers (projections, dense MLPs, shared experts, norms, the MoE dispatch) alike, decodes
ceil(decodes / dp) per rank, so a step with one 2,048-token chunk at dp = 4 runs its dense layers on 2,048
tokens plus that rank's decodes (branch s15-dprank; before it they were priced as if spread evenly). This
matches the plan's ranks when each rank holds at most one chunk; where the plan put two chunks on one rank
the largest-first placement may spread them and price the step below what the plan's busiest rank runs.
"""

from __future__ import annotations

from policies.reserve import Reservation
from sim.core.batch import BatchPlan, InstanceView
from sim.core.request import Request


class RankChunks:
    """The per-rank chunk budget and each request's rank (by request id) of one instance."""

    def __init__(self, budget: int, dp: int) -> None:
        self.dp = dp
        self.per_rank = max(1, budget // dp)  # SGLang: chunked_prefill_size // dp_size (module docstring)
        self.rank: dict[int, int] = {}
        self.next_rank = 0  # the dispatcher's round-robin counter

    def rank_of(self, req: Request) -> int:
        r = self.rank.get(req.id)
        if r is None:
            r = self.rank[req.id] = self.next_rank
            self.next_rank = (self.next_rank + 1) % self.dp
        return r

    def fill(
        self, inst: InstanceView, plan: BatchPlan, max_seqs: int, reserve: Reservation | None, swapped: set[int]
    ) -> None:
        """Add prompt chunks to `plan` (its decodes planned): running prefills first, then new prompts, each on
        its rank within that rank's budget less its share of the step's decodes (ceil(decodes / dp), the share
        the cost model gives the busiest rank)."""
        waiting, running, prefilling = inst.waiting, inst.running, inst.prefilling
        live = {r.id for r in prefilling} | {r.id for r in waiting}
        if len(self.rank) > len(live):  # forget finished requests (their prefill is over)
            self.rank = {k: v for k, v in self.rank.items() if k in live}
        share = -(-plan.decode_count // self.dp)
        left = [self.per_rank - share] * self.dp
        for req, n in plan.prefill:  # swapped back in mid-prefill: already planned
            left[self.rank_of(req)] -= n
        for req in prefilling:
            r = self.rank_of(req)
            if left[r] > 0 and req.id not in swapped:
                n = min(req.prefill_target - req.prefill_done, left[r])
                plan.prefill.append((req, n))
                left[r] -= n
        if reserve is not None:
            reserve.begin(inst, plan)
        i = 0
        while i < len(waiting) and max(left) > 0 and len(running) < max_seqs:
            req = waiting[i]
            r = self.rank_of(req)
            if left[r] <= 0:  # this rank is full this step: its queue waits, the others' go on
                i += 1
                continue
            if req.kv_tokens > 0 or not inst.can_admit(req) or (reserve is not None and not reserve.admits(inst, req)):
                break  # swapped out (comes back first), or memory: FCFS over the pooled cache
            inst.admit(req)  # leaves `waiting`: index i is now the next request
            if reserve is not None:
                reserve.admitted(req)
            n = min(req.prefill_target, left[r])
            plan.prefill.append((req, n))
            left[r] -= n


def rank_chunks(engine: object, budget: int, dp: int) -> RankChunks | None:
    """The per-rank split of `budget` where the engine plans prompts per attention-DP rank
    (`serving_engine.attention_dp_rank_chunks`) and the instance has ranks; None otherwise."""
    if dp > 1 and bool(getattr(engine, "attention_dp_rank_chunks", False)):
        return RankChunks(budget, dp)
    return None
