"""Files a scenario names besides traces, read when it is loaded so a bad one is one line naming file:line:col.

Model and GPU fields of a scenario that name a file: an inline spec YAML (`model: specs/my-model.yaml`,
`hardware: gpus/my-gpu.yaml`) or a Hugging Face `config.json`. Relative paths are relative to the scenario's
folder (where the person who wrote them was looking); the spec's values keep their positions in the spec
file, so a mistake there is one line naming spec-file:line:col."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hwprofiles import catalog
from hwprofiles.hfconfig import checkpoint_quantization, is_config_path, weight_only_on
from sim.config.modelarg import SPEC_SUFFIXES, spec_file_data
from sim.config.yamlio import Loc, Positions, format_validation_error, graft, load_yaml, locate
from sim.errors import ServesimError

# where a scenario names a model or a GPU, and which
SPEC_FIELDS: tuple[tuple[Loc, str], ...] = (
    (("model",), "model"),
    (("speculative", "draft_model"), "model"),
    (("hardware",), "gpu"),
    (("cluster", "prefill", "hardware"), "gpu"),
    (("cluster", "decode", "hardware"), "gpu"),
)


def names_a_file(value: Any, what: str) -> bool:
    """Is this field value a path (spec YAML, or for a model a config.json) rather than a catalogue name?"""
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    return text.endswith(SPEC_SUFFIXES) or (what == "model" and is_config_path(text))


def _parent(data: Any, loc: Loc) -> dict[str, Any] | None:
    node = data
    for k in loc[:-1]:
        node = node.get(k) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def resolve_spec_files(
    data: dict[str, Any], label: str, pos: Positions | None, base: Path
) -> tuple[dict[str, Any], Positions | None]:
    """`data` with spec files read in place (a copy when anything changes) and config.json paths made absolute,
    so the scenario runs the same from any working directory; `pos` extended with the spec files' positions."""
    copied = False
    for loc, what in SPEC_FIELDS:
        parent = _parent(data, loc)
        value = parent.get(str(loc[-1])) if parent is not None else None
        if not names_a_file(value, what):
            continue
        assert isinstance(value, str)
        if not copied:
            data, copied = copy.deepcopy(data), True
        parent = _parent(data, loc)
        assert parent is not None
        path = Path(value.strip()).expanduser()
        path = path if path.is_absolute() else base / path
        where = f"{locate(loc, label, pos)}: {'.'.join(map(str, loc))}"
        try:
            if value.strip().lower().endswith(SPEC_SUFFIXES):
                spec, spec_pos = spec_file_data(path, what)
                parent[str(loc[-1])] = spec
                pos = graft(pos, loc, spec_pos, str(path), root=False)
            else:
                if not path.is_file():
                    raise ServesimError(f"{path}: file not found")
                catalog.model(str(path.resolve()))
                parent[str(loc[-1])] = str(path.resolve())
                if loc == ("model",) and "quantization" not in data:  # the checkpoint's own precision, if declared
                    quant = checkpoint_quantization(path)
                    if quant is not None:
                        data["quantization"] = _as_run(quant, data.get("hardware"))
        except ServesimError as e:
            raise ServesimError(f"{where}: {str(e).removeprefix('model: ')}") from None
    return data, pos


def check_cost_files(data: dict[str, Any], label: str, pos: Positions | None, base: Path) -> None:
    """The cost model's fitted profile (a YAML file) and measured-table directory, relative to the scenario's
    folder: a missing one is named at the scenario's key, a damaged profile (binary, not UTF-8, bad YAML, a
    wrong field) at its own file:line:col, before any run starts."""
    from hwprofiles.tables import load_tables
    from sim.costmodel.profile import CostProfile

    cm = data.get("cost_model")
    if not isinstance(cm, dict):
        return
    for key in ("tables", "profile"):
        value = cm.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        where = f"{locate(('cost_model', key), label, pos)}: cost_model.{key}"
        if key == "tables":
            if not path.is_dir():
                raise ServesimError(f"{where}: {path}: measured-table directory not found")
            try:  # a folder without any table, or a damaged CSV, is named here, at the scenario's key
                load_tables(path)
            except ServesimError as e:
                raise ServesimError(f"{where}: {e}") from None
            continue
        if not path.is_file():
            raise ServesimError(f"{where}: {path}: profile file not found")
        profile, ppos = load_yaml(path)
        try:
            CostProfile.model_validate(profile)
        except ValidationError as e:
            where, _, what = format_validation_error(e, str(path), ppos).partition(": ")
            raise ServesimError(f"{where}: not a servesim profile: {what}") from None


def _as_run(quant: dict[str, Any], hardware: object) -> dict[str, Any]:
    """The checkpoint's precision on the scenario's GPU (`weight_only_on`) where the top level names one the
    catalogue knows; otherwise as declared (a pool's GPU is checked by the scenario, with the usual error)."""
    if not isinstance(hardware, str):
        return quant
    try:
        return weight_only_on(quant, catalog.gpu(hardware))
    except ServesimError:
        return quant  # an unknown GPU name is reported where `hardware` is validated
