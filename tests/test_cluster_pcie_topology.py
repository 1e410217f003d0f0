"""`cluster.pcie_topology`: the PCIe wiring belongs to the box, so a catalogue GPU takes it from the cluster.

Hand-computed (sim/costmodel/comm.py): Qwen3-32B TP2 on two RTX PRO 6000 (PCIe Gen5 x16, 64 GB/s), vLLM V1. One
2,048-token prefill all-reduce is 2048 x 5120 x 2 B = 20.97 MB, above the 8 MiB custom limit, so NCCL's ring carries
it: 32 us + m / min(0.6 x 64 GB/s, ceiling). Root complex: ceiling 22.2 GB/s -> 976.7 us; switch: 38.4 GB/s of link
share under the 40.1 ceiling -> 578.1 us."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import sim
from hwprofiles import catalog
from sim.cluster.pools import build_cost_model, pool_specs
from sim.errors import ServesimError
from sim.tools.cli import app

MSG = 2048 * 5120 * 2
BY_HAND = {"root_complex": 976.7e-6, "switch": 578.1e-6}
WORKLOAD = (
    "workload: {num_requests: 2, arrival: {kind: poisson, rate: 1}, lengths: {kind: fixed, prompt: 8, output: 2}}"
)


def _scenario(tmp_path: Path, cluster: str, hardware: str = "rtx-pro-6000") -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(f"model: qwen3-32b\nhardware: {hardware}\nserving_engine: {{kind: vllm-v1}}\n{WORKLOAD}\n{cluster}\n")
    return p


def _allreduce_s(sc: sim.Scenario) -> float:
    ar = build_cost_model(sc).ar  # type: ignore[attr-defined]  # roofline cost model: its TP group's all-reduce
    assert ar.regime(MSG) == "nccl"
    return float(ar.seconds(MSG))


def test_cluster_topology_sets_the_nccl_ceiling_both_ways(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "cluster: {tp: 2}")
    default = sim.load_scenario(path)
    assert catalog.gpu("rtx-pro-6000").pcie_topology == "root_complex"
    assert default.cluster.pcie_topology is None
    assert default.gpu_spec is catalog.gpu("rtx-pro-6000")  # unset: the very same spec object
    assert _allreduce_s(default) == pytest.approx(BY_HAND["root_complex"], rel=1e-4)
    for topo, expected in BY_HAND.items():
        sc = sim.load_scenario(path, [f"cluster.pcie_topology={topo}"])  # a catalogue GPU through --set
        assert sc.gpu_spec.pcie_topology == topo
        assert _allreduce_s(sc) == pytest.approx(expected, rel=1e-4)
    # the catalogue entry itself is untouched
    assert catalog.gpu("rtx-pro-6000").pcie_topology == "root_complex"


def test_cluster_topology_wins_over_the_gpu_spec_file(tmp_path: Path) -> None:
    spec = catalog.gpu("rtx-pro-6000").model_dump(exclude={"pcie_topology", "sources"})
    (tmp_path / "box.yaml").write_text(yaml.safe_dump(spec, sort_keys=True) + "pcie_topology: switch\n")
    path = _scenario(tmp_path, "cluster: {tp: 2}", hardware="box.yaml")
    assert _allreduce_s(sim.load_scenario(path)) == pytest.approx(BY_HAND["switch"], rel=1e-4)
    sc = sim.load_scenario(path, ["cluster.pcie_topology=root_complex"])
    assert _allreduce_s(sc) == pytest.approx(BY_HAND["root_complex"], rel=1e-4)


def test_cluster_topology_reaches_disaggregated_pools(tmp_path: Path) -> None:
    pools = "cluster: {pcie_topology: switch, prefill: {tp: 2, hardware: rtx-pro-6000}, decode: {tp: 2}}"
    sc = sim.load_scenario(_scenario(tmp_path, pools))
    for spec in pool_specs(sc):
        assert spec.gpu.pcie_topology == "switch"
        assert spec.cost.ar.seconds(MSG) == pytest.approx(BY_HAND["switch"], rel=1e-4)  # type: ignore[attr-defined]  # roofline


def test_a_bad_topology_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "cluster:\n  tp: 2\n  pcie_topology: nvswitch")
    line = len(path.read_text().splitlines())
    with pytest.raises(ServesimError) as e:
        sim.load_scenario(path)
    msg = str(e.value)
    assert f"s.yaml:{line}" in msg and "pcie_topology" in msg and "root_complex" in msg, msg
    r = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    out = r.output.strip()
    assert r.exit_code == 2 and "Traceback" not in r.output and len(out.splitlines()) == 1, r.output
    assert f"s.yaml:{line}" in out and "pcie_topology" in out
    # through --set: the option is named
    ok = _scenario(tmp_path, "cluster: {tp: 2}")
    r = CliRunner().invoke(app, ["run", str(ok), "--set", "cluster.pcie_topology=ring", "--out", str(tmp_path / "o")])
    out = r.output.strip()
    assert r.exit_code == 2 and "Traceback" not in r.output and len(out.splitlines()) == 1, r.output
    assert "pcie_topology" in out
