"""Cluster shapes: disaggregation, migration and prefix caching, by hand-computed cases and properties.

Hand cases use the `linear` cost model (iteration = 0.01 + 0.001/prefill token + 0.002/decoding sequence)
and the tiny model (8192 bytes per 16-token block, 2 layers), so every number can be checked on paper.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.core.engine import Simulation
from tests.helpers import scenario, tiny_gpu, write_csv
from tests.oracle_decode import per_request_decoding
from tests.strategies import examples, linear_costs, request_rows

BLOCK_BYTES = 8192


def _disagg(trace, mode="serialized", gbps=1.0, latency=0.002, **kw):
    cluster = {
        "prefill": {"instances": 1},
        "decode": {"instances": 1},
        "kv_transfer": mode,
        "link": {"bandwidth_gbps": gbps, "latency_s": latency},
    }
    cluster.update(kw.pop("cluster", {}))
    return scenario(trace, cluster=cluster, **kw)


# -- disaggregation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["serialized", "layerwise"])
def test_disagg_single_request_ttft_and_second_token(tmp_path, mode):
    res = sim.run(_disagg(write_csv(tmp_path / "w.csv", [(0.0, 100, 5)]), mode=mode))
    r = res.requests.iloc[0]
    prefill = 0.01 + 0.001 * 100
    copy = 7 * BLOCK_BYTES / (1.0e9 / 8)  # ceil(100/16) blocks over 1 Gbit/s
    exposed = (copy if mode == "serialized" else copy / 2) + 0.002  # layer-wise: the last of 2 layers
    step = 0.01 + 0.002
    assert r.ttft_s == pytest.approx(prefill, abs=1e-12)  # the prefill instance emits the first token
    assert r.kv_transfer_s == pytest.approx(exposed, abs=1e-12)
    assert r.kv_transfer_wait_s == 0.0
    assert (r.instance, r.decode_instance) == (0, 1)
    assert r.completion_s == pytest.approx(prefill + exposed + 4 * step, abs=1e-12)  # 2nd token: + copy + step
    assert r.tpot_s == pytest.approx((exposed + 4 * step) / 4, abs=1e-12)
    c = res.summary["cost"]
    assert c["gpus"] == 2 and set(c["pools"]) == {"prefill", "decode"}


def test_transfers_and_migrations_are_traced(tmp_path):
    from sim.output.perfetto import Tracer

    tracer = Tracer()
    sim.run(_disagg(write_csv(tmp_path / "w.csv", [(0.0, 100, 5), (0.0, 50, 1)])), trace_events=tracer)
    assert [(x[0], x[1], x[2]) for x in tracer._transfers] == [("kv transfer", 0, 1)]  # the 1-token one stays
    tracer = Tracer()
    sim.run(_mig(write_csv(tmp_path / "m.csv", MIG_TRACE)), trace_events=tracer)
    assert [(x[0], x[5]["request"]) for x in tracer._transfers] == [("migration", 2)]


def test_disagg_layerwise_overlap_shrinks_when_the_link_is_slow(tmp_path):
    """A copy slower than the prefill it overlaps cannot hide: it ends `copy` after the prefill starts."""
    trace = write_csv(tmp_path / "w.csv", [(0.0, 100, 3)])
    r = sim.run(_disagg(trace, mode="layerwise", gbps=0.001, latency=0.0)).requests.iloc[0]
    copy = 7 * BLOCK_BYTES / (0.001e9 / 8)
    assert copy > 0.11
    assert r.kv_transfer_s == pytest.approx(copy - 0.11, abs=1e-12)


def test_disagg_link_queueing_and_decode_memory_wait(tmp_path):
    """Two prompts prefilled together share the link (the second waits for the first); a decode pool too
    small for both makes the second wait for memory until the first finishes."""
    trace = write_csv(tmp_path / "w.csv", [(0.0, 100, 3), (0.0, 100, 3)])
    res = sim.run(_disagg(trace, gbps=1.0, latency=0.0))
    copy = 7 * BLOCK_BYTES / (1.0e9 / 8)
    r = res.requests
    assert r.loc[0, "kv_transfer_s"] == pytest.approx(copy, abs=1e-12)
    assert r.loc[1, "kv_transfer_wait_s"] == pytest.approx(copy, abs=1e-12)
    assert r.loc[1, "kv_transfer_s"] == pytest.approx(2 * copy, abs=1e-12)
    # decode instance with room for one request (7 + 1 blocks) only
    sc = _disagg(trace, gbps=1.0, latency=0.0, cluster={"decode": {"instances": 1, "hardware": tiny_gpu(9)}})
    r = sim.run(sc).requests
    first_done = r.loc[0, "completion_s"]
    assert r.loc[1, "kv_transfer_wait_s"] == pytest.approx(first_done - 0.01 - 0.2, abs=1e-12)
    assert (r["status"] == "completed").all()


def test_disagg_rejects_what_no_decode_instance_can_hold(tmp_path):
    trace = write_csv(tmp_path / "w.csv", [(0.0, 100, 100), (0.0, 10, 2)])
    res = sim.run(_disagg(trace, cluster={"decode": {"instances": 1, "hardware": tiny_gpu(8)}}))
    assert list(res.requests["status"]) == ["rejected", "completed"]


def test_disagg_refuses_stateful_schedulers_across_kinds(tmp_path):
    """A request's scheduler state cannot cross from one scheduler kind to another."""
    trace = write_csv(tmp_path / "w.csv", [(0.0, 10, 2)])
    sc = _disagg(trace, cluster={"decode": {"instances": 1, "scheduler": {"kind": "mlfq"}}})
    with pytest.raises(sim.ServesimError, match="per-request state"):
        sim.run(sc)
    fcfs = {"instances": 1, "scheduler": {"kind": "fcfs"}}
    sc = _disagg(trace, scheduler={"kind": "sarathi"}, cluster={"decode": fcfs})
    assert sim.run(sc).summary["counts"]["completed"] == 1  # stateless kinds mix fine


