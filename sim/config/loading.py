"""Loading a scenario: YAML with positions or a dict, `--set` overrides (paths from the working directory),
then validation with every mistake as one line naming file:line:col: non-finite numbers, the schema, and
the physics bounds of `sim.config.limits`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sim.config.limits import (
    MAX_MAGNITUDE,
    fallback,
    first_bool_as_number,
    first_huge,
    first_non_finite,
    physical_problem,
)
from sim.config.scenario import Scenario
from sim.config.specfiles import check_cost_files, names_a_file, resolve_spec_files
from sim.config.yamlio import Positions, apply_overrides, format_validation_error, load_yaml, locate
from sim.errors import ServesimError


def load_scenario(
    source: str | Path | dict[str, Any] | Scenario,
    overrides: list[str] | None = None,
    feasibility: bool | None = None,
) -> Scenario:
    """A validated `Scenario` from a YAML path, a dict or a Scenario, with `a.b=value` overrides applied.
    `feasibility` (default: for files) also checks tp against the heads, the fit in memory and trace paths."""
    pos: Positions | None = None
    base = Path.cwd()
    if isinstance(source, Scenario):
        data = source.model_dump(mode="json")
        base = source.base_dir
        label = "<scenario>"
    elif isinstance(source, dict):
        data, label = source, "<dict>"
    else:
        data, pos = load_yaml(source)
        label = str(source)
        base = Path(source).resolve().parent
        if not isinstance(data, dict):
            raise ServesimError(f"{label}:1:1: expected a mapping of scenario keys, found {type(data).__name__}")
    if overrides:
        data = _cwd_paths(apply_overrides(copy.deepcopy(data), overrides), overrides)
    if feasibility is None:
        feasibility = pos is not None
    return validate_scenario(data, label, pos, base, feasibility)


_PATH_KEYS = ("path", "profile", "tables")


def _cwd_paths(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A relative path given with `--set` is relative to the working directory (where it was typed), not to
    the scenario's folder: make those that exist there absolute."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        parts = [k for k in key.split(".") if k]
        if not parts or parts[-1] not in (*_PATH_KEYS, "model", "draft_model", "hardware"):
            continue
        node: Any = data
        for k in parts[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        v = node.get(parts[-1]) if isinstance(node, dict) else None
        if parts[-1] not in _PATH_KEYS and not names_a_file(v, "model"):
            continue  # a catalogue name, not a path
        if isinstance(v, str) and v and not Path(v).is_absolute() and Path(v).exists():
            node[parts[-1]] = str(Path(v).resolve())
    return data


def validate_scenario(data: Any, label: str, pos: Positions | None, base: Path, feasibility: bool = True) -> Scenario:
    """Validate plain data into a Scenario; every mistake (schema, non-finite number, physics: tp vs heads,
    model fit, trace path, run length) is one ServesimError line naming label:line:col."""
    if isinstance(data, dict):
        data, pos = resolve_spec_files(data, label, pos, base)
        check_cost_files(data, label, pos, base)
    bad = first_non_finite(data)
    if bad is not None:
        loc, v = bad
        dotted = ".".join(map(str, loc))
        raise ServesimError(f"{locate(loc, label, pos)}: {dotted}: expected a finite number, found {v!r}")
    huge = first_huge(data)
    if huge is not None:
        loc, v = huge
        raise ServesimError(
            f"{locate(loc, label, pos)}: {'.'.join(map(str, loc))}: expected a magnitude of at most "
            f"{MAX_MAGNITUDE:g} (a unit or exponent typo?), found {v:g}"
        )
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as e:
        raise ServesimError(format_validation_error(e, label, pos)) from None
    flag = first_bool_as_number(data, sc)
    if flag is not None:
        loc, b = flag
        raise ServesimError(
            f"{locate(loc, label, pos)}: {'.'.join(map(str, loc))}: expected a number, found the boolean {b}"
        )
    sc._base_dir = base
    problem = physical_problem(sc, feasibility)
    if problem is not None:
        loc, msg = problem
        if pos is not None and loc not in pos:
            loc = fallback(loc)
        raise ServesimError(f"{locate(loc, label, pos)}: {'.'.join(map(str, loc))}: {msg}")
    return sc
