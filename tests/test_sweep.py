"""Sweeps: expansion, seeds, validation errors, the run cache, failed points, backends, plots and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from sim.errors import ServesimError
from sim.tools.cli import app
from sim.tools.sweep.api import run_sweep
from sim.tools.sweep.plots import parse_plot_spec, save_plot
from sim.tools.sweep.spec import load_sweep, replication_seeds, scenario_hash, short_labels

BASE: dict[str, Any] = {
    "model": "llama-3.1-8b",
    "hardware": "h100-sxm",
    "workload": {
        "num_requests": 60,
        "arrival": {"kind": "poisson", "rate": 10},
        "lengths": {"kind": "fixed", "prompt": 128, "output": 16},
    },
    "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
}
# identical results on every backend: everything but timing and where the run lives
TIMING = ["wall_s", "run_dir", "cached"]


def sweep(**kw: Any) -> dict[str, Any]:
    return {"base": BASE, **kw}


def write(tmp: Path, name: str, data: dict[str, Any]) -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_grid_and_zip_expand_in_order() -> None:
    sw = load_sweep(
        sweep(
            grid={"cluster.instances": [1, 2], "scheduler.kind": ["fcfs", "sarathi"]},
            zip={"workload.arrival.rate": [5, 10, 20], "workload.num_requests": [30, 40, 50]},
        )
    )
    assert len(sw.points) == 2 * 2 * 3
    first, last = sw.points[0], sw.points[-1]
    assert first.params == {
        "cluster.instances": 1,
        "scheduler.kind": "fcfs",
        "workload.arrival.rate": 5,
        "workload.num_requests": 30,
    }
    assert last.params["cluster.instances"] == 2 and last.params["scheduler.kind"] == "sarathi"
    assert (last.scenario.workload.arrival.rate, last.scenario.workload.num_requests) == (20, 50)
    assert [p.index for p in sw.points] == list(range(12))
    assert sw.points[4].scenario.cluster.instances == 1 and sw.points[4].scenario.scheduler.kind == "sarathi"


def test_zip_lengths_and_duplicates_are_errors() -> None:
    with pytest.raises(ServesimError, match="equal lengths"):
        load_sweep(sweep(zip={"cluster.instances": [1, 2], "seed": [1]}))
    with pytest.raises(ServesimError, match="both grid and zip"):
        load_sweep(sweep(grid={"cluster.instances": [1]}, zip={"cluster.instances": [2]}))


def test_replication_seeds_are_spawned_and_shared_across_points() -> None:
    sw = load_sweep(sweep(grid={"cluster.instances": [1, 2]}, replications=3))
    seeds = replication_seeds(0, 3)
    assert len(set(seeds)) == 3
    assert [p.seed for p in sw.points] == seeds + seeds  # common random numbers across points
    assert [p.replication for p in sw.points] == [0, 1, 2, 0, 1, 2]
    own_root = load_sweep(sweep(grid={"cluster.instances": [1]}, replications=2, seed=7))
    assert [p.seed for p in own_root.points] == replication_seeds(7, 2)
    single = load_sweep({"base": {**BASE, "seed": 5}, "grid": {"cluster.instances": [1]}})
    assert [p.seed for p in single.points] == [5]  # one replication runs the base seed, like `servesim run`
    assert len({p.key for p in sw.points}) == 6


def test_typo_in_a_point_names_the_sweep_line(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "base:\n"
        "  model: llama-3.1-8b\n"
        "  hardware: h100-sxm\n"
        "  workload:\n"
        "    num_requests: 10\n"
        "    arrival: {kind: poisson, rate: 1}\n"
        "    lengths: {kind: fixed, prompt: 8, output: 8}\n"
        "grid:\n"
        "  cluster.instances: [1, 0]\n"
    )
    with pytest.raises(ServesimError) as e:
        load_sweep(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}:9:26: cluster.instances:"), msg
    assert "sweep point 1" in msg
    f.write_text("base: {}\ngrid: {cluster.instances: [1]}\nreplication: 2\n")
    with pytest.raises(ServesimError, match=r"s\.yaml:3:14: replication: unknown field"):
        load_sweep(f)


def test_base_file_is_relative_to_the_sweep_file(tmp_path: Path) -> None:
    (tmp_path / "sc").mkdir()
    write(tmp_path / "sc", "base.yaml", {**BASE, "cluster": {"instances": 3, "tpx": 1}})
    f = write(tmp_path, "s.yaml", {"base": "sc/base.yaml", "grid": {"seed": [1]}})
    with pytest.raises(ServesimError, match=r"sc/base\.yaml:\d+:\d+: cluster\.tpx: unknown field"):
        load_sweep(f)
    write(tmp_path / "sc", "base.yaml", {**BASE, "cluster": {"instances": 3}})
    assert load_sweep(f).points[0].scenario.cluster.instances == 3


def test_rerun_reads_the_cache_and_simulates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = sweep(grid={"cluster.instances": [1, 2]}, replications=2)
    first = run_sweep(spec, tmp_path, workers=1)
    assert (first.simulated, first.cached, first.failed) == (4, 0, 0)
    assert (tmp_path / "sweep.parquet").exists()
    for d in first.frame["run_dir"]:
        assert (Path(d) / "summary.json").exists() and (Path(d) / "requests.parquet").exists()

    def boom(task: Any) -> dict[str, Any]:
        raise AssertionError("simulated a cached point")

    monkeypatch.setattr("sim.tools.sweep.execute.run_task", boom)
    second = run_sweep(spec, tmp_path, workers=1)
    assert (second.simulated, second.cached) == (0, 4)
    pd.testing.assert_frame_equal(first.frame.drop(columns=["cached"]), second.frame.drop(columns=["cached"]))


def test_interrupted_sweep_resumes(tmp_path: Path) -> None:
    run_sweep(sweep(grid={"cluster.instances": [1]}), tmp_path, workers=1)
    grown = run_sweep(sweep(grid={"cluster.instances": [1, 2, 3]}), tmp_path, workers=1)
    assert (grown.simulated, grown.cached) == (2, 1)


def test_failed_point_is_recorded_and_the_rest_go_on(tmp_path: Path) -> None:
    res = run_sweep(sweep(grid={"model": ["llama-3.1-8b", "llama-3.1-70b"], "hardware": ["l40s"]}), tmp_path, workers=1)
    ok, bad = res.frame.iloc[0], res.frame.iloc[1]
    assert ok["status"] == "ok" and ok["completed"] == 60
    assert bad["status"] == "failed" and "does not fit" in bad["error"]
    assert res.failed == 1
    assert pd.read_parquet(res.path)["status"].tolist() == ["ok", "failed"]


def test_hash_is_the_resolved_scenario() -> None:
    a = load_sweep(sweep(grid={"cluster.instances": [2]})).points[0].scenario
    b = load_sweep({"base": {**BASE, "cluster": {"instances": 2}}}).points[0].scenario
    assert scenario_hash(a) == scenario_hash(b)
    c = load_sweep(sweep(grid={"cluster.instances": [3]})).points[0].scenario
    assert scenario_hash(a) != scenario_hash(c)


def test_local_processes_and_dask_give_identical_rows(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    spec = sweep(grid={"cluster.instances": [1, 2]}, replications=2)
    local = run_sweep(spec, tmp_path / "local", workers=2)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        dask = run_sweep(spec, tmp_path / "dask", cluster=client)
    assert not dask.frame["cached"].any()
    pd.testing.assert_frame_equal(local.frame.drop(columns=TIMING), dask.frame.drop(columns=TIMING))


def test_plots(tmp_path: Path) -> None:
    res = run_sweep(
        sweep(grid={"workload.arrival.rate": [5, 10], "scheduler.kind": ["fcfs", "sarathi"]}), tmp_path, workers=1
    )
    path = save_plot(res.frame, "x=workload.arrival.rate y=ttft_p50_s+ttft_p99_s hue=scheduler.kind", tmp_path)
    assert path.exists() and path.stat().st_size > 1000
    assert parse_plot_spec("x=a,y=b+c") == {"x": "a", "y": ["b", "c"]}
    with pytest.raises(ServesimError, match="give both"):
        parse_plot_spec("x=a")
    with pytest.raises(ServesimError, match="no column 'nope'"):
        save_plot(res.frame, "x=nope y=ttft_p99_s", tmp_path)


def test_short_labels() -> None:
    vals = [{"kind": "fcfs", "max_num_seqs": 256}, {"kind": "sarathi", "max_num_seqs": 256, "token_budget": 512}]
    assert list(short_labels(vals).values()) == ["fcfs", "sarathi"]
    assert list(short_labels([1, "a"]).values()) == ["1", "a"]


def test_cli_sweep(tmp_path: Path) -> None:
    f = write(tmp_path, "s.yaml", sweep(grid={"cluster.instances": [1, 2]}))
    r = CliRunner().invoke(
        app,
        [
            "sweep",
            str(f),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "1",
            "-q",
            "--plot",
            "x=cluster.instances y=goodput_rps",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "sweep.parquet").exists()
    assert list((tmp_path / "out" / "plots").glob("*.png"))
    bad = write(tmp_path, "bad.yaml", sweep(grid={"cluster.instances": [0]}))
    r = CliRunner().invoke(app, ["sweep", str(bad), "--out", str(tmp_path / "out2"), "-q"])
    assert r.exit_code == 2
    assert "cluster.instances" in r.output


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "scenarios" / "sweeps").glob("*.yaml")))
def test_shipped_sweeps_validate(path: Path) -> None:
    sw = load_sweep(path)
    assert sw.points and all(p.scenario.workload for p in sw.points)


def test_cache_is_keyed_on_trace_contents_and_run_dirs_are_absolute(tmp_path: Path, monkeypatch) -> None:
    """Editing a trace file invalidates the cached points that read it (issue 15); a relative --out still
    gives absolute run directories (a Dask worker's working directory is not ours)."""
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + "".join(f"{i * 0.1},100,10\n" for i in range(30)))
    base = {**BASE, "workload": {"arrival": {"kind": "trace", "path": "t.csv", "format": "csv"}}}
    f = write(tmp_path, "s.yaml", {"base": base, "grid": {"seed": [1]}})
    monkeypatch.chdir(tmp_path)
    a = run_sweep(f, "out", workers=1)
    assert a.simulated == 1 and Path(a.frame["run_dir"][0]).is_absolute()
    assert run_sweep(f, "out", workers=1).cached == 1  # unchanged: read back
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + "".join(f"{i * 0.1},100,20\n" for i in range(30)))
    b = run_sweep(f, "out", workers=1)
    assert b.simulated == 1 and b.cached == 0
    assert b.frame["run_dir"][0] != a.frame["run_dir"][0]
    assert b.frame["output_tokens_per_s"][0] > a.frame["output_tokens_per_s"][0]


