"""Chrome/Perfetto traces: spans agree with requests.parquet, instance tracks are ordered and never overlap."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import sim
from sim.errors import ServesimError
from sim.output.perfetto import PID_INSTANCES, PID_REQUESTS, PID_TRANSFERS, Tracer, pack_lanes
from sim.tools.cli import app
from tests.helpers import scenario, write_csv

TOL_US = 2e-3  # the trace rounds microseconds to the nanosecond


def _trace_rows(tmp_path, n: int = 60, seed: int = 1) -> list[tuple[float, int, int]]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(0.05, n))
    return [
        (float(a), int(p), int(o)) for a, p, o in zip(t, rng.integers(5, 200, n), rng.integers(1, 60, n), strict=True)
    ]


@pytest.fixture(scope="module", params=["fcfs", "sarathi"])
def traced(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    tr = write_csv(d / "t.csv", _trace_rows(d))
    sched = {"kind": "fcfs"} if request.param == "fcfs" else {"kind": "sarathi", "token_budget": 64}
    sc = scenario(tr, scheduler=sched, instances=2, kv_blocks=200)
    res = sim.run(sc, trace_events=d / "trace.json")
    res.requests.to_parquet(d / "requests.parquet", index=False)  # as `Result.save` writes it
    return res, json.loads((d / "trace.json").read_text()), pd.read_parquet(d / "requests.parquet")


def test_request_spans_match_requests_parquet(traced):
    _, trace, df = traced
    spans = {
        e["args"]["request"]: e
        for e in trace["traceEvents"]
        if e["ph"] == "X" and e["pid"] == PID_REQUESTS and e["name"].startswith("request ")
    }
    done = df[df["status"] == "completed"]
    assert len(done) == len(df) and set(spans) == set(done["request_id"])
    for r in done.itertuples():
        e = spans[r.request_id]
        assert e["ts"] == pytest.approx(r.arrival_s * 1e6, abs=TOL_US)
        assert e["ts"] + e["dur"] == pytest.approx(r.completion_s * 1e6, abs=TOL_US)
        assert e["args"]["instance"] == r.instance
        assert e["args"]["output_tokens"] == r.output_tokens
    # phases nest inside their request and follow its timestamps
    phases = defaultdict(dict)
    for e in trace["traceEvents"]:
        if e["ph"] == "X" and e["pid"] == PID_REQUESTS and not e["name"].startswith("request "):
            phases[e["args"]["request"]][e["name"]] = e
    for r in done.itertuples():
        ph = phases[r.request_id]
        if "queue" in ph:
            assert ph["queue"]["ts"] == pytest.approx(r.arrival_s * 1e6, abs=TOL_US)
            assert ph["queue"]["ts"] + ph["queue"]["dur"] == pytest.approx(r.first_scheduled_s * 1e6, abs=TOL_US)
        assert ph["prefill"]["ts"] == pytest.approx(r.first_scheduled_s * 1e6, abs=TOL_US)
        assert ph["prefill"]["ts"] + ph["prefill"]["dur"] == pytest.approx(r.first_token_s * 1e6, abs=TOL_US)
        if r.output_tokens > 1:
            assert ph["decode"]["ts"] + ph["decode"]["dur"] == pytest.approx(r.completion_s * 1e6, abs=TOL_US)


def test_request_lanes_never_overlap(traced):
    _, trace, _ = traced
    lanes = defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "X" and e["pid"] == PID_REQUESTS and e["name"].startswith("request "):
            lanes[e["tid"]].append((e["ts"], e["ts"] + e["dur"]))
    for spans in lanes.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - TOL_US


def test_instance_spans_ordered_disjoint_and_count_iterations(traced):
    res, trace, _ = traced
    by_inst = defaultdict(list)
    for e in trace["traceEvents"]:
        if e["ph"] == "X" and e["pid"] == PID_INSTANCES:
            by_inst[e["tid"]].append(e)
    assert set(by_inst) == set(res.instances["instance"])
    for inst, spans in by_inst.items():
        ts = [e["ts"] for e in spans]
        assert ts == sorted(ts), "iteration spans are time-ordered"
        for a, b in itertools.pairwise(spans):
            assert b["ts"] >= a["ts"] + a["dur"] - TOL_US, (a, b)
        for e in spans:
            assert e["dur"] > 0
            args = e["args"]
            if "steps" in args:
                assert args["steps"] >= 1 and args["decodes"] >= 1
            else:
                assert args["prefill_chunks"] >= 1 and args["prefill_tokens"] >= args["prefill_chunks"]
        steps = sum(e["args"].get("steps", 1) for e in spans)
        assert steps == int(res.instances.set_index("instance").loc[inst, "iterations"])
        busy = sum(e["dur"] for e in spans) / 1e6
        assert busy == pytest.approx(
            res.instances.set_index("instance").loc[inst, "busy_fraction"] * res.summary["sim"]["simulated_s"], rel=1e-6
        )


def test_fast_forward_run_is_one_span(tmp_path):
    # one long decode alone: the fast-forward run is a single span of many steps
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 50)])
    tracer = Tracer()
    sim.run(scenario(tr), trace_events=tracer)
    spans = [e for e in tracer.trace["traceEvents"] if e["ph"] == "X" and e["pid"] == PID_INSTANCES]
    assert [e["name"] for e in spans] == ["prefill", "decode x49"]
    assert spans[1]["args"] == {"steps": 49, "decodes": 1}
    # prefill 10 tokens at 0.01 + 10 * 0.001, then 49 decodes at 0.012 (helpers' linear cost)
    assert spans[0]["dur"] == pytest.approx(0.02e6)
    assert spans[1]["dur"] == pytest.approx(49 * 0.012e6)


def test_tracing_does_not_change_results(tmp_path):
    tr = write_csv(tmp_path / "t.csv", _trace_rows(tmp_path, 40, seed=3))
    sc = scenario(tr, instances=2, kv_blocks=120)
    a = sim.run(sc)
    b = sim.run(sc, trace_events=Tracer(requests=False, counters=False))
    pd.testing.assert_frame_equal(a.requests, b.requests)


def test_rejected_request_is_an_instant_event(tmp_path):
    tr = write_csv(tmp_path / "t.csv", [(0.0, 10, 5), (0.1, 5000, 5)])  # 5005 tokens > context 4096
    tracer = Tracer()
    sim.run(scenario(tr), trace_events=tracer)
    inst = [e for e in tracer.trace["traceEvents"] if e["ph"] == "i"]
    assert len(inst) == 1 and inst[0]["args"] == {"request": 1, "reason": "exceeds_context"}
    assert inst[0]["ts"] == pytest.approx(0.1e6)


def test_transfer_hooks_make_a_transfers_track():
    tracer = Tracer()
    tracer.kv_transfer(0, 1, 1.0, 1.5, request_id=7, nbytes=1e6)
    tracer.migration(1, 0, 1.2, 1.3, request_id=8, stages=2)
    empty = pd.DataFrame(columns=["arrival_s"])
    trace = tracer.finish(empty, None, n_instances=2)
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["pid"] == PID_TRANSFERS]
    assert sorted(e["name"] for e in spans) == ["kv transfer 0->1", "migration 1->0"]
    assert len({e["tid"] for e in spans}) == 2  # they overlap, so two lanes


@settings(max_examples=50)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 10)), max_size=60))
def test_pack_lanes_never_overlaps(intervals):
    start = np.array([s for s, _ in intervals])
    end = start + np.array([d for _, d in intervals])
    lanes = pack_lanes(start, end)
    for lane in set(lanes.tolist()):
        idx = np.flatnonzero(lanes == lane)
        iv = sorted(zip(start[idx], end[idx], strict=True))
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(iv))
    if intervals and (end > start).all():  # greedy by start uses exactly the most intervals open at once
        depth = max(int(((start <= s) & (end > s)).sum()) for s in start)
        assert lanes.max() + 1 == max(depth, 1)


def test_cli_trace_events(tmp_path):
    tr = write_csv(tmp_path / "t.csv", _trace_rows(tmp_path, 20))
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario(tr)))
    out = tmp_path / "trace.json"
    r = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "s.yaml"),
            "--out",
            str(tmp_path / "run"),
            "--no-plots",
            "-q",
            "--trace-events",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "traceEvents" in json.loads(out.read_text())
    bad = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "s.yaml"),
            "--out",
            str(tmp_path / "run"),
            "--no-plots",
            "-q",
            "--trace-events",
            str(tmp_path / "s.yaml" / "x.json"),
        ],
    )
    assert bad.exit_code == 2


def test_unwritable_path_is_a_user_error(tmp_path):
    (tmp_path / "f").write_text("")
    t = Tracer(tmp_path / "f" / "trace.json")
    with pytest.raises(ServesimError, match="cannot write"):
        t.finish(pd.DataFrame(columns=["arrival_s"]), None, n_instances=1)
