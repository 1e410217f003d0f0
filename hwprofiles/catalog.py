"""Named GPUs and models from the YAML catalogue in `hwprofiles/data/`.

Scenarios name hardware and models by string; this module turns those strings into validated specs.
Lookups are case-insensitive, accept a few common aliases, and an unknown name raises
`UnknownNameError` listing what is known, so a typo becomes a one-line CLI error.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from hwprofiles.errors import UnknownNameError
from hwprofiles.specs import GPUSpec, ModelSpec

# Short names people type for the usual variant. Kept here rather than in the YAML so the data files
# stay a plain name -> spec mapping.
GPU_ALIASES: dict[str, str] = {
    "h100": "h100-sxm",
    "a100": "a100-80g",
}
MODEL_ALIASES: dict[str, str] = {}

_S = TypeVar("_S", bound=BaseModel)


def _normalise(name: str) -> str:
    return name.strip().lower()


def _load_table(filename: str, spec_cls: type[_S]) -> dict[str, _S]:
    """Parse one catalogue file and validate every entry now, so bad data fails at first use."""
    text = (files("hwprofiles") / "data" / filename).read_text(encoding="utf-8")
    raw: dict[str, dict[str, Any]] = yaml.safe_load(text) or {}
    table: dict[str, _S] = {}
    for key, fields in raw.items():
        name = _normalise(str(key))
        if name in table:
            raise ValueError(f"{filename}: duplicate entry {name!r}")
        table[name] = spec_cls.model_validate({"name": name, **fields})
    return table


@cache
def _gpus() -> dict[str, GPUSpec]:
    return _load_table("gpus.yaml", GPUSpec)


@cache
def _models() -> dict[str, ModelSpec]:
    return _load_table("models.yaml", ModelSpec)


def gpu(name: str) -> GPUSpec:
    """The GPU called `name` (case-insensitive; aliases such as `h100` allowed)."""
    key = _normalise(name)
    key = GPU_ALIASES.get(key, key)
    table = _gpus()
    if key not in table:
        raise UnknownNameError("hardware", name, list(table))
    return table[key]


def model(name: str) -> ModelSpec:
    """The model called `name` (case-insensitive)."""
    key = _normalise(name)
    key = MODEL_ALIASES.get(key, key)
    table = _models()
    if key not in table:
        raise UnknownNameError("model", name, list(table))
    return table[key]


def gpu_names() -> list[str]:
    """Canonical GPU names, sorted (aliases excluded)."""
    return sorted(_gpus())


def model_names() -> list[str]:
    """Canonical model names, sorted (aliases excluded)."""
    return sorted(_models())
