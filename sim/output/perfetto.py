"""Chrome / Perfetto traces of a run (`servesim run --trace-events FILE.json`, `sim.run(..., trace_events=)`).

The engine calls a `Tracer` only where one is attached (`Instance.tracer`, None by default), once per
iteration and once per decode fast-forward run, so tracing costs nothing when it is off and a k-step run
is one span, not k. Everything else (per-request spans, KV / queue counters) is built after the run from
the request table and the timeline, which the run has anyway.

Layout of the trace (JSON object format, times in microseconds, open it at https://ui.perfetto.dev or
chrome://tracing):

* process "instances": one thread per instance, one complete event ("X") per iteration with its batch
  composition (prefill chunks, prefill tokens, decodes) or per decode run (steps, decodes); counters of
  KV blocks used, running and waiting requests per instance;
* process "requests": one span per request from arrival to completion with nested queue → prefill →
  decode phases, packed into as few lanes as overlap allows; rejections as instant events;
* process "transfers": KV transfers and migrations (hooks `kv_transfer` / `migration`, for the
  disaggregated and migration engines to call).
"""

from __future__ import annotations

import heapq
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import ServesimError

PID_INSTANCES, PID_REQUESTS, PID_TRANSFERS = 1, 2, 3
_US = 1e6


def _us(t: float) -> float:
    """Seconds to microseconds, rounded to the nanosecond (keeps the file small, exact enough to read)."""
    return round(t * _US, 3)


def _span(name: str, pid: int, tid: int, t0: float, t1: float, args: dict[str, Any] | None = None) -> dict[str, Any]:
    ts = _us(t0)
    ev: dict[str, Any] = {"name": name, "ph": "X", "pid": pid, "tid": tid, "ts": ts, "dur": round(_us(t1) - ts, 3)}
    if args:
        ev["args"] = args
    return ev


def _meta(pid: int, tid: int | None, what: str, name: str) -> dict[str, Any]:
    ev: dict[str, Any] = {"name": what, "ph": "M", "pid": pid, "args": {"name": name}}
    if tid is not None:
        ev["tid"] = tid
    return ev