def test_example_scenarios_run(tmp_path):
    for name in ("disagg-splitwise-ha", "migration-llumnix", "prefix-mooncake"):
        res = sim.run(sim.load_scenario(f"scenarios/{name}.yaml", ["workload.num_requests=150"]))
        assert res.summary["counts"]["completed"] == 150, name
        assert res.summary["cost"]["gpus"] == 4


def test_disagg_pools_with_different_hardware_and_tp(tmp_path):
    trace = write_csv(tmp_path / "w.csv", [(0.0, 64, 4)])
    sc = scenario(
        trace,
        cost={"kind": "roofline"},
        model="llama-3.1-8b",
        hardware="h100-sxm",
        kv_cache={"gpu_memory_utilization": 0.9},
        cluster={"prefill": {"instances": 1, "tp": 2}, "decode": {"instances": 2, "hardware": "a100-80g"}},
    )
    res = sim.run(sc)
    c = res.summary["cost"]
    assert c["gpus"] == 4
    assert c["pools"]["prefill"]["hardware"] == "h100-sxm" and c["pools"]["decode"]["hardware"] == "a100-80g"
    assert c["dollars_per_hour"] == pytest.approx(2 * 2.99 + 2 * 1.79)
    assert res.requests.loc[0, "decode_instance"] in (1, 2)
    assert set(res.instances["role"]) == {"prefill", "decode"}


