"""Candidate runs kept in flight: the search hands a run to the first free worker and takes results as they
finish, instead of waiting for the slowest run of a round.

Rounds of `workers` runs left workers idle whenever one run of a round outlasted the other (an early-stopped
miss takes a fraction of a second, a feasible full run seconds). Here every free worker gets the best next
candidate given every result so far. The runs themselves are the sweep machinery's (`run_task`, the
content-addressed run cache, identical scenarios run once), on joblib's reusable process pool (loky), a Dask
cluster, or — one worker — in this process, in submission order.

Which runs the search makes may now depend on which finishes first; what it concludes does not: every
candidate within the price threshold is still settled before the search ends (`sim.tools.planner.search`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.config.scenario import load_scenario
from sim.tools.planner.evaluate import Evaluated
from sim.tools.planner.request import PlanRequest, scenario_for
from sim.tools.planner.space import Config, Size
from sim.tools.sweep.execute import Backend, DaskBackend, LocalBackend, Task, cached_row, make_task, run_task

Key = tuple[Config, Size, str, int]  # (configuration, size, phase, seed)


class CandidatePool:
    """Submit (configuration, size) runs; `take` blocks until at least one is back and returns what is."""

    def __init__(self, req: PlanRequest, backend: Backend, runs_dir: Path) -> None:
        self.req = req
        self.backend = backend
        self.runs_dir = runs_dir.resolve()  # a Dask worker's working directory is not ours
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.width = max(1, int(getattr(backend, "workers", 1)))
        self._ready: list[tuple[Key, dict[str, Any]]] = []
        self._queued: list[tuple[list[Key], Task]] = []  # one worker: run in this process when taken
        self._futures: dict[Any, tuple[list[Key], Task]] = {}
        self._by_dir: dict[str, list[Key]] = {}  # run directory in flight -> keys waiting for it
        self._executor: Any = None

    @property
    def in_flight(self) -> int:
        """Runs submitted and not yet taken. A cache hit counts until taken, so that a re-plan reads its results
        in the order a first plan made them, and takes the same path."""
        return len(self._queued) + len(self._futures) + len(self._ready)

    def submit(self, cfg: Config, size: Size, phase: str = "search", seed: int = 0) -> None:
        """One run of `cfg` × `size`: a search run (the screening traffic; stops once its miss is certain unless
        `--no-early-stop`) or a confirming one (full traffic, in full)."""
        req = self.req
        sc = load_scenario(scenario_for(req, cfg, size, full=phase != "search", seed=seed))
        stop = req.slo.stop_spec() if phase == "search" and req.early_stop else None
        task = make_task(sc, self.runs_dir, save_requests=False, stop_on_miss=stop)
        key: Key = (cfg, size, phase, seed)
        hit = cached_row(task.run_dir)
        if hit is not None:
            row = {"status": "ok", "error": "", **hit, **_cached_draws(task.run_dir)}
            self._ready.append((key, _row(task, row, cached=True)))
        elif task.run_dir in self._by_dir:  # the same scenario is already running: share its result
            self._by_dir[task.run_dir].append(key)
        else:
            keys = [key]
            self._by_dir[task.run_dir] = keys
            if self.width == 1 and not isinstance(self.backend, DaskBackend):
                self._queued.append((keys, task))
            else:
                self._futures[self._start(task)] = (keys, task)

    def _start(self, task: Task) -> Any:
        if isinstance(self.backend, DaskBackend):
            return self.backend.client.submit(run_candidate, task, pure=False)
        return self._local().submit(run_candidate, task)

    def _local(self) -> Any:
        if self._executor is None:
            # joblib's own reusable executor (the one `LocalBackend`'s `Parallel` uses), not loky's bare one: the
            # two share loky's singleton, and `Parallel` expects joblib's kind there. Our arguments are small
            # plain data, so no memmapping (a `Parallel` call afterwards starts its pool afresh).
            from joblib.executor import get_memmapping_executor

            workers = self.backend.workers if isinstance(self.backend, LocalBackend) else self.width
            self._executor = get_memmapping_executor(workers, max_nbytes=None)
        return self._executor

    def run_all(self, fn: Callable[..., Any], args: list[tuple[Any, ...]]) -> list[Any]:
        """`[fn(*a) for a in args]` on the same workers (the bounds pass's floor curves), results in order."""
        if isinstance(self.backend, DaskBackend):
            client = self.backend.client
            return list(client.gather([client.submit(fn, *a, pure=False) for a in args]))
        if self.width == 1:
            return [fn(*a) for a in args]
        ex = self._local()
        return [f.result() for f in [ex.submit(fn, *a) for a in args]]

    def take(self) -> list[Evaluated]:
        """Finished runs, scored (at least one unless nothing is in flight or ready)."""
        if not self._ready:
            if self._queued:
                keys, task = self._queued.pop(0)
                self._finish(keys, task, run_candidate(task))
            elif self._futures:
                for fut in self._wait():
                    keys, task = self._futures.pop(fut)
                    try:
                        row = fut.result()
                    except Exception as e:  # a worker that died (not a failing run: run_task catches those)
                        row = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                    self._finish(keys, task, row)
        out, self._ready = self._ready, []
        return [self.score(key, row) for key, row in out]

    def _wait(self) -> list[Any]:
        futs = list(self._futures)
        if isinstance(self.backend, DaskBackend):
            from distributed import wait

            return list(wait(futs, return_when="FIRST_COMPLETED").done)
        return list(cf.wait(futs, return_when=cf.FIRST_COMPLETED).done)

    def _finish(self, keys: list[Key], task: Task, row: dict[str, Any]) -> None:
        del self._by_dir[task.run_dir]
        for i, key in enumerate(keys):  # a shared run counts as simulated once
            self._ready.append((key, _row(task, row, cached=i > 0)))

    def score(self, key: Key, row: dict[str, Any]) -> Evaluated:
        cfg, size, phase, seed = key
        ok, head, why = self.req.slo.check(row)
        return Evaluated(cfg, size, row, ok, head, why, phase, seed)

    def close(self) -> None:
        """Drop runs nobody waits for any more (speculative confirmations of a candidate that lost)."""
        for fut in self._futures:
            fut.cancel()
        if self._executor is not None and any(not f.done() for f in self._futures):
            self._executor.shutdown(wait=False, kill_workers=True)  # the next plan gets a fresh pool
        self._futures.clear()
        self._queued.clear()
        self._by_dir.clear()


def _row(task: Task, row: dict[str, Any], cached: bool) -> dict[str, Any]:
    return {"key": Path(task.run_dir).name, "run_dir": task.run_dir, **row, "cached": cached}


_ENGINE_STREAMS = "streams"  # the name under which `sim.core.engine` holds `sim.core.rng.streams`
DRAWS = "planner.json"  # beside a run's summary.json: whether the engine drew a random number


def run_candidate(task: Task) -> dict[str, Any]:
    """`run_task`, and whether the engine drew any random number during the run (`engine_draws`, kept beside
    the run's summary so that a re-plan from the cache knows it too).

    Every random number a run uses comes from the named streams `sim.core.rng.streams(seed)` makes (the
    project keeps no global random state): the workload's, compared directly by `confirm`, and the engine's,
    recorded here — the streams the engine makes are kept and, after the run, compared with fresh ones from
    the same seed. Untouched streams (the same state and spawn count) mean no draw, and then the same scenario
    with another seed is the very same run: up to a first draw nothing can depend on the seed, and there is
    none. (A policy drawing from a `jumped()` copy of a stream would escape this; none in the project does.)
    If the engine does not make its streams as expected (one `streams` call), or the run is not on its
    process's main thread (a Dask worker's threads could see each other's streams), the flag is left out and
    nothing is reused."""
    import threading

    import sim.core.engine as engine

    orig = getattr(engine, _ENGINE_STREAMS, None)
    if orig is None or threading.current_thread() is not threading.main_thread():
        return run_task(task)
    made: list[tuple[int, dict[str, Any]]] = []

    def recording(seed: int) -> dict[str, Any]:
        got = orig(seed)
        made.append((seed, got))
        return got

    setattr(engine, _ENGINE_STREAMS, recording)
    try:
        row = run_task(task)
    finally:
        setattr(engine, _ENGINE_STREAMS, orig)
    if row.get("status") == "ok" and len(made) == 1:
        seed, used = made[0]
        fresh = orig(seed)
        row["engine_draws"] = any(_stream_state(used[k]) != _stream_state(fresh[k]) for k in fresh)
        with contextlib.suppress(OSError):  # only a re-plan from the cache would miss it
            (Path(task.run_dir) / DRAWS).write_text(json.dumps({"engine_draws": row["engine_draws"]}) + "\n")
    return row


def _stream_state(gen: Any) -> tuple[Any, int]:
    """What any use of a generator changes: its bit generator's state (a draw) or its spawn count (a child)."""
    seq = getattr(gen.bit_generator, "seed_seq", None)
    return gen.bit_generator.state, int(getattr(seq, "n_children_spawned", 0))


def _cached_draws(run_dir: str) -> dict[str, Any]:
    try:
        got = json.loads((Path(run_dir) / DRAWS).read_text())
    except (OSError, ValueError):
        return {}
    return {"engine_draws": got["engine_draws"]} if isinstance(got.get("engine_draws"), bool) else {}
