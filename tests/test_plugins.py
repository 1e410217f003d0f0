"""Plugins: kinds registered outside the repository, after the scenario module was imported, or by an installed
package's `servesim.plugins` entry point, are first-class; capabilities are asked of the kind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ConfigDict, Field

import sim
from policies.continuous import FCFS, FCFSConfig
from sim.config.scenario import Workload, load_scenario, scenario_json_schema
from sim.core.registry import ARRIVALS, LENGTHS, SCHEDULERS, _load_one
from sim.workload.arrivals import Arrivals
from sim.workload.generate import build_requests
from tests.helpers import scenario, write_csv

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "servesim-plugin-example"


class EveryConfig(BaseModel):
    """Deterministic arrivals every `gap_s` seconds (a throw-away plugin kind)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["every"] = "every"
    gap_s: float = Field(gt=0)


class RenamedFCFSConfig(FCFSConfig):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["test_fcfs"] = "test_fcfs"  # type: ignore[assignment]  # a new tag on a copy of fcfs


@pytest.fixture
def late_kinds() -> Iterator[None]:
    """Register kinds now, long after sim.config.scenario was imported; remove them afterwards."""

    @ARRIVALS.register("every", EveryConfig)
    def _every(cfg: EveryConfig, *, num_requests: int | None, **_: object) -> Arrivals:
        """one request every gap_s"""
        return Arrivals(np.arange(1, (num_requests or 1) + 1) * cfg.gap_s)

    @SCHEDULERS.register("test_fcfs", RenamedFCFSConfig, stateful=True)
    def _test_fcfs(cfg: RenamedFCFSConfig, **_: object) -> FCFS:
        """fcfs under another name, declared stateful"""
        return FCFS(cfg)

    yield
    ARRIVALS.unregister("every")
    SCHEDULERS.unregister("test_fcfs")


def test_kinds_registered_after_import_validate_and_run(late_kinds, tmp_path):
    data = scenario(write_csv(tmp_path / "w.csv", [(0.0, 10, 2)]), scheduler={"kind": "test_fcfs"})
    data["workload"] = {
        "num_requests": 3,
        "arrival": {"kind": "every", "gap_s": 0.5},
        "lengths": {"kind": "fixed", "prompt": 16, "output": 4},
    }
    sc = load_scenario(data)
    assert isinstance(sc.scheduler, RenamedFCFSConfig) and isinstance(sc.workload.arrival, EveryConfig)
    rq = build_requests(sc)
    assert rq.arrival_s.tolist() == [0.5, 1.0, 1.5]  # the plugin's times, through the registry
    assert rq.prompt_tokens.tolist() == [16, 16, 16]
    res = sim.run(sc)
    assert (res.requests["status"] == "completed").all()
    # the round trip through a dump keeps the plugin's sections
    assert Workload.model_validate(sc.workload.model_dump(mode="json")).arrival == sc.workload.arrival
    schema = json.dumps(scenario_json_schema())
    assert '"every"' in schema and '"test_fcfs"' in schema