# -- prefix caching -----------------------------------------------------------------------------------------
def test_prefix_hit_skips_exactly_the_cached_blocks(tmp_path):
    trace = write_csv(tmp_path / "w.csv", [(0.0, 100, 5), (1.0, 100, 5), (2.0, 40, 3)])
    res = sim.run(
        scenario(
            trace,
            kv_cache={
                "gpu_memory_utilization": 1.0,
                "reserve_gb": 0.0,
                "watermark": 0.0,
                "prefix_cache": {"system_prompt_tokens": 48},
            },
        )
    )
    r = res.requests
    assert list(r["prefix_hit_tokens"]) == [0, 48, 32]  # 3 shared blocks; a 40-token prompt keeps its last token
    assert r.loc[0, "ttft_s"] == pytest.approx(0.01 + 0.001 * 100, abs=1e-12)
    assert r.loc[1, "ttft_s"] == pytest.approx(0.01 + 0.001 * (100 - 48), abs=1e-12)
    assert r.loc[2, "ttft_s"] == pytest.approx(0.01 + 0.001 * (40 - 32), abs=1e-12)
    assert res.summary["prefix_cache"]["hit_rate"] == pytest.approx(80 / 240)


def test_prefix_blocks_are_shared_not_double_counted(tmp_path):
    """Two concurrent requests with one cached 48-token prefix hold 3 shared + their own blocks."""
    trace = write_csv(tmp_path / "w.csv", [(0.0, 50, 2), (1.0, 100, 40), (1.0, 100, 40)])
    sc = sim.load_scenario(
        scenario(
            trace,
            kv_cache={
                "gpu_memory_utilization": 1.0,
                "reserve_gb": 0.0,
                "watermark": 0.0,
                "prefix_cache": {"system_prompt_tokens": 48},
            },
        )
    )
    s = Simulation(sc)
    seen = []

    def probe():
        yield s.env.timeout(1.2)
        inst = s.instances[0]
        seen.append((inst.allocator.used, [r.blocks for r in inst.running]))

    s.env.process(probe())
    s.run()
    used, blocks = seen[0]
    assert len(blocks) == 2 and used == sum(blocks) + 3  # own blocks, and the 3 shared prefix blocks once
    assert s.instances[0].allocator.free == s.instances[0].allocator.total  # all back (cached ones are free, evictable)


def _mooncake(path, rows):
    path.write_text(
        "".join(
            f'{{"timestamp": {t}, "input_length": {n}, "output_length": {o}, "hash_ids": {ids}}}\n'
            for t, n, o, ids in rows
        )
    )
    return path


def test_prefix_lru_evicts_the_oldest_unreferenced_blocks(tmp_path):
    """r0's 4 prompt blocks stay cached after it ends; r1 (no shared prefix) needs 7 blocks: with 11 blocks in
    all it takes free ones only, with 10 it evicts r0's last block (freed last-first, so the tail goes first)."""
    rows = [(0, 64, 2, [1, 2]), (1000, 100, 1, [3, 4, 5, 6]), (2000, 80, 1, [1, 2, 7])]
    kv = {"gpu_memory_utilization": 1.0, "reserve_gb": 0.0, "watermark": 0.0, "prefix_cache": {"block_tokens": 32}}
    for blocks, hits, evicted in ((11, [0, 0, 64], 0), (10, [0, 0, 48], 2)):  # 10: r3 then one of r1's
        sc = scenario(_mooncake(tmp_path / "m.jsonl", rows), kv_blocks=blocks, kv_cache=kv)
        sc["workload"]["arrival"]["format"] = "mooncake"
        res = sim.run(sc)
        assert list(res.requests["prefix_hit_tokens"]) == hits, blocks
        assert res.summary["prefix_cache"]["evictions"] == evicted


def test_prefix_mooncake_block_ids(tmp_path):
    """Mooncake ids (one per 512 tokens): a shared first id shares 32 engine blocks."""
    path = _mooncake(tmp_path / "m.jsonl", [(0, 600, 2, [7, 8]), (1000, 600, 2, [7, 9]), (2000, 600, 2, [7, 8])])
    sc = scenario(
        path, kv_cache={"gpu_memory_utilization": 1.0, "reserve_gb": 0.0, "watermark": 0.0, "prefix_cache": {}}
    )
    sc["workload"]["arrival"]["format"] = "mooncake"
    r = sim.run(sc).requests
    assert list(r["prefix_hit_tokens"]) == [0, 512, 592]  # 3rd: both ids, up to the last full block < 600


