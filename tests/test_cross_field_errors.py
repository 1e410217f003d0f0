"""A check that spans sections fails at the top level, yet its error must point at the field it blames and
show that field's value, not the whole scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.config.scenario import load_scenario
from sim.errors import ServesimError

WORKLOAD = (
    "workload: {num_requests: 2, arrival: {kind: poisson, rate: 1}, lengths: {kind: fixed, prompt: 9, output: 2}}"
)


@pytest.mark.parametrize(
    ("lines", "where", "needle"),
    [
        (
            ["model: llama-3.1-8b", "hardware: h100-sxm", "quantization: {weights: fp4, activations: fp4}"],
            ":3:43: quantization.activations: fp4 needs FP4 tensor cores",
            "found 'fp4'",
        ),
        (
            ["model: llama-3.1-8b", "hardware: h100-sxm", "cluster:", "  tp: 1", "  ep: 2"],
            ":5:7: cluster.ep: 2 needs a mixture-of-experts model",
            "llama-3.1-8b is dense",
        ),
    ],
)
def test_cross_section_error_points_at_the_blamed_field(tmp_path: Path, lines: list[str], where: str, needle: str):
    f = tmp_path / "s.yaml"
    f.write_text("\n".join([*lines, WORKLOAD]) + "\n")
    with pytest.raises(ServesimError) as e:
        load_scenario(f)
    msg = str(e.value)
    assert msg.startswith(f"{f}{where}"), msg
    assert needle in msg and "'model'" not in msg and "\n" not in msg


def test_found_is_kept_unless_the_message_quotes_the_value_whole(tmp_path: Path):
    """`found 10` must survive `greater than or equal to 100`; a name the message quotes is not repeated."""
    from pydantic import BaseModel, Field, ValidationError

    from sim.config.yamlio import format_validation_lines

    class M(BaseModel):
        x: int = Field(ge=100)

    with pytest.raises(ValidationError) as e:
        M(x=10)
    (line,) = format_validation_lines(e.value, "f.yaml", None)
    assert line.endswith("greater than or equal to 100; found 10"), line
    f = tmp_path / "s.yaml"
    f.write_text("\n".join(["model: llama-3.1-8b", "hardware: nosuch-gpu", WORKLOAD]) + "\n")
    with pytest.raises(ServesimError) as e2:
        load_scenario(f)
    assert str(e2.value).count("'nosuch-gpu'") == 1, str(e2.value)