def pack_lanes(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Lane per interval so that intervals sharing a lane never overlap (greedy by start: fewest lanes)."""
    order = np.lexsort((end, start))  # by start, zero-length intervals first so they free their lane at once
    lanes = np.zeros(len(start), dtype=np.int64)
    free: list[tuple[float, int]] = []  # (end time, lane) of the lanes in use
    spare: list[int] = []  # lanes whose last interval has ended
    count = 0
    for i in order.tolist():
        s = float(start[i])
        while free and free[0][0] <= s:
            heapq.heappush(spare, heapq.heappop(free)[1])
        if spare:
            lane = heapq.heappop(spare)
        else:
            lane, count = count, count + 1
        lanes[i] = lane
        heapq.heappush(free, (float(end[i]), lane))
    return lanes


class Tracer:
    """Collects iteration spans from instances during a run, then writes the whole trace.

    Pass one to `sim.run(scenario, trace_events=tracer)` to keep the events in memory (`tracer.trace`),
    or a path to have them written there. `requests=False` leaves out the per-request spans (large runs).
    """

    def __init__(self, path: str | Path | None = None, *, requests: bool = True, counters: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.requests = requests
        self.counters = counters
        # raw tuples while the simulation runs; dicts are built once at the end
        self._iterations: list[tuple[int, float, float, int, int, int]] = []
        self._runs: list[tuple[int, float, float, int, int]] = []
        self._transfers: list[tuple[str, int, int, float, float, dict[str, Any]]] = []
        self.trace: dict[str, Any] | None = None

    # -- hooks the engine calls (keep them cheap) --------------------------------------------------------
    def iteration(self, instance: int, t0: float, t1: float, chunks: int, prefill_tokens: int, decodes: int) -> None:
        """One iteration with prefill work (and possibly decodes) from t0 to t1."""
        self._iterations.append((instance, t0, t1, chunks, prefill_tokens, decodes))

    def decode_run(self, instance: int, t0: float, t1: float, steps: int, decodes: int) -> None:
        """`steps` decode-only iterations of `decodes` sequences each, back to back from t0 to t1."""
        self._runs.append((instance, t0, t1, steps, decodes))

    def kv_transfer(self, src: int, dst: int, t0: float, t1: float, request_id: int, nbytes: float) -> None:
        """A KV cache moving between instances (disaggregated prefill → decode)."""
        self._transfers.append(("kv transfer", src, dst, t0, t1, {"request": request_id, "bytes": nbytes}))

    def migration(self, src: int, dst: int, t0: float, t1: float, request_id: int, **args: Any) -> None:
        """A live migration of a running request (Llumnix-style)."""
        self._transfers.append(("migration", src, dst, t0, t1, {"request": request_id, **args}))

    # -- after the run -------------------------------------------------------------------------------------
    def _instance_events(self, n_instances: int) -> list[dict[str, Any]]:
        ev = [_meta(PID_INSTANCES, None, "process_name", "instances")]
        ev += [_meta(PID_INSTANCES, i, "thread_name", f"instance {i}") for i in range(n_instances)]
        spans: list[tuple[int, float, dict[str, Any]]] = []
        for inst, t0, t1, chunks, tokens, decodes in self._iterations:
            name = "prefill+decode" if decodes else "prefill"
            args = {"prefill_chunks": chunks, "prefill_tokens": tokens, "decodes": decodes}
            spans.append((inst, t0, _span(name, PID_INSTANCES, inst, t0, t1, args)))
        for inst, t0, t1, steps, decodes in self._runs:
            name = "decode" if steps == 1 else f"decode x{steps}"
            spans.append((inst, t0, _span(name, PID_INSTANCES, inst, t0, t1, {"steps": steps, "decodes": decodes})))
        spans.sort(key=lambda s: (s[0], s[1]))
        return ev + [s[2] for s in spans]

    def _request_events(self, requests: pd.DataFrame) -> list[dict[str, Any]]:
        ev = [_meta(PID_REQUESTS, None, "process_name", "requests")]
        if requests.empty:
            return ev
        arrival = requests["arrival_s"].to_numpy(dtype=float)
        sched = requests["first_scheduled_s"].to_numpy(dtype=float)
        first = requests["first_token_s"].to_numpy(dtype=float)
        done = requests["completion_s"].to_numpy(dtype=float)
        status = requests["status"].astype(str).to_numpy()
        end_of_run = float(np.nanmax(np.concatenate([arrival, first, done])))
        # a request still in flight at the horizon spans to the last timestamp of the run
        end = np.where(np.isnan(done), end_of_run, done)
        lanes = pack_lanes(arrival, np.where(status == "rejected", arrival, end))
        for lane in range(int(lanes.max()) + 1 if len(lanes) else 0):
            ev.append(_meta(PID_REQUESTS, lane, "thread_name", f"lane {lane}"))
        ids = requests["request_id"].to_numpy()
        prompt = requests["prompt_tokens"].to_numpy()
        output = requests["output_tokens"].to_numpy()
        inst = requests["instance"].to_numpy()
        pre = requests["preemptions"].to_numpy()
        reason = requests["reject_reason"].astype(str).to_numpy()
        for i in range(len(requests)):
            rid, lane, a = int(ids[i]), int(lanes[i]), float(arrival[i])
            if status[i] == "rejected":
                ev.append(
                    {
                        "name": f"rejected {rid}",
                        "ph": "i",
                        "s": "t",
                        "pid": PID_REQUESTS,
                        "tid": lane,
                        "ts": _us(a),
                        "args": {"request": rid, "reason": reason[i]},
                    }
                )
                continue
            args = {
                "request": rid,
                "instance": int(inst[i]),
                "prompt_tokens": int(prompt[i]),
                "output_tokens": int(output[i]),
                "preemptions": int(pre[i]),
                "status": status[i],
            }
            e = float(end[i])
            ev.append(_span(f"request {rid}", PID_REQUESTS, lane, a, e, args))
            s, f = float(sched[i]), float(first[i])
            phases = (("queue", a, s), ("prefill", s, f), ("decode", f, e))
            for name, p0, p1 in phases:
                if math.isnan(p0):
                    break
                p1 = e if math.isnan(p1) else p1
                if p1 > p0:
                    ev.append(_span(name, PID_REQUESTS, lane, p0, p1, {"request": rid}))
        return ev

    def _transfer_events(self) -> list[dict[str, Any]]:
        if not self._transfers:
            return []
        ev = [_meta(PID_TRANSFERS, None, "process_name", "transfers")]
        t0 = np.array([x[3] for x in self._transfers])
        t1 = np.array([x[4] for x in self._transfers])
        lanes = pack_lanes(t0, t1)
        for lane in range(int(lanes.max()) + 1):
            ev.append(_meta(PID_TRANSFERS, lane, "thread_name", f"link lane {lane}"))
        for (name, src, dst, a, b, args), lane in zip(self._transfers, lanes.tolist(), strict=True):
            ev.append(_span(f"{name} {src}->{dst}", PID_TRANSFERS, lane, a, b, {"src": src, "dst": dst, **args}))
        return ev

    @staticmethod
    def _counter_events(timeline: pd.DataFrame) -> list[dict[str, Any]]:
        ev: list[dict[str, Any]] = []
        if timeline.empty:
            return ev
        cols = ("kv_used_blocks", "running", "waiting")
        t = timeline["time_s"].to_numpy(dtype=float)
        inst = timeline["instance"].to_numpy()
        vals = {c: timeline[c].to_numpy() for c in cols}
        for j in range(len(t)):
            i = int(inst[j])
            ev.append(
                {
                    "name": f"instance {i}",
                    "ph": "C",
                    "pid": PID_INSTANCES,
                    "ts": _us(float(t[j])),
                    "args": {c: int(vals[c][j]) for c in cols},
                }
            )
        return ev

    def finish(
        self,
        requests: pd.DataFrame,
        timeline: pd.DataFrame | None = None,
        *,
        n_instances: int,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Assemble the trace (and write it when the tracer has a path); returns the JSON object."""
        events = self._instance_events(n_instances)
        if self.counters and timeline is not None:
            events += self._counter_events(timeline)
        if self.requests:
            events += self._request_events(requests)
        events += self._transfer_events()
        self.trace = {"traceEvents": events, "displayTimeUnit": "ms", "otherData": metadata or {}}
        if self.path is not None:
            self.write(self.path)
        return self.trace

    def write(self, path: str | Path) -> Path:
        if self.trace is None:
            raise RuntimeError("Tracer.write before the run finished")
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(self.trace, separators=(",", ":")))
        except OSError as e:
            raise ServesimError(f"--trace-events {p}: cannot write ({e.strerror or e})") from None
        return p