def test_prefix_affinity_router_follows_the_prefix(tmp_path):
    rows = [(0, [1, 2]), (10, [3, 4]), (2000, [1, 5]), (2010, [3, 6]), (4000, [3, 7])]
    path = _mooncake(tmp_path / "m.jsonl", [(t, 600, 2, ids) for t, ids in rows])
    kv = {"prefix_cache": {}, "watermark": 0.0, "gpu_memory_utilization": 1.0, "reserve_gb": 0.0}
    sc = scenario(path, instances=2, router="prefix_affinity", kv_cache=kv)
    sc["workload"]["arrival"]["format"] = "mooncake"
    r = sim.run(sc).requests
    assert list(r["instance"]) == [0, 1, 0, 1, 1]
    assert list(r["prefix_hit_tokens"]) == [0, 0, 512, 512, 512]


# -- migration ----------------------------------------------------------------------------------------------
MIG_TRACE = [(0.0, 100, 200), (0.001, 10, 2), (0.002, 100, 200), (0.003, 10, 2), (0.5, 100, 20), (0.6, 100, 20)]


def _mig(trace, gbps=0.01, **kw):
    return scenario(
        trace,
        kv_blocks=30,
        instances=2,
        router="round_robin",
        cluster={
            "instances": 2,
            "router": {"kind": "round_robin"},
            "migration": {"kind": "llumnix", "interval_s": 0.05, **kw},
            "link": {"bandwidth_gbps": gbps, "latency_s": 0.001},
        },
    )


def _kv_identity(s: Simulation) -> None:
    """Every block in use belongs to a running request, a request waiting with its KV present, a request held
    here while its KV is copied out, a copy coming in, or the prefix cache (blocks some request references).
    Needs exact request fields: fast_forward off, on the per-request reference (`tests/oracle_decode.py`)."""
    moves: list[Any] = [f for f in s.features if f.name == "migration"]  # concrete features, read in full
    handoffs: list[Any] = [f for f in s.features if f.name == "disaggregation"]
    active = list(moves[0].active.values()) if moves else []
    moving = list(handoffs[0].moving.values()) if handoffs else []

    def own(r, inst) -> int:
        assert r.shared_blocks == (len(r.prefix.shared) if r.prefix is not None else 0)
        return r.blocks

    for inst in s.instances:
        expect = sum(own(r, inst) for r in inst.running) + sum(own(r, inst) for r in inst.waiting if r.kv_here)
        if inst.prefix_cache is not None:
            cache: Any = inst.prefix_cache
            expect += sum(1 for e in cache.cache.values() if e[0] > 0)
        for m in active:
            if m.dst is inst:
                expect += m.copied
            if m.src is inst and m.req not in inst.running and not m.req.kv_here:
                expect += own(m.req, inst)
        for x in moving:
            if x.src is inst:
                expect += own(x.req, inst)
            if x.dst is inst:
                expect += x.blocks
        assert inst.allocator.used == expect, (s.env.now, inst.index, inst.allocator.used, expect)


def _probe(s: Simulation, every: float, out: list):
    while not s.done.triggered:
        _kv_identity(s)
        out.append((s.env.now, dict(cast(Any, s.features[0]).active) if s.features else {}))
        yield s.env.timeout(every)


def test_migration_moves_once_and_holds_blocks_on_both_sides_only_while_copying(tmp_path):
    sc = sim.load_scenario({**_mig(write_csv(tmp_path / "w.csv", MIG_TRACE)), "engine": {"fast_forward": False}})
    with per_request_decoding():
        s = Simulation(sc)
    samples: list = []
    s.env.process(_probe(s, 0.001, samples))
    s.run()
    assert list(s.log.generated) == [t[2] for t in MIG_TRACE]  # every token once, none lost or repeated
    mig = s.features[0]
    assert list(mig.migrations) == [0, 0, 1, 0, 0, 0] and mig.migrated_to[2] == 1
    assert mig.counts["completed"] == 1
    live = [t for t, act in samples if 2 in act]
    assert live, "the live copy is observable"
    after = [t for t, act in samples if t > max(live)]
    src = s.instances[0]
    assert after and all(not act for t, act in samples if t > max(live))
    assert src.copies.outgoing == 0
    for inst in s.instances:
        assert inst.allocator.free == inst.allocator.total and inst.copies.outgoing == 0