def test_plot_facets_readable_legends_and_named_averages(tmp_path: Path) -> None:
    """col=/row= facet the figure; a hue over scheduler mappings is labelled by what differs (not raw JSON);
    a swept dimension the figure does not show is named in the title instead of silently averaged."""
    from sim.tools.sweep.plots import plot_sweep, value_labels

    scheds = [{"kind": "fcfs"}, {"kind": "sarathi", "token_budget": 512}]
    res = run_sweep(
        sweep(grid={"workload.arrival.rate": [5, 10], "scheduler": scheds, "cluster.instances": [1, 2]}),
        tmp_path,
        workers=1,
    )
    params = res.sweep.param_names
    labels = value_labels(sorted(res.frame["scheduler"].unique()))
    assert sorted(labels.values()) == ["fcfs", "sarathi"]
    fig = plot_sweep(
        res.frame, "workload.arrival.rate", "ttft_p99_s", "scheduler", col="cluster.instances", params=params
    )
    assert len(fig.axes) == 2 and fig._suptitle is None  # every swept dimension is shown
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["fcfs", "sarathi"]
    fig = plot_sweep(res.frame, "workload.arrival.rate", "ttft_p99_s", "scheduler", params=params)
    assert "averaged over cluster.instances (2 values)" in fig._suptitle.get_text()
    fig = plot_sweep(
        res.frame, "workload.arrival.rate", "ttft_p99_s", col="scheduler", row="cluster.instances", params=params
    )
    assert len(fig.axes) == 4 and {a.get_title() for a in fig.axes} >= {"scheduler: fcfs | cluster.instances: 1"}
    path = save_plot(
        res.frame, "x=workload.arrival.rate y=ttft_p99_s hue=scheduler col=cluster.instances", tmp_path, params
    )
    assert path.exists()
    assert parse_plot_spec("x=a,y=b,col=c,row=d") == {"x": "a", "y": ["b"], "col": "c", "row": "d"}
