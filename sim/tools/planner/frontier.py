"""The search's state: one `Axis` per configuration (what is known of its sizes, which size to probe next)
and the `Frontier` of unresolved candidates in $/hour order. The assumption behind settling sizes without
running them is stated in `sim.tools.planner.search`."""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field

from sim.tools.planner.bounds import Bounds
from sim.tools.planner.evaluate import Evaluated, SearchLog
from sim.tools.planner.request import PlanRequest
from sim.tools.planner.space import SHAPES, Config, Shape, Size

EPS = 1e-6  # $/hour: candidates within this of the threshold are resolved too (ties break on headroom)


def _leq(a: Size, b: Size) -> bool:
    return len(a) == len(b) and all(x <= y for x, y in zip(a, b, strict=True))


@dataclass(eq=False)
class Axis:
    """What the search knows about one configuration's sizes (see the module doc for the assumption)."""

    config: Config
    bounds: Bounds
    floor: Size  # smallest size the bounds allow
    est: int | None = None  # where the estimate says to start (colocated)
    feasible: dict[Size, Evaluated] = field(default_factory=dict)
    infeasible: set[Size] = field(default_factory=set)  # SLO misses, rejected confirmations: settle smaller
    failed: set[Size] = field(default_factory=set)  # runs that errored: settle only themselves
    downs: int = 0  # feasible results so far (the first probe below one trusts the estimate, later bisect)

    @property
    def shape(self) -> Shape:
        return SHAPES[self.config.shape]

    def cost(self, size: Size) -> float:
        return self.shape.instances(size) * self.config.price_per_instance

    def below_bounds(self, size: Size) -> bool:
        return not _leq(self.floor, size) or self.shape.instances(size) < self.bounds.n_min["total"]

    def settled_infeasible(self, size: Size) -> bool:
        return self.below_bounds(size) or size in self.failed or any(_leq(size, x) for x in self.infeasible)

    def settled_feasible(self, size: Size) -> bool:
        return any(_leq(x, size) for x in self.feasible)

    def best(self) -> Evaluated | None:
        return min(self.feasible.values(), key=Evaluated.rank_key, default=None)

    def record(self, ev: Evaluated, log: SearchLog, counts: Counter[str]) -> None:
        if ev.feasible:
            self.feasible[ev.size] = ev
            self.downs += 1
        elif ev.row.get("status") == "ok":
            self.infeasible.add(ev.size)
        else:
            self.failed.add(ev.size)
        for ok in self.feasible:
            for bad in self.infeasible:
                if _leq(ok, bad) and ok != bad and (ok, bad) not in self._flagged:
                    self._flagged.add((ok, bad))
                    counts["monotonicity contradictions"] += 1
                    log(
                        f"  note: {self.config.label}: {self.shape.describe(ok)} meets the SLO but "
                        f"{self.shape.describe(bad)} does not (more instances hurt here; see the module doc)"
                    )

    def __post_init__(self) -> None:
        self._flagged: set[tuple[Size, Size]] = set()


def price_threshold(axes: list[Axis], top: int) -> float:
    """$/hour of the `top`-th cheapest configuration known to be feasible (inf until there are that many)."""
    costs = sorted(round(b.cost_per_hour, 6) for b in (a.best() for a in axes) if b is not None)
    return costs[top - 1] if len(costs) >= top else math.inf


DEFER_POOLS = 2.0  # until there is a price threshold, a candidate with several pools ranks as if it cost this much more


def priority(ax: Axis, size: Size, threshold: float = math.inf) -> float:
    """Which unresolved candidates to settle first (all of them are settled before the search ends): the
    configurations the estimate thinks cheapest, so that a price threshold is known early. Until there is one,
    candidates with several pools (prefill:decode pairs) wait as if they cost `DEFER_POOLS` times more: without
    a threshold their 2-D grid is walked size by size, with one every probe raises a pool to the threshold and a
    miss settles a whole row or column (`_probe_pools`), and single-pool axes are what usually sets it. On the
    README example this cuts the candidate runs from 67 to 49; it changes the order only, never the answer."""
    p = ax.cost(size) if ax.est is None or ax.feasible else ax.config.price_per_instance * max(size[0], ax.est)
    return p * DEFER_POOLS if threshold == math.inf and len(size) > 1 else p


