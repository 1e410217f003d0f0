"""`GPUSpec.pcie_topology`: untuned NCCL's bus-bandwidth ceiling between PCIe GPUs depends on the box, by hand.

Figures (sim/costmodel/comm.py, rtx6kpro hardware/pcie-bandwidth.md, NCCL defaults at 32 MB): 22.2 GB/s with the
GPUs on the CPUs' root ports, 40.1 GB/s behind PCIe switches. NCCL runs at min(0.6 of the raw link, the ceiling)."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

import sim
from hwprofiles import catalog
from sim.costmodel.comm import PCIE_NCCL_DEFAULT_BUSBW, AllReduce, nccl_pcie_ceiling
from sim.costmodel.engine import preset
from sim.costmodel.models import RooflineCost, RooflineCostConfig
from sim.errors import ServesimError
from sim.tools.cli import app

BIG = 64 * 2**20  # a message far above the custom all-reduce's limit: NCCL's ring


def test_the_two_topologies_by_hand() -> None:
    # Gen5 x16 (64 GB/s x 0.8 link efficiency): 0.75 of that is 38.4 GB/s. Root complex: capped at 22.2;
    # switch: 38.4 < 40.1, so the link share stands
    rc = AllReduce(2, 64e9 * 0.8, "nccl", False, nccl_latency_s=0.0, pcie=True, topology="root_complex")
    sw = AllReduce(2, 64e9 * 0.8, "nccl", False, nccl_latency_s=0.0, pcie=True, topology="switch")
    assert rc.bw == pytest.approx(22.2e9) and rc.seconds(BIG) == pytest.approx(BIG / 22.2e9)
    assert sw.bw == pytest.approx(38.4e9) and sw.seconds(BIG) == pytest.approx(BIG / 38.4e9)
    # a link twice as fast (Gen6 x16, 128 GB/s): 76.8 GB/s of link share, so the switch ceiling binds at 40.1
    gen6 = AllReduce(2, 128e9 * 0.8, "nccl", False, nccl_latency_s=0.0, pcie=True, topology="switch")
    assert gen6.bw == pytest.approx(40.1e9)
    # Gen4 (32 GB/s): 19.2 GB/s under both ceilings, so the topology does not matter there
    for topo in ("root_complex", "switch"):
        assert AllReduce(2, 32e9 * 0.8, "nccl", False, pcie=True, topology=topo).bw == pytest.approx(19.2e9)
    # the custom kernel's peer loads: 0.3 of the raw link behind switches (19.2 GB/s), the root complex's 12 GB/s
    assert sw.p2p_bw == pytest.approx(64e9 * 0.3) and rc.p2p_bw == pytest.approx(12e9)
    # NVLink: no PCIe ceiling of either kind
    assert AllReduce(2, 450e9 * 0.8, "nccl", True, topology="root_complex").bw == pytest.approx(360e9)


def test_allreduce_bw_scale_scales_link_share_and_ceiling_for_both_topologies() -> None:
    # scale 0.5 on Gen5: root complex min(19.2, 11.1) = 11.1; switch min(19.2, 20.05) = 19.2
    link = 64e9 * 0.8 * 0.5
    rc = AllReduce(2, link, "nccl", False, pcie=True, bw_scale=0.5, topology="root_complex")
    sw = AllReduce(2, link, "nccl", False, pcie=True, bw_scale=0.5, topology="switch")
    assert rc.bw == pytest.approx(11.1e9) and sw.bw == pytest.approx(19.2e9)
    # through comm.build with the vLLM preset: scale 0.25 on the switched box, min(9.6, 10.025) = 9.6 GB/s
    g = catalog.gpu("rtx-pro-6000").model_copy(update={"pcie_topology": "switch"})
    cost = RooflineCost(RooflineCostConfig(), catalog.model("qwen3-32b"), g, 2, engine=preset(allreduce_bw_scale=0.25))
    assert cost.ar.bw == pytest.approx(9.6e9)


def test_catalogue_gpu_prices_a_prefill_message_per_topology() -> None:
    """Qwen3-32B TP2 on two RTX PRO 6000, vLLM V1: one 2,048-token prefill all-reduce (2048 x 5120 x 2 B = 20.97 MB,
    above the 8 MiB custom limit) is NCCL's: 32 us + m / 22.2 GB/s = 976.7 us on the default root-complex box,
    32 us + m / 38.4 GB/s = 578.1 us behind switches. Without an engine (fitted profiles) the same ceilings hold."""
    m, g = catalog.model("qwen3-32b"), catalog.gpu("rtx-pro-6000")
    assert g.pcie_topology == "root_complex"  # the documented default
    msg = 2048 * 5120 * 2
    by_topo = {"root_complex": 976.7e-6, "switch": 578.1e-6}
    for topo, expected in by_topo.items():
        gpu = g.model_copy(update={"pcie_topology": topo})
        cost = RooflineCost(RooflineCostConfig(), m, gpu, 2, engine=preset("vllm-v1"))
        assert cost.ar.regime(msg) == "nccl"
        assert cost.ar.seconds(msg) == pytest.approx(expected, rel=1e-4)
        bare = RooflineCost(RooflineCostConfig(), m, gpu, 2)
        assert bare.ar.bw == pytest.approx(min(64e9 * 0.6, PCIE_NCCL_DEFAULT_BUSBW[topo]))


def test_unknown_topology_is_one_clear_error(tmp_path) -> None:
    # in the cost model's helper
    with pytest.raises(ValueError, match="pcie_topology"):
        nccl_pcie_ceiling("ring")
    # in a GPU spec file a scenario names: one line naming spec-file:line, the field and the accepted values; exit 2
    spec = catalog.gpu("rtx-pro-6000").model_dump(exclude={"pcie_topology", "sources"})
    gpu_file = tmp_path / "box.yaml"
    gpu_file.write_text(yaml.safe_dump(spec, sort_keys=True) + "pcie_topology: nvswitch\n")
    line = len(gpu_file.read_text().splitlines())
    sc = tmp_path / "s.yaml"
    sc.write_text(
        "model: llama-3.1-8b\nhardware: box.yaml\n"
        "workload: {num_requests: 2, arrival: {kind: poisson, rate: 1}, lengths: {kind: fixed, prompt: 8, output: 2}}\n"
    )
    with pytest.raises(ServesimError) as e:
        sim.load_scenario(sc)
    msg = str(e.value)
    assert f"box.yaml:{line}" in msg and "pcie_topology" in msg and "root_complex" in msg, msg
    r = CliRunner().invoke(app, ["run", str(sc), "--out", str(tmp_path / "out")])
    out = r.output.strip()
    assert r.exit_code == 2 and "Traceback" not in r.output and len(out.splitlines()) == 1, r.output
    assert f"box.yaml:{line}" in out and "pcie_topology" in out
    # and the accepted value loads
    gpu_file.write_text(yaml.safe_dump(spec, sort_keys=True) + "pcie_topology: switch\n")
    assert sim.load_scenario(sc).gpu_spec.pcie_topology == "switch"
