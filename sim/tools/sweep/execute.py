"""Run many scenarios: a content-addressed run cache, the worker function, and execution backends.

Each scenario's run directory is named by its content hash, written to a temporary name and renamed
into place only when complete, so an interrupted sweep resumes where it stopped and a re-run reads
every point from disk. The worker is a plain top-level function of plain data (a scenario dict and
paths), so the local process pool (joblib/loky) and a Dask cluster run exactly the same code and give
identical rows; only `wall_s` differs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.config.scenario import Scenario
from sim.errors import ServesimError
from sim.output.result import jsonable
from sim.tools.sweep.spec import scenario_hash

SUMMARY = "summary.json"
LATENCIES = ("ttft_s", "tpot_s", "itl_s", "e2el_s", "queue_delay_s")
STATS = ("mean", "p50", "p90", "p95", "p99")
THROUGHPUT = ("requests_per_s", "output_tokens_per_s", "goodput_rps", "slo_attainment")
COUNTS = ("arrived", "completed", "rejected", "in_flight", "preemptions")


def row_columns() -> list[str]:
    """Every column a run's row can have (run_scenarios + flatten_summary), so `--plot` can be checked before a
    sweep runs."""
    latencies = [f"{name[:-2]}_{s}_s" for name in LATENCIES for s in STATS]
    sim = ["wall_s", "simulated_s", "events", "stopped_early"]
    return ["key", "run_dir", "status", "error", "cached", *latencies, *THROUGHPUT, *COUNTS, *sim]


@dataclass(frozen=True)
class Task:
    """Everything a worker needs, as plain data (picklable for loky and Dask)."""

    scenario: dict[str, Any]
    base_dir: str
    run_dir: str
    save_requests: bool = True
    stop_on_miss: dict[str, Any] | None = None  # stop once the SLO miss is certain (`sim.core.verdict`)


def flatten_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """One flat row of a run's summary: latency stats, throughput, SLO attainment, counts and wall time."""
    row: dict[str, Any] = {}
    for name in LATENCIES:
        m = summary["metrics"].get(name, {})
        for s in STATS:
            v = m.get(s)
            row[f"{name[:-2]}_{s}_s"] = math.nan if v is None else float(v)
    tp = summary["throughput"]
    for k in THROUGHPUT:
        v = tp.get(k)
        row[k] = math.nan if v is None else float(v)
    for k in COUNTS:
        row[k] = int(summary["counts"][k])
    row["wall_s"] = float(summary["sim"]["wall_s"])
    row["simulated_s"] = float(summary["sim"]["simulated_s"])
    row["events"] = int(summary["sim"]["events"])
    if summary["sim"].get("stopped_early"):  # only runs that may stop early have the column
        row["stopped_early"] = str(summary["sim"]["stopped_early"])
    return row


