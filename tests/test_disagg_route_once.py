"""The decode router is asked once per hand-off, when the prefill ends, and the hand-off waits at the instance it
chose (sim/cluster/disagg.py, "Routing once"): hand-computed cases and a property over random loads.

Hand cases use the tiny model (8192 bytes and 16 tokens per block) and the `linear` cost model of tests/helpers.py
(iteration = 0.01 + 0.001/prefill token + 0.002/decoding sequence).
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sim
from policies.routers import LeastKV, LeastRequests
from sim.cluster.disagg import Disaggregation, _Handoff, _Load
from sim.core.engine import Simulation
from tests.helpers import scenario, tiny_gpu, write_csv
from tests.oracle_decode import per_request_decoding
from tests.test_cluster import SETTINGS, _check, _probe_kv, costs, request, schedulers

COPY = 7 * 8192 / (1.0e9 / 8)  # a 100-token prompt's 7 blocks over 1 Gbit/s


def _two_decoders(trace, router: str = "round_robin", blocks: int = 9) -> dict[str, Any]:
    """One prefill instance; two decode instances with room for one 100-token request each (7 of 9 blocks)."""
    return scenario(
        trace,
        cluster={
            "prefill": {"instances": 1},
            "decode": {"instances": 2, "hardware": tiny_gpu(blocks), "router": {"kind": router}},
            "kv_transfer": "serialized",
            "link": {"bandwidth_gbps": 1.0, "latency_s": 0.0},
        },
    )


def _counting(s: Simulation) -> list[tuple[int, int]]:
    """Wrap the decode router: every call's (request, instance index) is recorded."""
    d = s.disagg
    assert d is not None
    calls: list[tuple[int, int]] = []
    route = d.router.route

    def counted(req, instances, now):
        k = route(req, instances, now)
        calls.append((req.id, instances[k].index))
        return k

    d.router.route = counted  # type: ignore[method-assign]  # a counting wrapper on the instance
    return calls


def test_round_robin_request_waits_for_its_own_full_worker(tmp_path):
    """A, B, C prefill together (0.01 + 0.3 s). Round robin sends A to decode 1, B to decode 2, C to decode 1,
    which is full (A holds 7 of its 9 blocks): C waits there until A finishes, although B on decode 2 finishes
    first (3 tokens) and frees its room. The router is asked three times, never on the retries."""
    trace = write_csv(tmp_path / "w.csv", [(0.0, 100, 30), (0.0, 100, 3), (0.0, 100, 3)])
    s = Simulation(sim.load_scenario(_two_decoders(trace)))
    calls = _counting(s)
    s.run()
    assert calls == [(0, 1), (1, 2), (2, 1)]  # once per hand-off: A, B, C in turn, from the prefill's end
    assert s.disagg is not None and s.disagg.router.next == 1  # 0, 1, 0: next is 1
    cols = s.extra_columns()
    assert list(cols["decode_instance"]) == [1, 2, 1]
    prefill_end = 0.01 + 0.001 * 300
    a_done, b_done = s.log.completion[0], s.log.completion[1]
    assert b_done < a_done  # decode 2 had room first; C did not move there
    # C's copy starts when A's blocks come back (the link is free by then): all of that is the memory wait
    assert cols["kv_transfer_wait_s"][2] == pytest.approx(a_done - prefill_end, abs=1e-12)
    assert cols["kv_transfer_s"][2] == pytest.approx(a_done - prefill_end + COPY, abs=1e-12)
    # A and B: no wait beyond B's turn on the shared link
    assert cols["kv_transfer_wait_s"][0] == 0.0
    assert cols["kv_transfer_wait_s"][1] == pytest.approx(COPY, abs=1e-12)
    assert (s.log.status == 1).all()
    for inst in s.instances:
        assert inst.allocator.used == 0 and inst.copies.incoming == 0


def test_waiting_hand_off_does_not_block_another_workers_queue(tmp_path):
    """The FIFO is per decode instance: D, routed to decode 2 behind nothing, goes at once although C still waits
    at decode 1 (one shared FIFO would hold D behind C)."""
    trace = write_csv(tmp_path / "w.csv", [(0.0, 100, 30), (0.0, 100, 3), (0.0, 100, 3), (0.5, 100, 3)])
    s = Simulation(sim.load_scenario(_two_decoders(trace)))
    calls = _counting(s)
    s.run()
    assert [c[1] for c in calls] == [1, 2, 1, 2]
    cols = s.extra_columns()
    assert s.log.completion[1] < 0.5 + 0.11  # B left decode 2 before D's prefill ended
    assert cols["kv_transfer_wait_s"][3] == 0.0  # D: no wait, while C still waits at decode 1
    assert s.log.completion[3] < s.log.completion[0]
    assert cols["kv_transfer_wait_s"][2] == pytest.approx(s.log.completion[0] - 0.31, abs=1e-12)


class _Inst:
    """A decode instance as far as a router reads it."""

    def __init__(self, index: int, used: int, n: int) -> None:
        self.index, self.num_blocks, self._used, self.block_size = index, 9, used, 32
        self.waiting: deque = deque()
        self.running = [object()] * n
        self.num_requests = n

    def kv_used_blocks(self) -> int:
        return self._used

    def admit_blocks(self, req) -> int:
        return 0


