"""Named GPUs and models from the YAML catalogue in `hwprofiles/data/`.

Scenarios name hardware and models by string; this module turns those strings into validated specs.
Lookups are case-insensitive, accept a few common aliases, and an unknown name raises
`UnknownNameError` listing what is known, so a typo becomes a one-line CLI error.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from hwprofiles.errors import UnknownNameError
from hwprofiles.hfconfig import is_config_path, load_hf_config
from hwprofiles.specs import GPUSpec, ModelSpec

# Short names people type for the usual variant. Kept here rather than in the YAML so the data files
# stay a plain name -> spec mapping.
GPU_ALIASES: dict[str, str] = {
    "h100": "h100-sxm",
    "a100": "a100-80g",
    "h200-sxm": "h200",
    "b200-sxm": "b200",
    "b300-sxm": "b300",
    "rtx-pro-6000-blackwell": "rtx-pro-6000",
}
MODEL_ALIASES: dict[str, str] = {
    "llama-3.1-8b-instruct": "llama-3.1-8b",
    "llama-3.1-70b-instruct": "llama-3.1-70b",
    "qwen3-235b-a22b-fp8": "qwen3-235b-a22b",
    "deepseek-v3.1": "deepseek-v3",  # same shapes (V3.1 changed training, not architecture)
}

_S = TypeVar("_S", bound=BaseModel)


def _normalise(name: str) -> str:
    """Case-insensitive; `_` and `-` interchangeable (silicon data writes h100_sxm)."""
    return name.strip().lower().replace("_", "-")


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


@cache
def _by_hf_id() -> dict[str, str]:
    return {_normalise(m.hf_id): n for n, m in _models().items() if m.hf_id}


def model(name: str) -> ModelSpec:
    """The model called `name` (case-insensitive; its Hugging Face id works too), or, if `name` ends in
    `.json`, the model that Hugging Face config file describes."""
    if is_config_path(name):
        return _config_model(name)
    table = _models()
    key = _model_key(_normalise(name))
    if key not in table:
        raise UnknownNameError("model", name, list(table))
    return table[key]


# Checkpoint-variant suffixes of Hugging Face ids that do not change the shapes (quantised re-uploads).
_VARIANT_SUFFIXES = ("-instruct", "-fp8", "-nvfp4", "-fp4", "-int4", "-awq", "-gptq", "-2507")


def _model_key(key: str) -> str:
    """Catalogue key for a name, an alias, a Hugging Face id, or an id of a quantised re-upload."""
    key = MODEL_ALIASES.get(key, key)
    key = _by_hf_id().get(key, key)
    if key in _models() or "/" not in key:
        return key
    base = key.split("/")[-1]
    while True:
        base = MODEL_ALIASES.get(base, base)
        if base in _models():
            return base
        cut = next((s for s in _VARIANT_SUFFIXES if base.endswith(s)), None)
        if cut is None:
            return key
        base = base[: -len(cut)]


def _config_model(path: str) -> ModelSpec:
    """A config.json's model, cached on the file's contents: an edit within one process (a notebook, a sweep)
    is seen, and an unchanged file is parsed once."""
    try:
        digest = hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()
    except OSError:
        return load_hf_config(path)  # its one-line error names the file
    return _config_model_of(path, digest)


@cache
def _config_model_of(path: str, digest: str) -> ModelSpec:
    return load_hf_config(path)


def gpu_names() -> list[str]:
    """Canonical GPU names, sorted (aliases excluded)."""
    return sorted(_gpus())


def model_names() -> list[str]:
    """Canonical model names, sorted (aliases excluded)."""
    return sorted(_models())