def cached_row(run_dir: str | Path) -> dict[str, Any] | None:
    """The flattened summary of a completed run directory, or None when it is missing or unreadable."""
    p = Path(run_dir) / SUMMARY
    try:
        return flatten_summary(json.loads(p.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _publish(tmp: Path, final: Path) -> None:
    try:
        os.replace(tmp, final)
    except OSError:  # another worker finished the same point first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)


def run_task(task: Task) -> dict[str, Any]:
    """Simulate one scenario and write its run directory; any error becomes a failed row, not a crash."""
    from sim.config.scenario import load_scenario
    from sim.output.result import run

    try:
        sc = load_scenario(task.scenario)
        sc._base_dir = Path(task.base_dir)
        res = run(sc, requests=shared_requests(sc), stop_on_miss=task.stop_on_miss)
        final = Path(task.run_dir)
        tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        if task.save_requests:
            res.requests.to_parquet(tmp / "requests.parquet", index=False)
        res.timeline.to_parquet(tmp / "timeline.parquet", index=False)
        (tmp / SUMMARY).write_text(json.dumps(jsonable(res.summary), indent=1) + "\n")
        _publish(tmp, final)
        return {"status": "ok", "error": "", **flatten_summary(res.summary)}
    except Exception as e:  # a failing point is recorded and the sweep goes on
        msg = str(e).strip() or repr(e)
        return {"status": "failed", "error": f"{type(e).__name__}: {msg}"}


_WORKLOADS: dict[str, Any] = {}  # workload key -> Requests, in this worker process (a few, most recent last)


def shared_requests(sc: Scenario) -> Any:
    """The scenario's requests, generated once per worker process for every run with the same workload.

    Planner candidates and sweep points mostly differ in cluster and scheduler, not in traffic, and reading
    a trace or sampling a million lengths costs as much as a short run. The key holds everything
    `build_requests` reads; the arrays are only read by a run."""
    from sim.tools.sweep.spec import input_digests
    from sim.workload.generate import build_requests

    key = json.dumps(
        [
            sc.seed,
            str(sc.base_dir),
            *(sc.model_dump(mode="json").get(k) for k in ("workload", "admission", "predictor")),
            input_digests(sc),  # an edited trace is a new workload
        ],
        sort_keys=True,
    )
    got = _WORKLOADS.pop(key, None)
    if got is None:
        got = build_requests(sc)
    _WORKLOADS[key] = got
    while len(_WORKLOADS) > 4:
        del _WORKLOADS[next(iter(_WORKLOADS))]
    return got


def make_task(
    sc: Scenario, runs_dir: Path, save_requests: bool = True, stop_on_miss: dict[str, Any] | None = None
) -> Task:
    """The task for a scenario; its run directory is `runs_dir/<content hash>` (a run that may stop early
    gets its own name, so a full run never reads its partial numbers)."""
    name = scenario_hash(sc)
    if stop_on_miss is not None:
        name += "-stop" + hashlib.sha256(json.dumps(stop_on_miss, sort_keys=True).encode()).hexdigest()[:8]
    return Task(sc.model_dump(mode="json"), str(sc.base_dir), str(runs_dir / name), save_requests, stop_on_miss)


# -- backends ----------------------------------------------------------------------------------------------
Fn = Callable[[Task], dict[str, Any]]


def _indexed(i: int, fn: Fn, task: Task) -> tuple[int, dict[str, Any]]:
    return i, fn(task)


class SerialBackend:
    """In this process, one at a time (workers=1, tests, debugging)."""

    name = "serial"
    workers = 1

    def map_unordered(self, fn: Fn, tasks: Sequence[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        for i, t in enumerate(tasks):
            yield i, fn(t)

    def close(self) -> None:
        pass


class LocalBackend:
    """Local processes through joblib's loky pool (reused between calls, so the planner pays start-up once)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def map_unordered(self, fn: Fn, tasks: Sequence[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        from joblib import Parallel, delayed

        jobs = [delayed(_indexed)(i, fn, t) for i, t in enumerate(tasks)]
        try:
            par = Parallel(n_jobs=self.workers, backend="loky", return_as="generator_unordered")
        except ValueError:  # joblib < 1.4 has no unordered generator
            par = Parallel(n_jobs=self.workers, backend="loky", return_as="generator")
        yield from par(jobs)

    def close(self) -> None:
        pass


class DaskBackend:
    """A Dask distributed cluster: an address (`tcp://host:8786`) or an existing `distributed.Client`."""

    name = "dask"

    def __init__(self, cluster: Any) -> None:
        try:
            import distributed
        except ImportError:
            raise ServesimError(
                "--cluster needs Dask distributed: pip install 'servesim[cluster]' (or 'dask[distributed]')"
            ) from None
        self._own = isinstance(cluster, str)
        try:
            self.client = distributed.Client(cluster, timeout="15s") if self._own else cluster
        except (OSError, TimeoutError) as e:
            raise ServesimError(f"cannot reach the Dask scheduler at {cluster}: {e}") from None

    @property
    def workers(self) -> int:
        """Threads across the cluster: how many points are worth submitting at once."""
        return max(1, sum(self.client.nthreads().values()))

    def map_unordered(self, fn: Fn, tasks: Sequence[Task]) -> Iterator[tuple[int, dict[str, Any]]]:
        from distributed import as_completed

        futures = {self.client.submit(_indexed, i, fn, t, pure=False): i for i, t in enumerate(tasks)}
        for fut in as_completed(futures):
            yield fut.result()

    def close(self) -> None:
        if self._own:
            self.client.close()


Backend = SerialBackend | LocalBackend | DaskBackend


MAX_LOCAL_WORKERS = 256


def make_backend(workers: int | None = None, cluster: Any = None) -> Backend:
    """Dask when a cluster is named, else local processes (serial when one worker)."""
    if cluster is not None:
        return DaskBackend(cluster)
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ServesimError(f"--workers must be >= 1, got {n}")
    if n > MAX_LOCAL_WORKERS:  # each is a process with the simulator imported: thousands would exhaust the host
        raise ServesimError(f"--workers {n}: at most {MAX_LOCAL_WORKERS} local worker processes (use --cluster)")
    return SerialBackend() if n == 1 else LocalBackend(n)


# -- progress ----------------------------------------------------------------------------------------------
class ProgressBar:
    """A bar on stderr when it is a terminal; otherwise one short line per finished point."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.done, self.failed = total, label, 0, 0
        self.enabled = enabled and total > 0
        self.bar: Any = None
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task(label, total=total)
            self.bar.start()

    def advance(self, row: dict[str, Any]) -> None:
        self.done += 1
        self.failed += row.get("status") == "failed"
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"{self.label} ({self.failed} failed)")
        elif self.enabled:
            print(f"{self.label}: {self.done}/{self.total} done, {self.failed} failed", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run_scenarios(
    scenarios: Sequence[Scenario],
    runs_dir: Path,
    backend: Backend,
    *,
    save_requests: bool = True,
    progress: bool = False,
    label: str = "simulating",
    stop_on_miss: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per scenario (input order): read from the cache when present, else simulated on `backend`
    (`stop_on_miss`: each run stops once its SLO miss is certain, see `sim.core.verdict`).

    Rows carry `key` (the content hash), `run_dir`, `cached`, `status` and `error` besides the metrics.
    """
    runs_dir = runs_dir.resolve()  # a Dask worker's working directory is not ours
    runs_dir.mkdir(parents=True, exist_ok=True)
    tasks = [make_task(sc, runs_dir, save_requests, stop_on_miss) for sc in scenarios]
    rows: list[dict[str, Any] | None] = [None] * len(tasks)
    todo: list[int] = []
    first: dict[str, int] = {}  # identical scenarios run once
    for i, t in enumerate(tasks):
        hit = cached_row(t.run_dir)
        if hit is not None:
            rows[i] = {"status": "ok", "error": "", **hit, "cached": True}
        elif t.run_dir not in first:
            first[t.run_dir] = i
            todo.append(i)
    bar = ProgressBar(len(todo), label, progress)
    try:
        for j, row in backend.map_unordered(run_task, [tasks[i] for i in todo]):
            rows[todo[j]] = {**row, "cached": False}
            bar.advance(row)
    finally:
        bar.close()
    for i, t in enumerate(tasks):  # duplicates of a point simulated in this call
        if rows[i] is None:
            src = rows[first[t.run_dir]]
            rows[i] = {**(src or {"status": "failed", "error": "not run"}), "cached": True}
    return [{"key": Path(t.run_dir).name, "run_dir": t.run_dir, **(r or {})} for t, r in zip(tasks, rows, strict=True)]