def test_load_aware_router_sees_what_is_routed_and_queued():
    """Decode 1 uses 5 of 9 blocks with a 7-block hand-off queued for it; decode 2 uses 6. least_kv reads
    (5 + 7) / 9 against 6 / 9 and picks decode 2 (blind to the queue it would pick decode 1 again); least_requests
    counts the queued and the in-flight hand-offs as requests."""
    a, b = _Load(_Inst(1, used=5, n=1)), _Load(_Inst(2, used=6, n=1))
    assert LeastKV().route(None, [a, b], 0.0) == 0
    x = _Handoff(req=None, src=None, start=0.0, end=0.0, blocks=7)
    a.queue.append(x)
    a.queued_blocks += x.blocks  # (as `Disaggregation._arrive` keeps it)
    a.routed = 1
    assert a.kv_used_blocks() == 12 and a.num_requests == 2 and a.block_size == 32  # (`prefix_affinity` reads it)
    assert LeastKV().route(None, [a, b], 0.0) == 1
    b.routed = 2  # two in flight to decode 2: their blocks are reserved already, they count as requests
    assert b.kv_used_blocks() == 6 and b.num_requests == 3
    assert LeastRequests().route(None, [a, b], 0.0) == 0


def test_least_kv_end_to_end_counts_the_queued_blocks(tmp_path):
    """Four 100-token prompts prefilled together; two decode instances with room for one each (7 of 9 blocks),
    least_kv. A -> decode 1, B -> decode 2 (decode 1 holds 7), C -> decode 1 (7 / 9 each, the tie to the lower
    index), where it waits; D sees decode 1 at (7 + 7) / 9 and decode 2 at 7 / 9 and goes to decode 2 (blind to
    C's queued blocks it would join decode 1 too). C waits for A, D for B."""
    trace = write_csv(tmp_path / "w.csv", [(0.0, 100, 3)] * 4)
    s = Simulation(sim.load_scenario(_two_decoders(trace, router="least_kv")))
    calls = _counting(s)
    s.run()
    assert calls == [(0, 1), (1, 2), (2, 1), (3, 2)]
    cols = s.extra_columns()
    prefill_end = 0.01 + 0.001 * 400
    assert cols["kv_transfer_wait_s"][2] == pytest.approx(s.log.completion[0] - prefill_end, abs=1e-12)
    assert cols["kv_transfer_wait_s"][3] == pytest.approx(s.log.completion[1] - prefill_end, abs=1e-12)
    assert (s.log.status == 1).all()


routers = st.sampled_from(
    [
        {"kind": "round_robin"},
        {"kind": "least_kv"},
        {"kind": "llumnix"},
        {"kind": "least_requests"},
        {"kind": "power_of_two"},
        {"kind": "random"},
        {"kind": "frontends_round_robin", "frontends": 3},
    ]
)


@SETTINGS
@given(
    reqs=st.lists(request, min_size=1, max_size=20),
    sched=schedulers,
    cost=costs,
    kv_d=st.integers(12, 60),
    n_d=st.integers(1, 3),
    mode=st.sampled_from(["serialized", "layerwise"]),
    gbps=st.floats(0.01, 10.0),
    router=routers,
    ff=st.booleans(),
    oracle=st.booleans(),
)
def test_route_once_properties(tmp_path, reqs, sched, cost, kv_d, n_d, mode, gbps, router, ff, oracle):
    """Every request completes or is rejected, every token once, every block back, no pool ever over its
    capacity (sampled mid-run); the router is asked exactly once per hand-off and each one lands where it was
    routed; nothing waits at the end."""
    reqs = sorted(reqs)
    sc = scenario(
        write_csv(tmp_path / "x.csv", reqs),
        scheduler=sched,
        cost=cost,
        kv_blocks=120,
        kv_cache={"gpu_memory_utilization": 1.0, "reserve_gb": 0.0, "watermark": 0.01},
        cluster={
            "prefill": {"instances": 1},
            "decode": {"instances": n_d, "hardware": tiny_gpu(kv_d), "router": router},
            "kv_transfer": mode,
            "link": {"bandwidth_gbps": gbps, "latency_s": 0.001},
        },
        predictor={"kind": "oracle"},
    )
    sc["engine"] = {"fast_forward": ff}
    with per_request_decoding() if oracle else contextlib.nullcontext():
        s = Simulation(sim.load_scenario(sc))
    calls = _counting(s)
    s.env.process(_probe_kv(s, exact=not ff and oracle))
    s.run()
    _check(s, reqs)
    d = s.disagg
    assert isinstance(d, Disaggregation)
    cols = s.extra_columns()
    moved = ~np.isnan(cols["kv_transfer_s"])
    ids = [c[0] for c in calls]
    assert sorted(ids) == sorted(set(ids)) == sorted(np.flatnonzero(moved).tolist())  # once per hand-off
    for rid, dst in calls:
        assert cols["decode_instance"][rid] == dst
    assert not any(load.queue for load in d.loads) and all(load.routed == 0 for load in d.loads)
    assert d.in_transit == 0 and not d.moving
    w, x = cols["kv_transfer_wait_s"][moved], cols["kv_transfer_s"][moved]
    assert (w >= 0).all()
    if mode == "serialized":  # (layer-wise: the link wait counts from the prefill's start, the copy from its end)
        assert (x >= w - 1e-12).all()
    done = (s.log.status == 1) & moved
    assert (~np.isnan(cols["decode_wait_s"][done]) | (s.log.generated[done] <= 1)).all()
    assert (cols["decode_wait_s"][~np.isnan(cols["decode_wait_s"])] >= 0).all()
