"""Automatic prefix caching: full prompt blocks shared across requests, evicted in LRU order.

The model is vLLM's. Every KV block sits in one free list (a queue) or is in use. A full prompt block,
once computed, is registered under a key that names its content *and* everything before it; later
requests whose prompts start the same way reference it instead of computing it ("a hit skips those
blocks' prefill"). When its last user finishes, a cached block goes back to the *tail* of the free list
still holding its content, so it can be hit again until allocation reaches it at the head — that is the
LRU eviction. The allocator's `free` count therefore includes evictable cached blocks, and everything that
reads `free` (schedulers, fast-forward, watermarks) keeps its meaning.

Host tier (optional, Mooncake's "more storage for less computation"): a cached block evicted from GPU
memory is kept in a host-memory LRU of `host_blocks` blocks. A prefix found there (after the blocks found
on the GPU) is not recomputed but copied back over the host link, priced like a swap-in; once back it is
registered on the GPU again.

Keys: with Mooncake-style block ids (one id per `block_tokens` prompt tokens, chained over the prefix),
engine block j (block_size tokens) is keyed by (id of the trace block holding its last token, j). For
traces without ids, `system_prompt_tokens` makes the first N tokens of every prompt one shared prefix.

A request's block table is `shared_blocks` blocks the cache owns (hit at admission, or its own prompt blocks
once registered; their keys are in `PrefixState.shared`) plus `blocks` of its own. So `blocks` counts what
freeing the request surely returns (what a scheduler choosing a victim may count on); freeing it gives back
its own blocks and drops one reference from each shared one (which returns too if it was the last).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import cast

import numpy as np

from sim.core.kvcache import BlockAllocator
from sim.core.request import Request

_POS = 1 << 20  # positions per id in a key (prompts up to 16M tokens at block size 16)


class PrefixState:
    """A request's keys (computed once) and what it holds on its current instance's cache."""

    __slots__ = ("keys", "shared", "upto")

    def __init__(self, keys: list[int]) -> None:
        self.keys = keys  # one per full prompt block that can be shared
        self.shared: list[int] = []  # keys of blocks in its table that the cache owns
        self.upto = 0  # prompt blocks [0, upto) were hit or considered for registration


class PrefixCache(BlockAllocator):
    """A `BlockAllocator` whose free blocks may still hold cached prompt blocks (see the module docstring)."""

    __slots__ = (
        "admissions",
        "block_size",
        "block_tokens",
        "cache",
        "evictions",
        "hit_log",
        "hit_tokens",
        "host",
        "host_blocks",
        "host_hit_tokens",
        "inserted",
        "lookup_tokens",
        "queue",
        "system_blocks",
        "tok",
    )

    def __init__(
        self, total: int, block_size: int, block_tokens: int = 512, system_prompt_tokens: int = 0, host_blocks: int = 0
    ) -> None:
        super().__init__(total)
        self.block_size = block_size
        self.block_tokens = block_tokens
        self.system_blocks = system_prompt_tokens // block_size
        # free list, head first: an int is a run of anonymous free blocks; (key, token) is a cached free block,
        # valid while `cache[key][1] == token` (a hit takes it out of the list lazily by changing the token)
        self.queue: deque[int | tuple[int, int]] = deque([total]) if total else deque()
        self.cache: dict[int, list[int]] = {}  # key -> [references, token in the free list (0: in use)]
        self.tok = 0
        self.host_blocks = host_blocks  # capacity of the host-memory tier, in blocks (0: none)
        self.host: OrderedDict[int, None] = OrderedDict()  # keys evicted from the GPU, least recent first
        self.host_hit_tokens = 0
        self.hit_log: np.ndarray | None = None  # per request id: prompt tokens served from the cache
        self.hit_tokens = 0
        self.lookup_tokens = 0
        self.admissions = 0
        self.inserted = 0
        self.evictions = 0

    # -- the free list -------------------------------------------------------------------------------
    def take(self, n: int) -> None:
        if n > self.free:
            raise AssertionError(f"KV blocks over-allocated: want {n}, free {self.free}")
        self.free -= n
        q, cache = self.queue, self.cache
        while n > 0:
            head = q[0]
            if isinstance(head, int):
                if head > n:
                    q[0] = head - n
                    return
                q.popleft()
                n -= head
            else:
                q.popleft()
                key, tok = head
                e = cache.get(key)
                if e is not None and e[1] == tok:  # a cached block reached the head: evict it
                    del cache[key]
                    self.evictions += 1
                    n -= 1
                    if self.host_blocks:  # ... to host memory
                        self.host[key] = None
                        if len(self.host) > self.host_blocks:
                            self.host.popitem(last=False)

    def give(self, n: int) -> None:
        if n <= 0:
            return
        self.free += n
        if self.free > self.total:
            raise AssertionError(f"KV blocks over-freed: free {self.free} > total {self.total}")
        q = self.queue
        if q and isinstance(q[-1], int):
            q[-1] += n
        else:
            q.append(n)

    def _compact(self) -> None:
        """Drop stale entries (blocks hit while in the free list) once they pile up."""
        cache = self.cache
        q: deque[int | tuple[int, int]] = deque()
        for x in self.queue:
            if isinstance(x, int):
                if q and isinstance(q[-1], int):
                    q[-1] += x
                else:
                    q.append(x)
            else:
                e = cache.get(x[0])
                if e is not None and e[1] == x[1]:
                    q.append(x)
        self.queue = q

    # -- requests ------------------------------------------------------------------------------------
    def state(self, req: Request) -> PrefixState:
        if req.prefix is None:
            req.prefix = PrefixState(self._keys(req))
        return cast(PrefixState, req.prefix)

    def _keys(self, req: Request) -> list[int]:
        bs = self.block_size
        n = req.prompt // bs
        ids = req.hash_ids
        if ids is not None and len(ids) and n:
            j = np.arange(n, dtype=np.int64)
            h = ((j + 1) * bs - 1) // self.block_tokens
            ok = h < len(ids)
            keys: list[int] = (np.asarray(ids, dtype=np.int64)[h[ok]] * _POS + j[ok]).tolist()
            return keys
        return [-(j + 1) for j in range(min(n, self.system_blocks))]

    def lookup(self, req: Request) -> tuple[int, int, int]:
        """(prompt blocks found on the GPU from its start, how many of those others use, blocks found in the
        host tier right after them). At least one prompt token is always computed (its logits give the first
        token)."""
        st = self.state(req)
        keys = st.keys
        limit = min(len(keys), (req.prefill_target - 1) // self.block_size)
        cache = self.cache
        hit = used = 0
        while hit < limit:
            e = cache.get(keys[hit])
            if e is None:
                break
            hit += 1
            if e[0]:
                used += 1
        more = 0
        host = self.host
        while hit + more < limit and keys[hit + more] in host:
            more += 1
        return hit, used, more

    def admit_blocks(self, req: Request, tokens: int | None = None) -> int:
        """Free blocks admitting `req` consumes: its prefill's blocks (with `tokens`, only those of its first
        `tokens` tokens after the hit: vLLM V1 allocates per chunk) less hits that others hold."""
        hit, used, more = self.lookup(req)
        return self._upto(req, hit + more, tokens) - used

    def _upto(self, req: Request, found: int, tokens: int | None) -> int:
        """Blocks a request holds after admission: its whole prefill, or the found blocks and `tokens` more."""
        total = -(-req.prefill_target // self.block_size)
        if tokens is None:
            return total
        return min(total, -(-(found * self.block_size + tokens) // self.block_size))

    def admit(self, req: Request, tokens: int | None = None) -> int:
        """Reference the cached prefix, allocate the rest (with `tokens`: only the first chunk's); the prefill
        starts after the hit. Returns the blocks to copy back from the host tier (the caller prices the copy)."""
        st = self.state(req)
        hit, _, more = self.lookup(req)
        keys = st.keys[:hit]
        cache = self.cache
        for key in keys:
            e = cache[key]
            if e[0] == 0:  # in the free list: take it out (its entry there goes stale)
                e[1] = 0
                self.free -= 1
            e[0] += 1
        if self.free < 0:
            raise AssertionError(f"KV blocks over-allocated by a prefix hit: free {self.free}")
        for key in st.keys[hit : hit + more]:  # most recent before the allocation below evicts into the tier
            self.host.move_to_end(key)
        upto = self._upto(req, hit + more, tokens)
        self.take(upto - hit)
        req.blocks = upto - hit
        req.shared_blocks = hit
        st.shared = list(keys)
        st.upto = hit  # host-tier blocks [hit, hit + more) are private copies until `insert` registers them
        tokens = (hit + more) * self.block_size
        req.prefill_done = req.kv_tokens = tokens
        self.admissions += 1
        self.hit_tokens += tokens
        self.host_hit_tokens += more * self.block_size
        self.lookup_tokens += req.prompt
        if self.hit_log is not None and req.generated == 0:
            self.hit_log[req.id] = tokens
        return more

    def insert(self, req: Request) -> None:
        """Register the request's prompt blocks computed so far (a key already cached stays a private copy)."""
        st = cast(PrefixState, req.prefix)
        m = min(min(req.prefill_done, req.prompt) // self.block_size, len(st.keys))
        if m <= st.upto:
            return
        cache = self.cache
        for key in st.keys[st.upto : m]:
            if key not in cache:  # its own block becomes the cache's, still referenced by it
                cache[key] = [1, 0]
                st.shared.append(key)
                req.blocks -= 1
                req.shared_blocks += 1
                self.inserted += 1
        st.upto = m

    def freeable(self, req: Request) -> int:
        """Blocks `free_request(req)` would return to the free pool: its private ones, and the shared ones no
        other request references (they stay cached, but are free for anyone to take)."""
        st: PrefixState | None = req.prefix  # type: ignore[assignment]  # req.prefix is typed as object on Request
        if st is None:
            return req.blocks
        cache = self.cache
        return req.blocks + sum(1 for key in st.shared if cache[key][0] == 1)

    def free_request(self, req: Request) -> None:
        """Give back its private blocks, then its shared ones (last first, so a prompt's tail is evicted first)."""
        st = cast(PrefixState, req.prefix)
        self.give(req.blocks)
        cache, q = self.cache, self.queue
        for key in reversed(st.shared):
            e = cache[key]
            e[0] -= 1
            if e[0] == 0:
                self.tok += 1
                e[1] = self.tok
                q.append((key, self.tok))
                self.free += 1
        if self.free > self.total:
            raise AssertionError(f"KV blocks over-freed: free {self.free} > total {self.total}")
        st.shared = []
        st.upto = 0
        req.shared_blocks = 0
        if len(q) > 2 * self.total + 64:
            self._compact()

    @property
    def cached_blocks(self) -> int:
        return len(self.cache)
