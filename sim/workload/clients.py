"""Closed-loop clients: `concurrency` users, each sending its next request when its previous one ends.

This is how vLLM `bench serve --max-concurrency`, aiperf, GuideLLM and inference-perf load a server. A
request ends for its client when it completes, is rejected or is abandoned (`workload.timeout_s`); the
client then thinks (`think_time_s`, fixed or exponential from the `think` stream) and sends the next
request of the workload, in workload order, until `num_requests` have been sent. Client i starts at
`i * ramp_up_s / concurrency`.

A client sees a completion or a rejection `response_s` after the engine produced it: the serving engine's
`frontend_s` (HTTP, detokenising and streaming the response back), the same term `sim.output.metrics` adds
to the E2E a client measures. So its next request leaves at end + frontend_s + think time, not at the
engine's end: a benchmark client (vLLM `bench serve --max-concurrency`) sends only after reading the
response. A request the client abandoned (`workload.timeout_s`) ends on the client's own clock: no wait.

Sends run in the engine's late phase (`sim.core.late.LateQueue`), keyed by client: a send at time t sees
every instance after its own events at t (a step ending at t has ended), whether the instances step one
iteration at a time or fast-forward, so both modes stay identical; same-time sends go in client order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from sim.core.late import LateQueue
from sim.workload.arrivals import ClosedLoopArrival


class ClosedLoopClients:
    """The clients of one run. `send(i, t)` issues request i at time t; `ended(i, t)` is the engine's
    report that request i ended at t (completion, rejection or abandonment)."""

    def __init__(
        self,
        late: LateQueue,
        spec: ClosedLoopArrival,
        n: int,
        send: Callable[[int, float], None],
        rng: np.random.Generator,
        response_s: float = 0.0,
        timeout_s: float | None = None,
    ) -> None:
        self.late = late
        self.spec = spec
        self.n = n
        self.send_fn = send
        self.rng = rng
        self.response_s = response_s
        self.timeout_s = timeout_s
        self.sent = 0
        self.client = np.full(n, -1, dtype=np.int32)  # which client sent each request (a requests column)
        self.sent_at = np.full(n, np.nan)

    def start(self) -> None:
        c = self.spec.concurrency
        for k in range(min(c, self.n)):  # clients beyond the workload's size never send
            t = k * self.spec.ramp_up_s / c
            self.late.at(t, (4, k), partial(self._send, k, t))

    def _think(self) -> float:
        z = self.spec.think_time_s
        if z == 0.0:
            return 0.0
        return float(self.rng.exponential(z)) if self.spec.think_time == "exponential" else z

    def _send(self, k: int, t: float) -> None:
        if self.sent >= self.n:
            return
        i = self.sent
        self.sent += 1
        self.client[i] = k
        self.sent_at[i] = t
        self.send_fn(i, t)

    def ended(self, i: int, t: float) -> None:
        """Request i ended at t: its client sees it `response_s` later (unless it gave up: then at t) and sends
        the next one after its think time."""
        k = int(self.client[i])
        if k < 0 or self.sent >= self.n:
            return
        gave_up = self.timeout_s is not None and t - float(self.sent_at[i]) >= self.timeout_s * (1 - 1e-12)
        t_next = t + (0.0 if gave_up else self.response_s) + self._think()
        self.late.at(t_next, (4, k), partial(self._send, k, t_next))

    @property
    def done_sending(self) -> bool:
        return self.sent >= self.n


def client_timing(sc: Any) -> dict[str, Any]:
    """`ClosedLoopClients` keyword arguments from a scenario: the front-end time a client waits for each response
    (`serving_engine.frontend_s`, where the cost model prices the serving engine) and the client timeout."""
    from sim.costmodel.build import prices_serving_engine

    fe = sc.serving_engine.frontend_s if prices_serving_engine(sc.cost_model) else 0.0
    return {"response_s": float(fe), "timeout_s": sc.workload.timeout_s}