def probe_size(req: PlanRequest, ax: Axis, size: Size, threshold: float) -> Size:
    """Which size to simulate to settle the unresolved candidate `size` (itself, or a colocated probe).

    Colocated, with `upper` the largest size within the budget and the price threshold: below a feasible
    size, the next size down, then bisection. Else, while the estimate `e` stands (e >= n): `upper` when e
    is above it (one failing run there settles the configuration); without a threshold yet, e itself (a
    feasible run sets the threshold sooner); with one, e − 1 (the cheaper side: if it fails e comes next,
    and if the configuration is not competitive e is never needed). Once the estimate is refuted: `upper`
    when there is a threshold, else walking up, galloping as the estimate proves further off.
    """
    if ax.config.shape != "colocated":
        return _probe_pools(req, ax, size, threshold)
    n = size[0]
    upper = req.budget // ax.config.tp
    if threshold < math.inf:
        upper = min(upper, math.floor((threshold + EPS) / ax.config.price_per_instance))
    hi = min((s[0] for s in ax.feasible), default=None)
    est = ax.est
    if hi is not None:
        upper = min(upper, hi - 1)
        target = upper if ax.downs <= 1 else (n + upper + 1) // 2
    elif est is None:
        target = n
    elif est >= n:
        target = upper if est > upper else est if threshold == math.inf else est - 1
    elif threshold < math.inf:
        target = upper
    else:
        target = n + max(0, n - 1 - est)
    probe = max(n, min(target, upper))
    while probe > n and (probe,) in ax.failed:
        probe -= 1
    return (probe,)


def _probe_pools(req: PlanRequest, ax: Axis, size: Size, threshold: float) -> Size:
    """For shapes with several pools, once there is a price threshold: `size` with one pool raised as far as
    the budget and the threshold allow (one failing run settles every size it dominates: a whole row or
    column of the grid), pool by pool, skipping extremes already known feasible; else `size` itself."""
    if threshold == math.inf:
        return size
    for i in range(len(size)):
        grown = list(size)
        while True:
            grown[i] += 1
            t = tuple(grown)
            if ax.shape.instances(t) * ax.config.tp > req.budget or round(ax.cost(t), 6) > threshold + EPS:
                grown[i] -= 1
                break
        probe = tuple(grown)
        if probe != size and probe not in ax.failed and not ax.settled_feasible(probe):
            return probe
    return size


Item = tuple[float, int, str, int, Axis, Size]  # ($/hour, GPUs, label, insertion order, axis, size)


class Frontier:
    """Unresolved (configuration, size) candidates, cheapest first (then fewer GPUs, label, insertion order)."""

    def __init__(self, req: PlanRequest, axes: list[Axis], counts: Counter[str] | None = None) -> None:
        self.req = req
        self.axes = axes
        self.axis = {ax.config: ax for ax in axes}
        self.counts: Counter[str] = counts if counts is not None else Counter()
        self.heap: list[Item] = []
        self.seq = itertools.count()
        self.seen: set[tuple[Config, Size]] = set()

    def push(self, ax: Axis, size: Size, again: bool = False) -> None:
        key = (ax.config, size)
        if ax.shape.instances(size) * ax.config.tp > self.req.budget or (key in self.seen and not again):
            return
        self.seen.add(key)
        gpus = ax.shape.instances(size) * ax.config.tp
        heapq.heappush(self.heap, (round(ax.cost(size), 6), gpus, ax.config.label, next(self.seq), ax, size))

    def refute(self, cand: Evaluated) -> None:
        """A feasible search run whose confirmation failed: infeasible from now on, and the search goes on past it."""
        ax = self.axis[cand.config]
        del ax.feasible[cand.size]
        ax.infeasible.add(cand.size)
        for nxt in ax.shape.successors(cand.size):
            self.push(ax, nxt, again=True)

    def open_within(self, thr: float, counts: Counter[str]) -> list[Item]:
        """The unresolved candidates within the price threshold `thr` (they stay on the heap). Candidates the
        results already settle as infeasible are dropped on the way, and their successors pushed."""
        open_: list[Item] = []
        while self.heap and self.heap[0][0] <= thr + EPS:
            item = heapq.heappop(self.heap)
            ax, size = item[-2], item[-1]
            if ax.settled_infeasible(size):
                if not ax.below_bounds(size) and size not in ax.infeasible and size not in ax.failed:
                    counts["sizes settled by monotonicity"] += 1
                for nxt in ax.shape.successors(size):
                    self.push(ax, nxt)
                continue
            if not ax.settled_feasible(size):
                open_.append(item)
        for item in open_:
            heapq.heappush(self.heap, item)
        return open_