def test_unknown_kind_names_late_kinds_on_one_line(late_kinds, tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("model: llama-3.1-8b\nhardware: h100-sxm\nworkload:\n  arrival: {kind: evry, gap_s: 1}\n")
    with pytest.raises(sim.ServesimError) as e:
        load_scenario(f)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{f}:4:19: workload.arrival.kind: Input tag 'evry'")
    assert "'poisson', 'gamma', 'trace', 'closed_loop', 'every'" in msg


def test_a_synthetic_plugin_arrival_needs_lengths(late_kinds):
    base = {"model": "llama-3.1-8b", "hardware": "h100-sxm"}
    with pytest.raises(sim.ServesimError, match=r"lengths are required .* \(trace, fixed or lognormal\)"):
        load_scenario({**base, "workload": {"num_requests": 2, "arrival": {"kind": "every", "gap_s": 1}}})


def test_stateful_is_asked_of_the_scheduler(late_kinds, tmp_path):
    """The disaggregation check refuses a plugin that declares `stateful` beside another kind, and accepts the
    same code when both pools use it."""
    trace = write_csv(tmp_path / "w.csv", [(0.0, 10, 2)])
    cluster = {"prefill": {"instances": 1}, "decode": {"instances": 1, "scheduler": {"kind": "test_fcfs"}}}
    with pytest.raises(sim.ServesimError, match="'test_fcfs' keeps per-request state"):
        sim.run(scenario(trace, cluster=cluster))
    res = sim.run(scenario(trace, cluster=cluster, scheduler={"kind": "test_fcfs"}))
    assert res.requests["status"].tolist() == ["completed"]


def test_builtin_capabilities():
    assert [k for k in SCHEDULERS.kinds() if SCHEDULERS.caps(k).stateful] == ["length_group", "ltr", "mlfq"]
    assert SCHEDULERS.caps("fcfs").whole_prompts and not SCHEDULERS.caps("fcfs").mixes_prefill_decode
    assert SCHEDULERS.caps("sarathi").prefill_chunk == "token_budget"
    assert [k for k in ARRIVALS.kinds() if ARRIVALS.caps(k).replays_trace] == ["trace"]
    assert LENGTHS.kinds() == ["trace", "fixed", "lognormal"]
    with pytest.raises(TypeError):
        SCHEDULERS.register("x", FCFSConfig, statefull=True)  # a misspelt capability fails at registration


def test_a_broken_plugin_is_one_line_naming_it():
    def broken() -> None:
        raise RuntimeError("no such policy\nsecond line")

    with pytest.raises(sim.ServesimError) as e:
        _load_one("bad", "bad_pkg:register", lambda: broken)
    assert str(e.value) == (
        "plugin 'bad' (servesim.plugins entry point 'bad_pkg:register') failed to load: RuntimeError: no such policy"
    )


# -- the out-of-tree package of docs/writing-a-policy.md, installed and run --------------------------------------
@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory) -> Path:
    """`pip install --target` of the example (a copy, so the build leaves nothing in the repo); offline."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = shutil.copytree(EXAMPLE, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*cmd, "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    return target


def _servesim(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_out_of_tree_scheduler_runs_from_its_entry_point(installed_plugin, tmp_path):
    out = tmp_path / "run"
    p = _servesim(
        installed_plugin, "-m", "sim.tools.cli", "run", "lifo.yaml", "--out", str(out), "-q", "--no-plots", cwd=EXAMPLE
    )
    assert p.returncode == 0, p.stderr
    r = pd.read_parquet(out / "requests.parquet").set_index("request_id")
    # one seat: request 0 runs alone; 1..3 arrive during it and are served newest first
    order = r.sort_values("completion_s").index.tolist()
    assert order == [0, 3, 2, 1]
    for before, after in [(0, 3), (3, 2), (2, 1)]:  # each starts the moment the one before it completes
        assert r.loc[after, "first_scheduled_s"] == pytest.approx(r.loc[before, "completion_s"], abs=1e-9)
    listed = _servesim(installed_plugin, "-m", "sim.tools.cli", "list", "policies", cwd=tmp_path)
    assert listed.returncode == 0 and "lifo" in listed.stdout and "whole_prompts" in listed.stdout


def test_entry_points_load_whatever_the_import_order(installed_plugin, tmp_path):
    """The scenario module and the registries imported first; the plugin still arrives before validation."""
    code = (
        "import sim.config.scenario, sim.core.registry, policies\n"
        "from sim.config.scenario import load_scenario\n"
        "sc = load_scenario('lifo.yaml')\n"
        "print(type(sc.scheduler).__module__, sc.scheduler.max_num_seqs)\n"
    )
    p = _servesim(installed_plugin, "-c", code, cwd=EXAMPLE)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["servesim_lifo.scheduler", "1"]
    without = _servesim(Path(tmp_path), "-m", "sim.tools.cli", "run", str(EXAMPLE / "lifo.yaml"), cwd=tmp_path)
    assert without.returncode == 2 and "Input tag 'lifo'" in without.stderr + without.stdout
