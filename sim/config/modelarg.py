"""A model given on the command line: a catalogue name, a Hugging Face config.json, or an inline spec file
(YAML with the fields of `servesim list models`; `head_dim` defaults to hidden_size / num_heads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hwprofiles import ModelSpec, catalog
from hwprofiles.hfconfig import is_config_path
from sim.config.fields import known_model_name
from sim.config.yamlio import Positions, format_validation_error, load_yaml
from sim.errors import ServesimError, UnknownNameError

SPEC_SUFFIXES = (".yaml", ".yml")


def model_arg(text: str, option: str = "--model") -> str | dict[str, Any]:
    """What a scenario's `model:` should hold for this argument; one line naming the option or file if bad."""
    if text.strip().lower().endswith(SPEC_SUFFIXES):
        return inline_spec(Path(text))
    if is_config_path(text):
        p = Path(text).expanduser()
        if not p.is_file():
            raise ServesimError(f"{option} {text}: file not found")
        try:
            catalog.model(str(p.resolve()))
        except ServesimError as e:
            raise ServesimError(f"{option} {e}") from None
        return str(p.resolve())  # absolute, so workers in another directory find it
    try:
        catalog.model(text)
    except UnknownNameError as e:
        raise ServesimError(f"{option}: {e}") from None
    return text


def inline_spec(path: Path) -> dict[str, Any]:
    """A validated inline model spec from a YAML file, as plain data (head_dim derived when omitted)."""
    data, pos = spec_file_data(path, "model")
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as e:
        raise ServesimError(format_validation_error(e, str(path), pos)) from None
    return spec.model_dump(mode="json", exclude={"num_params"})


def spec_file_data(path: Path, what: str) -> tuple[dict[str, Any], Positions]:
    """The fields of a model (or GPU) spec file with their positions, not yet validated: `name` defaults to
    the file's stem and a model's `head_dim` to hidden_size / num_heads (as for an inline spec)."""
    data, pos = load_yaml(path)
    if not isinstance(data, dict):
        fields = "name, num_layers, hidden_size, ..." if what == "model" else "name, memory_bytes, bf16_flops, ..."
        raise ServesimError(f"{path}:1:1: expected a mapping of {what} fields ({fields})")
    data.setdefault("name", path.stem)
    return (known_model_name(data) if what == "model" else data), pos


def model_label(model: str | dict[str, Any]) -> str:
    return (
        str(model["name"]) if isinstance(model, dict) else Path(model).parent.name if is_config_path(model) else model
    )
