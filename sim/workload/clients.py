"""Closed-loop clients: `concurrency` users, each sending its next request when its previous one ends.

This is how vLLM `bench serve --max-concurrency`, aiperf, GuideLLM and inference-perf load a server. A
request ends for its client when it completes, is rejected or is abandoned (`workload.timeout_s`); the
client then thinks (`think_time_s`, fixed or exponential from the `think` stream) and sends the next
request of the workload, in workload order, until `num_requests` have been sent. Client i starts at
`i * ramp_up_s / concurrency`.

Sends run in the engine's late phase (`sim.core.late.LateQueue`), keyed by client: a send at time t sees
every instance after its own events at t (a step ending at t has ended), whether the instances step one
iteration at a time or fast-forward, so both modes stay identical; same-time sends go in client order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

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
    ) -> None:
        self.late = late
        self.spec = spec
        self.n = n
        self.send_fn = send
        self.rng = rng
        self.sent = 0
        self.client = np.full(n, -1, dtype=np.int32)  # which client sent each request (a requests column)

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
        self.send_fn(i, t)

    def ended(self, i: int, t: float) -> None:
        """Request i ended at t: its client sends the next one after its think time."""
        k = int(self.client[i])
        if k < 0 or self.sent >= self.n:
            return
        t_next = t + self._think()
        self.late.at(t_next, (4, k), partial(self._send, k, t_next))

    @property
    def done_sending(self) -> bool:
        return self.sent >= self.n