def test_migration_downtime_is_the_final_copy(tmp_path):
    res = sim.run(_mig(write_csv(tmp_path / "w.csv", MIG_TRACE), final_blocks=0, max_stages=1))
    r = res.requests.loc[2]
    m = res.summary["migration"]
    assert r.migrations == 1 and m["completed"] == 1
    assert r.migration_downtime_s >= 0.001  # at least the latency of the stop-and-copy
    assert m["mean_stages"] == 1.0


@pytest.mark.parametrize("stages", [1, 3])
def test_migration_aborts_cleanly_when_the_destination_fills(tmp_path, stages):
    """The first stage gets room, the next reservation does not: the move is called off (before or after the
    stop), the destination's blocks come back and the request finishes where it was, every token once."""
    trace = MIG_TRACE  # a slow link: r2 fills new blocks while its first stage copies
    sc = sim.load_scenario(
        {
            **_mig(write_csv(tmp_path / "w.csv", trace), gbps=0.001, final_blocks=0, max_stages=stages),
            "engine": {"fast_forward": False},
        }
    )
    with per_request_decoding():
        s = Simulation(sc)
    dst = s.instances[1]
    calls = []
    real = dst.copies.reserve_incoming

    def first_only(blocks: int) -> bool:
        calls.append(blocks)
        return real(blocks) if len(calls) == 1 else False

    dst.copies.reserve_incoming = first_only
    samples: list = []
    s.env.process(_probe(s, 0.001, samples))
    s.run()
    mig = s.features[0]
    assert len(calls) >= 2 and mig.counts["aborted_no_room"] >= 1 and mig.counts["completed"] == 0
    assert list(s.log.generated) == [t[2] for t in trace]
    assert list(mig.migrations) == [0] * 6 and s.log.instance[2] == 0
    for inst in s.instances:
        assert inst.allocator.free == inst.allocator.total and inst.copies.outgoing == 0


# -- properties ---------------------------------------------------------------------------------------------
request = request_rows(1.5, 120, 60)
schedulers = st.sampled_from(
    [
        {"kind": "fcfs"},
        {"kind": "fcfs", "max_num_seqs": 3, "max_num_batched_tokens": 64},
        {"kind": "sarathi", "token_budget": 32},
        {"kind": "mlfq"},
        {"kind": "sjf"},
    ]
)
costs = linear_costs
SETTINGS = settings(max_examples=examples(25))  # SERVESIM_EXAMPLES=500 for a longer hunt


def _check(s: Simulation, reqs: list[tuple[float, int, int]]) -> None:
    log = s.log
    status = log.status
    assert (status != 0).all()  # conservation: nothing left in flight, everything completed or rejected
    done = status == 1
    out = np.array([r[2] for r in sorted(reqs)])
    assert (log.generated[done] == out[done]).all()  # every token exactly once
    # every block back, but for copies into an instance still on the wire when the last request ended (a move
    # whose request finished meanwhile: it would be called off at its next stage)
    moves: list[Any] = [f for f in s.features if f.name == "migration"]
    for m in moves[0].active.values() if moves else []:
        assert s.log.status[m.req.id] == 1
    for inst in s.instances:
        assert inst.allocator.used == inst.copies.incoming and inst.copies.outgoing == 0 and not inst.copies.evicting
    for t, i, used, *_ in s.timeline:
        assert 0 <= used <= s.instances[i].num_blocks, (t, i, used)


