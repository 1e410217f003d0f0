"""KV blocks allocated chunk by chunk during a prefill, as vLLM V1 does (`policies.vllm`).

vLLM V1's scheduler calls `kv_cache_manager.allocate_slots(request, num_new_tokens)` for every chunk it schedules
(vllm/v1/core/sched/scheduler.py): a request admitted with a 2,048-token chunk of a 10,000-token prompt holds the
blocks of 2,048 tokens, not 10,000, and asks for more at each later chunk. A scheduler that wants this admits
with `InstanceView.admit(req, tokens)` and grows a running prefill with `reserve_prefill`; the other schedulers
keep reserving the whole prompt on admission.
"""

from __future__ import annotations

from typing import Any

from sim.core.request import Request


class ChunkKV:
    """`reserve_prefill` for `sim.core.instance.Instance` (kept here to keep that module small)."""

    allocator: Any
    block_size: int

    def reserve_prefill(self, req: Request, tokens: int) -> bool:
        """Take the blocks `req` needs to hold its KV after its next `tokens` prompt tokens; False (nothing
        taken) when the free blocks do not cover them."""
        have = req.blocks + req.shared_blocks
        need = -(-(req.prefill_done + tokens) // self.block_size) - have
        if need <= 0:
            return True
        if need > self.allocator.free:
            return False
        self.allocator.take(need)
        req.blocks += need
        return True
