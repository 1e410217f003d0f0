"""YAML with positions: load a file keeping each value's line:column, apply `--set` overrides, and turn
pydantic errors into one-line messages that name file:line:col, the field path, expected and found.

Parsing is ruamel.yaml's round-trip loader: it records a position on every node and rejects duplicate
keys itself. Before building plain data we bound what a hostile file can cost: nesting depth (checked on
the token stream, so no recursion), the size of the tree once aliases are expanded (counted over the
shared-node graph, linear in the file, so an alias bomb fails fast) and recursive aliases.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml import tokens as tok
from ruamel.yaml.comments import CommentedBase
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from sim.errors import ServesimError

Loc = tuple[str | int, ...]
# scenario, sweep and spec files are hand-written (the shipped ones are under 2 KiB); a bigger one is a mistake,
# and the round-trip parser (pure Python, for positions) reads about 100 KiB/s: the cap keeps every answer to
# seconds
MAX_BYTES = 128 * 2**10
MAX_DEPTH = 64  # nesting levels (the schema needs fewer than 10)
MAX_NODES = 200_000  # values once aliases are expanded


Where = tuple[int, int] | tuple[int, int, str]


class Positions(dict[Loc, Where]):
    """Maps a path of keys/indices to the 1-based (line, column) of its value in the YAML file; a third element
    names another file the value came from (an inline model spec file, a sweep file's swept value)."""


def graft(pos: Positions | None, at: Loc, other: Positions, source: str, root: bool = True) -> Positions:
    """`pos` with the values under `at` taken from `other` (positions in the file `source`): errors about a
    value that came from another file then name that file's line:col. `root`: `at` itself too (else it keeps
    its own position, e.g. the `model:` key that names a spec file)."""
    out = Positions({k: v for k, v in (pos or {}).items() if k[: len(at)] != at or (not root and len(k) == len(at))})
    for k, v in other.items():
        out[(*at, *k) if k or root else (*at, FILE_ROOT)] = (v[0], v[1], v[2] if len(v) == 3 else source)
    return out


# Key under a grafted field (with root=False) that records where the other file's mapping starts: an error about
# a field the file lacks (a GPU spec file short of `mem_bw`) names that file, not the scenario key naming it.
FILE_ROOT = "<file>"


_OPEN = (tok.BlockMappingStartToken, tok.BlockSequenceStartToken, tok.FlowMappingStartToken, tok.FlowSequenceStartToken)
_CLOSE = (tok.BlockEndToken, tok.FlowMappingEndToken, tok.FlowSequenceEndToken)


def _read_text(p: Path) -> str:
    """The file as text, or one line saying why not (missing, a folder, too big, binary, not UTF-8)."""
    try:
        if p.is_dir():
            raise ServesimError(f"{p}: is a directory, expected a YAML file")
        if p.exists() and not p.is_file():  # a device or a pipe (/dev/zero, a FIFO) would be read forever
            raise ServesimError(f"{p}: not a regular file, expected a YAML file")
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise ServesimError(
                f"{p}: {size / 2**10:,.0f} KiB is too big for a hand-written YAML file (max {MAX_BYTES >> 10} KiB)"
            )
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ServesimError(f"{p}: file not found") from None
    except OSError as e:
        raise ServesimError(f"{p}: cannot read: {e.strerror}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ServesimError(f"{p}:1:1: UTF-16 text; save the file as UTF-8")
    nul = raw.find(b"\0")
    if nul >= 0:
        line, col = _line_col(raw, nul)
        raise ServesimError(f"{p}:{line}:{col}: binary data (a NUL byte), expected YAML text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _line_col(raw, e.start)
        raise ServesimError(f"{p}:{line}:{col}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save it as UTF-8") from None


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    return line, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1


def _yaml_error(where: str, e: YAMLError) -> ServesimError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    loc = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else f"{where}:1:1"
    problem = getattr(e, "problem", None) if isinstance(e, MarkedYAMLError) else None
    problem = " ".join((problem or str(e).splitlines()[0] if str(e) else type(e).__name__).split())
    if "duplicate key" in problem:
        problem = problem.split(" with value")[0]
    return ServesimError(f"{loc}: invalid YAML: {problem}")


def _check_depth(yml: YAML, text: str, where: str) -> None:
    """Reject deep nesting from the token stream before the (recursive) composer sees it."""
    depth = 0
    for t in yml.scan(text):
        if isinstance(t, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                m = t.start_mark
                raise ServesimError(
                    f"{where}:{m.line + 1}:{m.column + 1}: invalid YAML: nested deeper than {MAX_DEPTH}"
                )
        elif isinstance(t, _CLOSE):
            depth -= 1


def _depth_bound(text: str) -> int:
    """A cheap upper bound on nesting: every flow bracket, plus per line the indentation and `- `/`? ` markers
    (block nesting needs one of those per level); the exact token scan runs only when this is large."""
    deepest = 0
    for line in text.splitlines():
        stripped = line.lstrip(" -?\t")
        deepest = max(deepest, len(line) - len(stripped))
    return text.count("[") + text.count("{") + deepest + 1


def parse_yaml_text(text: str, where: str) -> Any:
    """Round-trip parse of `text` (positions on nodes, duplicate keys rejected); errors name where:line:col."""
    yml = YAML(typ="rt", pure=True)
    yml.allow_duplicate_keys = False
    try:
        if _depth_bound(text) > MAX_DEPTH:
            _check_depth(yml, text, where)
        return yml.load(text)
    except YAMLError as e:
        raise _yaml_error(where, e) from None
    except RecursionError:
        raise ServesimError(f"{where}:1:1: invalid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as e:  # a constructor choking on a scalar (e.g. a bad date)
        raise ServesimError(f"{where}:1:1: invalid YAML: {' '.join(str(e).split())[:120]}") from None


def _node_lc(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    return (lc.line + 1, lc.col + 1) if lc is not None and lc.line is not None else (1, 1)


def _child_lc(node: Any, key: Any) -> tuple[int, int]:
    try:
        lc: Any = getattr(node, "lc")  # noqa: B009  (ruamel's position record, not typed on dict)
        line, col = lc.value(key) if isinstance(node, dict) else lc.item(key)
        return line + 1, col + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return _node_lc(node)


def _expanded_sizes(root: Any, where: str) -> dict[int, int]:
    """Node count of each container with aliases expanded, over the shared-node graph (iterative, linear)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, dict | list):
            continue
        i = id(node)
        if done:
            kids = node.values() if isinstance(node, dict) else node
            sizes[i] = min(1 + sum(sizes.get(id(k), 1) for k in kids), 10 * MAX_NODES)
            active.discard(i)
            continue
        if i in sizes:
            continue
        if i in active:
            line, col = _node_lc(node)
            raise ServesimError(f"{where}:{line}:{col}: invalid YAML: a recursive alias (a node containing itself)")
        active.add(i)
        stack.append((node, True))
        for k in node.values() if isinstance(node, dict) else node:
            if isinstance(k, dict | list) and id(k) not in sizes:
                stack.append((k, False))
    return sizes


def _plain(node: Any, path: Loc, pos: Positions, where: str) -> Any:
    """Plain dicts/lists/scalars (no ruamel subclasses) with each value's position recorded under its path."""
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        for k, v in node.items():
            if not isinstance(k, str | int | float | bool) and k is not None:
                line, col = _child_lc(node, k)
                raise ServesimError(f"{where}:{line}:{col}: invalid YAML: a key must be a plain value, found {k!r}")
            key = _scalar(k)
            pos[(*path, key)] = _child_lc(node, k)
            out[key] = _plain(v, (*path, key), pos, where)
        return out
    if isinstance(node, list):
        items = []
        for i, v in enumerate(node):
            pos[(*path, i)] = _child_lc(node, i)
            items.append(_plain(v, (*path, i), pos, where))
        return items
    return _scalar(node)


def _scalar(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    for t in (int, float, str):
        if isinstance(v, t):
            return t(v)
    if hasattr(v, "value") and isinstance(getattr(v, "value", None), str):  # a tagged scalar: keep its text
        return str(v.value)
    return v


def to_plain(data: Any, where: str) -> tuple[Any, Positions]:
    """Bounded conversion of a round-trip tree: alias bombs and recursive aliases fail fast with one line."""
    pos = Positions()
    if isinstance(data, CommentedBase):
        pos[()] = _node_lc(data)
    sizes = _expanded_sizes(data, where)
    if sizes.get(id(data), 1) > MAX_NODES:
        node = data  # descend to the innermost node that is still too big, to point at it
        while True:
            kids = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            big = [(k, v) for k, v in kids if sizes.get(id(v), 1) > MAX_NODES]
            if not big:
                break
            node = big[0][1]
        line, col = _node_lc(node)
        raise ServesimError(
            f"{where}:{line}:{col}: invalid YAML: aliases expand to more than {MAX_NODES:,} values (an alias bomb?)"
        )
    return _plain(data, (), pos, where), pos


def load_yaml(path: str | Path) -> tuple[Any, Positions]:
    """Parse a YAML file into plain data plus value positions; every problem is one line naming file:line:col."""
    p = Path(path)
    text = _read_text(p)
    data = parse_yaml_text(text, str(p))
    if data is None:
        raise ServesimError(f"{p}:1:1: empty file (no YAML document), expected a mapping")
    return to_plain(data, str(p))


def parse_value(raw: str) -> Any:
    """A `--set` value parsed as YAML (bounded like a file); text that is not valid YAML stays a string."""
    if not raw.strip():
        return ""
    try:
        data, _ = to_plain(parse_yaml_text(raw, "--set"), "--set")
    except ServesimError as e:
        if "invalid YAML" in str(e) and ("alias" in str(e) or "nested" in str(e) or "duplicate" in str(e)):
            raise
        return raw
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to nested dicts, creating levels as needed."""
    for item in overrides:
        if "=" not in item:
            raise ServesimError(f"--set {item!r}: expected KEY=VALUE, e.g. cluster.instances=8")
        key, raw = item.split("=", 1)
        if not [k for k in key.strip().split(".") if k]:
            raise ServesimError(f"--set {item!r}: empty key")
        try:
            value = parse_value(raw)
        except ServesimError as e:
            raise ServesimError(f"--set {key}: {str(e).split(': ', 1)[-1]}") from None
        set_value(data, key, value)
    return data


def set_value(data: dict[str, Any], key: str, value: Any, what: str = "--set") -> None:
    """Set the dotted path `key` to `value` (already parsed), creating levels as needed; `what` names where the
    key came from in an error (the option, or a sweep file's line:col)."""
    parts = [k for k in key.strip().split(".") if k]
    if not parts:
        raise ServesimError(f"{what} {key!r}: empty key")
    node: Any = data
    for k in parts[:-1]:
        nxt = node.get(k) if isinstance(node, dict) else None
        if isinstance(nxt, str) and k in ("model", "hardware"):
            raise ServesimError(f"{what} {key}: {k} is a catalogue name ({nxt!r}); set it whole")
        if not isinstance(nxt, dict):
            nxt = {}
            node[k] = nxt
        node = nxt
    node[parts[-1]] = value


def _short(value: Any) -> str:
    s = repr(value)
    s = " ".join(s.split())
    return s if len(s) <= 60 else s[:57] + "..."


_TYPE_ONLY = ("_type", "union_tag_invalid", "model_attributes_type", "dict_type")


def _relevant(errors: list[Any]) -> list[Any]:
    """Of a union's branch errors keep those of the branch the input looks like (a mapping for an inline
    spec, a string for a name), so the first line is about the user's intent, not a branch they did not mean."""
    keep = []
    for e in errors:
        branch_mismatch = e["type"].endswith(_TYPE_ONLY) and any(
            isinstance(x, str) and x in ("str", "int", "float", "bool", "list", "dict") for x in e["loc"][-1:]
        )
        if not branch_mismatch:
            keep.append(e)
    return keep or errors


def locate(loc: Loc, source: str, pos: Positions | None) -> str:
    """`source:line:col` of the deepest recorded ancestor of `loc` (the key itself when the file has it)."""
    if pos is None:
        return source
    probe = tuple(loc)
    while probe and probe not in pos:
        probe = probe[:-1]
    if probe not in pos:
        return source
    where = pos[probe]
    if probe != tuple(loc) and (*probe, FILE_ROOT) in pos:  # a field missing from a file `probe` names
        where = pos[(*probe, FILE_ROOT)]
    return f"{where[2] if len(where) == 3 else source}:{where[0]}:{where[1]}"


def format_validation_lines(err: ValidationError, source: str, pos: Positions | None) -> list[str]:
    """One line per pydantic error, each naming source:line:col, the field path, what was wrong and found."""
    lines = []
    for e in _relevant(err.errors()):
        loc: Loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        # pydantic puts the union branch in the path (e.g. scheduler.fcfs.max_num_seqs, model.ModelSpec.x); drop it
        clean = tuple(x for i, x in enumerate(loc) if not (i > 0 and isinstance(x, str) and _is_tag(x, loc, pos)))
        msg = " ".join(str(e["msg"]).split()).removeprefix("Value error, ")
        inp = e.get("input")
        if _bad_kind(e["type"], msg, inp) and pos is not None and (*clean, "kind") in pos:
            clean, inp = (*clean, "kind"), inp["kind"]  # an unknown kind: point at it, not at its section
        clean, msg, inp = _named_by_message(clean, msg, inp)
        dotted = ".".join(str(x) for x in clean) or "(top level)"
        where = locate(clean, source, pos)
        found = f"; found {_short(inp)}" if e["type"] not in ("missing",) and "input" in e else ""
        if found and _quotes(msg, found.removeprefix("; found ")):
            found = ""
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{where}: {dotted}: {msg}{found}")
    return lines


def _quotes(msg: str, shown: str) -> bool:
    """Whether the message already names the value as a whole token (`'x'`, `72`; not the 10 in 100)."""
    return re.search(r"(?<![\w.])" + re.escape(shown) + r"(?![\w.])", msg) is not None


_FIELD_PREFIX = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*): (.+)$")


def _named_by_message(clean: Loc, msg: str, inp: Any) -> tuple[Loc, str, Any]:
    """A check across sections fails at the level holding them all, but its message starts with the field it
    blames (`quantization.activations: fp4 needs ...`): point at that field and show its value, not the
    whole section."""
    m = _FIELD_PREFIX.match(msg)
    if m is None or not isinstance(inp, dict):
        return clean, msg, inp
    path = tuple(m.group(1).split("."))
    value: Any = inp
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return clean, msg, inp
        value = value[key]
    return (*clean, *path), m.group(2), value


def _bad_kind(kind: str, msg: str, inp: Any) -> bool:
    """A `kind` section rejected for its kind (not for one of its fields)."""
    if not isinstance(inp, dict) or "kind" not in inp:
        return False
    return kind == "union_tag_invalid" or (msg.startswith("unknown") and repr(inp["kind"]) in msg)


def format_validation_error(err: ValidationError, source: str, pos: Positions | None) -> str:
    """The first error on one line, with a count of the others (fix one, rerun, see the next)."""
    lines = format_validation_lines(err, source, pos)
    missing = [ln for ln in lines if ln.endswith(": Field required")]
    if len(missing) > 1 and len(missing) == len(lines):  # an inline spec short of fields: name them all at once
        parts = [ln.rsplit(": ", 2) for ln in missing]
        where = parts[0][0]
        fields = [p[1] for p in parts]
        parent = fields[0].rsplit(".", 1)[0] if "." in fields[0] else "(top level)"
        names = ", ".join(f.rsplit(".", 1)[-1] for f in fields)
        if all(f.rsplit(".", 1)[0] == fields[0].rsplit(".", 1)[0] for f in fields):
            return f"{where}: {parent}: missing required fields: {names}"
    more = len(lines) - 1
    return lines[0] + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


# union branches pydantic puts in an error's path (`model.ModelSpec.num_layers`); `kind` sections are validated
# through the registry (sim.config.kinds), so no union tag appears there
_BRANCHES = {"str", "int", "float", "GPUSpec", "ModelSpec"}


def _is_tag(x: str, loc: Loc, pos: Positions | None) -> bool:
    return x in _BRANCHES and (pos is None or loc not in pos)