def _outcome(s: Simulation) -> tuple:
    log = s.log
    cols = s.extra_columns()
    return (
        log.first_scheduled.tobytes(),
        log.first_token.tobytes(),
        log.completion.tobytes(),
        log.generated.tobytes(),
        log.preemptions.tobytes(),
        log.instance.tobytes(),
        log.status.tobytes(),
        tuple((k, np.asarray(v).tobytes()) for k, v in sorted(cols.items())),
        sum(i.iterations for i in s.instances),
    )


def _runs(tmp_path, reqs, sc_dict) -> None:
    """Conservation and bounds, and identical outcomes for fast-forward on/off × the cohort path or the
    per-request oracle."""
    reqs = sorted(reqs)
    sc_dict = {
        **sc_dict,
        "workload": {"arrival": {"kind": "trace", "path": str(write_csv(tmp_path / "w.csv", reqs)), "format": "csv"}},
        "predictor": {"kind": "oracle"},
    }
    ref = None
    for ff in (False, True):
        for oracle in (True, False):
            with per_request_decoding() if oracle else contextlib.nullcontext():
                s = Simulation(sim.load_scenario({**sc_dict, "engine": {"fast_forward": ff}}))
            s.env.process(_probe_kv(s, exact=not ff and oracle))
            s.run()
            _check(s, reqs)
            got = _outcome(s)
            if ref is None:
                ref = got
            else:
                assert got == ref, (ff, oracle)


def _probe_kv(s: Simulation, exact: bool):
    """Check pool bounds often, mid-run too (during copies), and the block accounting when fields are exact."""
    while not s.done.triggered:
        if exact:
            _kv_identity(s)
        for inst in s.instances:
            assert 0 <= inst.allocator.free <= inst.allocator.total
            assert 0 <= inst.kv_used_blocks() <= inst.num_blocks
        yield s.env.timeout(0.003)


@SETTINGS
@given(
    reqs=st.lists(request, min_size=1, max_size=20),
    sched=schedulers,
    cost=costs,
    kv=st.integers(12, 120),
    kv_d=st.integers(12, 120),
    n_p=st.integers(1, 2),
    n_d=st.integers(1, 2),
    mode=st.sampled_from(["serialized", "layerwise"]),
    gbps=st.floats(0.01, 10.0),
    latency=st.sampled_from([0.0, 0.001]),
    router=st.sampled_from(["least_kv", "round_robin", "llumnix"]),
    prefix=st.sampled_from([None, 32]),
)
def test_disaggregated_properties(tmp_path, reqs, sched, cost, kv, kv_d, n_p, n_d, mode, gbps, latency, router, prefix):
    kvc = {"gpu_memory_utilization": 1.0, "reserve_gb": 0.0, "watermark": 0.01}
    if prefix:
        kvc["prefix_cache"] = {"system_prompt_tokens": prefix}
    sc = scenario(
        write_csv(tmp_path / "x.csv", [(0.0, 1, 1)]),
        scheduler=sched,
        cost=cost,
        kv_blocks=kv,
        kv_cache=kvc,
        cluster={
            "prefill": {"instances": n_p},
            "decode": {"instances": n_d, "hardware": tiny_gpu(kv_d), "router": {"kind": router}},
            "kv_transfer": mode,
            "link": {"bandwidth_gbps": gbps, "latency_s": latency},
        },
    )
    _runs(tmp_path, reqs, sc)


