"""YAML with positions: load a file keeping each key's line:column, apply `--set` overrides, and turn
pydantic errors into one-line messages that name file:line:col, the field path, expected and found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim.errors import ServesimError

Loc = tuple[str | int, ...]


class Positions(dict[Loc, tuple[int, int]]):
    """Maps a path of keys/indices to the 1-based (line, column) of its value in the YAML file."""


def _positions(node: yaml.Node, path: Loc, pos: Positions) -> None:
    pos[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _positions(v, (*path, k.value), pos)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _positions(v, (*path, i), pos)


def load_yaml(path: str | Path) -> tuple[Any, Positions]:
    """Parse a YAML file into plain data plus key positions; YAML syntax errors name file:line:col."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ServesimError(f"{p}: file not found") from None
    except OSError as e:
        raise ServesimError(f"{p}: cannot read: {e.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        problem = getattr(e, "problem", None) or str(e)
        raise ServesimError(f"{where}: invalid YAML: {problem}") from None
    pos = Positions()
    if node is not None:
        _positions(node, (), pos)
    return ({} if data is None else data), pos


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to nested dicts, creating levels as needed."""
    for item in overrides:
        if "=" not in item:
            raise ServesimError(f"--set {item!r}: expected KEY=VALUE, e.g. cluster.instances=8")
        key, raw = item.split("=", 1)
        parts = [k for k in key.strip().split(".") if k]
        if not parts:
            raise ServesimError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node: Any = data
        for k in parts[:-1]:
            nxt = node.get(k) if isinstance(node, dict) else None
            if isinstance(nxt, str) and k in ("model", "hardware"):
                raise ServesimError(f"--set {key}: {k} is a catalogue name ({nxt!r}); set it whole")
            if not isinstance(nxt, dict):
                nxt = {}
                node[k] = nxt
            node = nxt
        node[parts[-1]] = value
    return data


def _short(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def format_validation_error(err: ValidationError, source: str, pos: Positions | None) -> str:
    """First line: the first error with its position; then one line per further error."""
    lines = []
    for e in err.errors():
        # `kind` sections are validated through the registry (sim.config.kinds), so no union tag is in the path
        clean: Loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        dotted = ".".join(str(x) for x in clean) or "(top level)"
        where = source
        if pos is not None:
            probe = clean
            while probe and probe not in pos:
                probe = probe[:-1]
            if probe in pos:
                line, col = pos[probe]
                where = f"{source}:{line}:{col}"
        msg = e["msg"]
        found = f"; found {_short(e['input'])}" if e["type"] not in ("missing",) and "input" in e else ""
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{where}: {dotted}: {msg}{found}")
    return "\n".join(lines)
