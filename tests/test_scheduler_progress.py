"""Ranked schedulers (MLFQ) with a prefix cache under KV pressure always make progress (issue 15: MLFQ
crashed with "scheduler planned nothing ... (free blocks 0)"), and the prefix cache counts what preempting
a request frees (its shared blocks nobody else references) so eviction is not judged useless."""

from __future__ import annotations

import numpy as np

import sim
from sim.cluster.prefix_cache import PrefixCache
from sim.core.request import Request


def _req(rid: int, prompt: int, ids: list[int]) -> Request:
    return Request(rid, 0.0, prompt, 4, hash_ids=np.array(ids, dtype=np.int64))


def test_freeable_counts_shared_blocks_only_this_request_references() -> None:
    """Blocks of 16 tokens, 32-token ids: r0 and r1 share id 7 (2 blocks); r0 alone holds id 8 (2 blocks)."""
    pc = PrefixCache(total=100, block_size=16, block_tokens=32)
    r0, r1 = _req(0, 64, [7, 8]), _req(1, 48, [7, 9])
    pc.admit(r0)
    r0.prefill_done = 64
    pc.insert(r0)  # r0's first 4 blocks become the cache's: r0 holds 0 private + 4 shared
    assert (r0.blocks, r0.shared_blocks) == (0, 4)
    assert pc.freeable(r0) == 4  # nobody else: all four go back to the free pool
    pc.admit(r1)  # hits id 7's two blocks (the last prompt token is always computed: 47 // 16 = 2)
    assert (r1.shared_blocks, r1.blocks) == (2, 1)
    assert pc.freeable(r0) == 2  # id 7's blocks stay referenced by r1
    assert pc.freeable(r1) == 1  # its private block only
    free = pc.free
    pc.free_request(r0)
    assert pc.free == free + 2


def test_mlfq_with_prefix_cache_under_kv_pressure_finishes() -> None:
    """The issue's recipe on one instance (100 requests crashed before the fix, in about 4 s)."""
    sc = sim.load_scenario(
        "scenarios/prefix-mooncake.yaml",
        [
            "scheduler={kind: mlfq}",
            "kv_cache.gpu_memory_utilization=0.3",
            "workload.num_requests=100",
            "workload.arrival.time_scale=0.5",
            "cluster.instances=1",
            "cluster.router={kind: round_robin}",
        ],
    )
    res = sim.run(sc)
    c = res.summary["counts"]
    assert c["arrived"] == 100 and c["in_flight"] == 0
    assert c["completed"] + c["rejected"] == 100
    assert c["preemptions"] > 0  # it was under pressure, and got out of it by preempting
    done = res.requests[res.requests["status"] == "completed"]
    assert (done["generated_tokens"] == done["output_tokens"]).all()


def test_every_run_is_bounded_by_an_event_budget(tmp_path) -> None:
    """A run past engine.max_events stops with one line (exit 2), instead of running on; nothing is written."""
    import io
    from contextlib import redirect_stderr

    from sim.tools.cli import run_cli

    e = io.StringIO()
    with redirect_stderr(e):
        rc = run_cli(
            ["run", "scenarios/quickstart.yaml", "--set", "engine.max_events=300", "--out", str(tmp_path / "o"), "-q"]
        )
    lines = e.getvalue().strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "simulation stopped after 300 events" in lines[0], lines
    assert not (tmp_path / "o").exists()