@SETTINGS
@given(
    reqs=st.lists(request, min_size=1, max_size=20),
    sched=schedulers,
    cost=costs,
    kv=st.integers(12, 120),
    instances=st.integers(2, 3),
    gbps=st.floats(0.001, 1.0),
    interval=st.sampled_from([0.01, 0.05]),
    stages=st.integers(1, 3),
    final=st.integers(0, 4),
    preemption=st.sampled_from(["recompute", "swap"]),
    prefix=st.sampled_from([None, 32]),
    disagg=st.booleans(),
)
def test_migration_properties(
    tmp_path, reqs, sched, cost, kv, instances, gbps, interval, stages, final, preemption, prefix, disagg
):
    kvc = {"gpu_memory_utilization": 1.0, "reserve_gb": 0.0, "watermark": 0.01, "preemption": preemption}
    if prefix:
        kvc["prefix_cache"] = {"system_prompt_tokens": prefix}
    cluster = {
        "router": {"kind": "random"},
        "link": {"bandwidth_gbps": gbps, "latency_s": 0.0005},
        "migration": {
            "kind": "llumnix",
            "interval_s": interval,
            "max_stages": stages,
            "final_blocks": final,
            "threshold": 1.0,
        },
    }
    if disagg:
        cluster.update({"prefill": {"instances": 1}, "decode": {"instances": instances}})
    else:
        cluster["instances"] = instances
    sc = scenario(
        write_csv(tmp_path / "x.csv", [(0.0, 1, 1)]),
        scheduler=sched,
        cost=cost,
        kv_blocks=kv,
        kv_cache=kvc,
        cluster=cluster,
    )
    _runs(tmp_path, reqs, sc)


def test_migrated_request_is_not_stuck_behind_the_queue_head(tmp_path):
    """A request that holds its KV on the destination must get in even when the queue's head cannot (found by
    the property test: a recompute-preempted head waited for memory the migrated request held)."""
    reqs = [(0.0, 79, 3), (0.25, 81, 2), (0.25, 22, 28), (0.25, 33, 2)]
    sc = scenario(
        write_csv(tmp_path / "x.csv", [(0.0, 1, 1)]),
        scheduler={"kind": "fcfs"},
        cost={"kind": "linear", "base_s": 0.0078125, "per_prefill_token_s": 0.0, "per_decode_seq_s": 0.0},
        kv_blocks=12,
        kv_cache={"gpu_memory_utilization": 1.0, "reserve_gb": 0.0, "watermark": 0.01},
        cluster={
            "router": {"kind": "random"},
            "link": {"bandwidth_gbps": 0.001, "latency_s": 0.0005},
            "migration": {"kind": "llumnix", "interval_s": 0.01, "max_stages": 1, "final_blocks": 0, "threshold": 1.0},
            "prefill": {"instances": 1},
            "decode": {"instances": 2},
        },
    )
    _runs(tmp_path, reqs, sc)


def test_kv_routers_fast_forward_exact(tmp_path):
    """least_kv / llumnix routing reads KV use mid-run: fast-forward must count the step in flight."""
    rng = np.random.default_rng(5)
    reqs = [
        (float(t), int(p), int(o))
        for t, p, o in zip(
            np.sort(rng.uniform(0, 1.0, 60)), rng.integers(1, 200, 60), rng.integers(1, 80, 60), strict=True
        )
    ]
    for router in ("least_kv", "llumnix"):
        sc = scenario(
            write_csv(tmp_path / "x.csv", [(0.0, 1, 1)]),
            kv_blocks=60,
            instances=3,
            cluster={"instances": 3, "router": {"kind": router}},
        )
        _runs(tmp_path, reqs, sc)


def test_cost_summary_is_consistent(tmp_path):
    res = sim.run(
        scenario(
            write_csv(tmp_path / "w.csv", [(0.0, 100, 50), (0.1, 50, 20)]),
            instances=2,
            cluster={"instances": 2, "idle_power_fraction": 0.25},
        )
    )
    c = res.summary["cost"]
    tput = res.summary["throughput"]
    assert c["gpus"] == 2 and c["dollars_per_hour"] == pytest.approx(2.0)
    assert c["dollars_per_million_output_tokens"] == pytest.approx(2.0 / (tput["output_tokens_per_s"] * 3600) * 1e6)
    busy = res.instances["busy_fraction"].to_numpy()
    assert c["avg_power_w"] == pytest.approx(sum(100 * (0.25 + 0.75 * b) for b in busy))
    assert not math.isnan(c["energy_kwh"])
