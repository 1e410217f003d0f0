"""Fitted engine-level profiles (`servesim calibrate fit`): their parameters and their file format."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from sim.costmodel.base import _Strict
from sim.errors import ServesimError


class ProfileParams(_Strict):
    """Engine-level parameters that kernel tables miss, fitted to measured iterations."""

    iteration_overhead_s: float = Field(default=0.0, ge=0, description="per iteration (scheduler, sampling, launch)")
    layer_overhead_s: float = Field(default=0.0, ge=0, description="per layer per iteration (launches, syncs)")
    seq_overhead_s: float = Field(default=0.0, ge=0, description="per sequence per iteration")
    comm_latency_s: float = Field(default=0.0, ge=0, description="extra latency per all-reduce (engine sync)")
    compute_scale: float = Field(default=1.0, gt=0, description="multiplies achieved FLOP/s")
    memory_scale: float = Field(default=1.0, gt=0, description="multiplies achieved bandwidth")
    attention_scale: float = Field(default=1.0, gt=0, description="multiplies attention's achieved rates")


class CostProfile(_Strict):
    """A profile file: the fitted parameters and where they came from."""

    format: Literal["servesim-profile/1"] = "servesim-profile/1"
    model: str = ""
    hardware: str = ""
    tp: int = Field(default=1, ge=1)
    base: Literal["roofline", "table"] = "roofline"
    params: ProfileParams = Field(default_factory=ProfileParams)
    fit: dict[str, Any] = Field(default_factory=dict)


def load_profile(path: str | Path) -> CostProfile:
    """Read a profile YAML; a missing or malformed file is a user error."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ServesimError(f"{p}: profile file not found")
    try:
        return CostProfile.model_validate(yaml.safe_load(p.read_text()) or {})
    except (ValidationError, yaml.YAMLError) as e:
        first = str(e).splitlines()
        raise ServesimError(f"{p}: not a servesim profile: {' '.join(first[:3])}") from None
