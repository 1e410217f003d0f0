"""Hardware and model catalogue: validated GPU and model specs looked up by name.

The names load lazily (PEP 562): `hwprofiles.errors`, which every layer imports, must not pull in pydantic
and YAML, so that `servesim --help` starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hwprofiles.catalog import gpu, gpu_names, model, model_names
    from hwprofiles.specs import GPUSpec, ModelSpec

__all__ = ["GPUSpec", "ModelSpec", "gpu", "gpu_names", "model", "model_names"]

_LAZY = {
    "GPUSpec": "hwprofiles.specs",
    "ModelSpec": "hwprofiles.specs",
    "gpu": "hwprofiles.catalog",
    "gpu_names": "hwprofiles.catalog",
    "model": "hwprofiles.catalog",
    "model_names": "hwprofiles.catalog",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hwprofiles' has no attribute {name!r}")
