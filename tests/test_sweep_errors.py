"""A mistake in a swept value is named at the sweep file's line:col of that value (schema errors, non-finite
numbers and the physics bounds alike); a mistake in the base scenario at the base file's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.errors import ServesimError
from sim.tools.sweep.spec import load_sweep

BASE = (
    "model: llama-3.1-8b\n"
    "hardware: h100-sxm\n"
    "workload:\n"
    "  num_requests: 10\n"
    "  arrival: {kind: poisson, rate: 1.0}\n"
    "  lengths: {kind: fixed, prompt: 8, output: 8}\n"
    "engine: {timeline_interval_s: 1.0}\n"
)


def at(path: Path, text: str, needle: str) -> str:
    """`path:line:col` of the first occurrence of `needle` in `text` (1-based, as YAML positions are)."""
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return f"{path}:{n}:{line.index(needle) + 1}"
    raise AssertionError(needle)


def error_of(tmp: Path, sweep_text: str, base_text: str = BASE) -> tuple[str, Path, Path]:
    (tmp / "sc").mkdir(exist_ok=True)
    base = tmp / "sc" / "base.yaml"
    base.write_text(base_text)
    sweep = tmp / "w.yaml"
    sweep.write_text(sweep_text)
    with pytest.raises(ServesimError) as e:
        load_sweep(sweep)
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg, sweep, base


@pytest.mark.parametrize(
    ("grid_line", "needle", "field"),
    [
        ("  workload.arrival.rate: [1.0, .inf]\n", ".inf", "workload.arrival.rate"),  # non-finite
        ("  workload.arrival.rate: [1.0, -.nan]\n", "-.nan", "workload.arrival.rate"),
        ("  cluster.instances: [1, true]\n", "true", "cluster.instances"),  # schema
        ("  kv_cache.block_size: [16, 0]\n", "0]", "kv_cache.block_size"),
        ("  engine.timeline_interval_s: [1.0, 0.00001]\n", "0.00001", "engine.timeline_interval_s"),  # bound
        ("  cost_model: [{kind: linear, base_s: 99999.0}]\n", "99999.0", "cost_model.base_s"),  # in a mapping
        ("  scheduler:\n  - kind: fcfs\n    max_num_seqs: -3\n", "-3", "scheduler.max_num_seqs"),  # block style
        ("  workload.arrival.rate: [1e9]\n", "1e9", "workload.arrival.rate"),
        # bounds checked after the schema (sim.config.limits): ticks over the horizon, an inline GPU's units
        ("  engine.horizon_s: [1.0e6]\n  engine.timeline_interval_s: [0.0005]\n", "0.0005", "engine.timeline"),
        (
            "  hardware:\n  - {name: g, memory_bytes: 8.0e+25, bf16_flops: 1.0e+15, mem_bw: 3.0e+12, "
            "intra_node_bw: 4.5e+11, host_link_bw: 6.4e+10, price_per_hour: 2.0, tdp_w: 700}\n",
            "8.0e+25",
            "hardware.memory_bytes",
        ),
    ],
)
def test_bad_swept_value_is_named_at_its_line_and_column(
    tmp_path: Path, grid_line: str, needle: str, field: str
) -> None:
    text = "base: sc/base.yaml\ngrid:\n  seed: [1]\n" + grid_line
    msg, sweep, _ = error_of(tmp_path, text)
    assert msg.startswith(f"{at(sweep, text, needle)}: {field}"), msg
    assert "(sweep point " in msg


def test_zip_value_and_inline_base(tmp_path: Path) -> None:
    base = yaml.safe_load(BASE)
    text = yaml.safe_dump({"base": base}, sort_keys=False) + "zip:\n  seed: [1, 2]\n  cluster.tp: [1, -2]\n"
    msg, sweep, _ = error_of(tmp_path, text)
    assert msg.startswith(f"{at(sweep, text, '-2')}: cluster.tp"), msg
    assert "sweep point 1: seed=2, cluster.tp=-2" in msg


def test_mistake_in_the_base_is_named_in_the_base(tmp_path: Path) -> None:
    base_text = BASE.replace("rate: 1.0", "rate: .inf")
    msg, _, base = error_of(tmp_path, "base: sc/base.yaml\ngrid:\n  seed: [1, 2]\n", base_text)
    assert msg.startswith(f"{at(base, base_text, '.inf')}: workload.arrival.rate"), msg
    # a swept mapping replaces the base's: its keys are the sweep's, the base's other keys stay the base's
    base_text = BASE.replace("engine: {timeline_interval_s: 1.0}", "engine: {timeline_interval_s: 1.0, bogus: 1}")
    text = "base: sc/base.yaml\ngrid:\n  engine.horizon_s: [10.0]\n"
    msg, _, base = error_of(tmp_path, text, base_text)
    assert msg.startswith(f"{at(base, base_text, '1}')}: engine.bogus: unknown field"), msg


def test_swept_spec_files_are_relative_to_the_sweep_file(tmp_path: Path) -> None:
    """Model spec files named in a grid are read from the sweep file's folder; a bad one is named at its
    own line:col."""
    (tmp_path / "models").mkdir()
    good = {"num_layers": 4, "hidden_size": 1024, "num_heads": 16, "num_kv_heads": 4,
            "intermediate_size": 4096, "vocab_size": 32000, "max_context": 4096}  # fmt: skip
    (tmp_path / "models" / "tiny.yaml").write_text(yaml.safe_dump(good, sort_keys=False))
    bad_text = yaml.safe_dump({**good, "num_heads": "many"}, sort_keys=False)
    (tmp_path / "models" / "bad.yaml").write_text(bad_text)
    text = "base: sc/base.yaml\ngrid:\n  model: [models/tiny.yaml]\n"
    (tmp_path / "sc").mkdir()
    (tmp_path / "sc" / "base.yaml").write_text(BASE)
    (tmp_path / "w.yaml").write_text(text)
    sw = load_sweep(tmp_path / "w.yaml")
    spec = sw.points[0].scenario.model_spec
    assert (spec.name, spec.num_layers, spec.head_dim) == ("tiny", 4, 64)  # head_dim = 1024 / 16
    (tmp_path / "w.yaml").write_text(text.replace("tiny.yaml", "tiny.yaml, models/bad.yaml"))
    with pytest.raises(ServesimError) as e:
        load_sweep(tmp_path / "w.yaml")
    bad = (tmp_path / "models" / "bad.yaml").resolve()
    assert str(e.value).startswith(f"{at(bad, bad_text, 'many')}: model.num_heads"), str(e.value)
