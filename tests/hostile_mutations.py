"""A second hostile-input corpus, generated differently from tests/hostile_corpus.py: mutations of what ships.

Every shipped scenario (scenarios/*.yaml, scenarios/regression/*.yaml) and sweep (scenarios/sweeps/*.yaml) is
taken apart into its values and mappings, and each is broken one at a time: a number made non-finite, huge,
negative, a word, a list, a mapping or a boolean; a boolean made a word or a number; a word made a mapping;
a `kind` made unknown; a required key deleted; an unknown key added. Each shipped trace's first rows are
written out and one cell of each column it reads is broken, or a row cut short, or the rows put out of order.

The position the single error line must name is found independently of servesim's YAML loader: the mutated
value is first written as a unique marker, the marker's line and column are read off the dumped text, then
the marker is replaced by the bad value's YAML. So a case passes only if the error names that very value
(file:line:col; for a broken trace cell, file:line of that row).

A mutation that is not a mistake is not a case: `NOT_MISTAKES` lists the (path, mutation) pairs that are valid
input, each with the reason.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.hostile_corpus import SC, Case

REPO = Path(__file__).resolve().parents[1]
MARK = "MUTATED_VALUE_MARKER"
SWEEP = "w.yaml"

Loc = tuple[str | int, ...]

# (literal YAML, name) per kind of leaf; each is a mistake for a field of that kind unless NOT_MISTAKES says so
NUMBER_MUTATIONS = [
    (".inf", "inf"),
    ("-.inf", "-inf"),
    (".nan", "nan"),
    ("1.0e+300", "huge"),
    ("-7", "negative"),
    ('"abc"', "word"),
    ("[1, 2]", "list"),
    ("{bogus: 1}", "mapping"),
    ("true", "bool"),
]
BOOL_MUTATIONS = [('"maybe"', "word"), ("2", "number"), ("{bogus: 1}", "mapping"), ("[true]", "list")]
WORD_MUTATIONS = [("{bogus: 1}", "mapping"), ("[x, y]", "list")]
KIND_MUTATIONS = [('"no-such-kind"', "unknown-kind"), ("42", "number")]

# Valid input, not mistakes (path with list indices as `#`, mutation name) -> why
NOT_MISTAKES: dict[tuple[str, str], str] = {
    ("workload.classes.#.priority", "negative"): "priorities are any integer in [-1e6, 1e6]; lower is served first",
    ("cluster.migration.threshold", "negative"): "Llumnix freeness (free blocks minus queued demand) can be negative",
    ("cluster.migration.kind", "missing"): "llumnix is the only migration kind: it may be left out",
    ("serving_engine.kind", "missing"): "the preset defaults to vllm-v1; the section may override terms only",
}


def shipped_scenarios() -> list[Path]:
    return sorted(REPO.glob("scenarios/*.yaml")) + sorted(REPO.glob("scenarios/regression/*.yaml"))


def shipped_sweeps() -> list[Path]:
    return sorted(REPO.glob("scenarios/sweeps/*.yaml"))


def _get(data: Any, loc: Loc) -> Any:
    for k in loc:
        data = data[k]
    return data


def _set(data: Any, loc: Loc, value: Any) -> None:
    _get(data, loc[:-1])[loc[-1]] = value


def _walk(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    """Every node (mappings, lists and scalars) with its path, parents first."""
    yield loc, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, (*loc, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _walk(v, (*loc, i))


def dotted(loc: Loc) -> str:
    return ".".join("#" if isinstance(k, int) else str(k) for k in loc)


def marked(data: dict[str, Any], loc: Loc, literal: str) -> tuple[str, int, int]:
    """YAML text of `data` with the value at `loc` replaced by `literal`, and that value's 1-based line and
    column, read off the text (the marker's position) rather than from any YAML loader."""
    d = copy.deepcopy(data)
    _set(d, loc, MARK)
    text = yaml.safe_dump(d, sort_keys=False, allow_unicode=True, width=1_000_000)
    lines = text.splitlines()
    (n,) = [i for i, ln in enumerate(lines) if MARK in ln]
    col = lines[n].index(MARK) + 1
    return text.replace(MARK, literal), n + 1, col


def at_value(file: str, line: int, col: int, literal: str, field: str = "") -> str:
    """The error must name this file and line and a column inside the mutated literal (an error inside a
    flow mapping or list names its inner value)."""
    cols = "|".join(str(c) for c in range(col, col + len(literal)))
    return rf"^error: {re.escape(file)}:{line}:(?:{cols}): {re.escape(field)}"


def _mutations(loc: Loc, value: Any) -> list[tuple[str, str]]:
    if loc and loc[-1] == "kind" and isinstance(value, str):
        return KIND_MUTATIONS
    if isinstance(value, bool):
        return BOOL_MUTATIONS
    if isinstance(value, int | float):
        return NUMBER_MUTATIONS
    if isinstance(value, str):
        return WORD_MUTATIONS
    return []


def _required(data: dict[str, Any]) -> list[Loc]:
    """Keys a scenario cannot do without: the top-level three and every section's `kind`."""
    locs: list[Loc] = [(k,) for k in ("model", "hardware", "workload") if k in data]
    return locs + [(*loc, "kind") for loc, node in _walk(data) if isinstance(node, dict) and "kind" in node]


def _absolute_base(sweep: dict[str, Any], where: Path) -> dict[str, Any]:
    base = sweep.get("base")
    if isinstance(base, str) and not Path(base).is_absolute():
        sweep = {**sweep, "base": str((where.parent / base).resolve())}
    return sweep


def scenario_cases() -> list[Case]:
    """Each value of each shipped scenario broken each way; each mapping with an unknown key; each required key
    deleted. A (path, mutation) pair already made from an earlier scenario is not repeated."""
    seen: set[tuple[str, str]] = set()
    out: list[Case] = []
    argv = ["run", SC, "--out", "out", "-q"]
    for f in shipped_scenarios():
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
        stem = f.stem
        for loc, value in _walk(data):
            if not loc:
                continue
            if isinstance(value, dict):
                key = (dotted(loc), "unknown-key")
                if key not in seen and key not in NOT_MISTAKES:
                    seen.add(key)
                    d = copy.deepcopy(data)
                    _get(d, loc)["tpyo_field"] = 1
                    text, line, col = marked(d, (*loc, "tpyo_field"), "1")
                    expect = at_value(SC, line, col, "1", f"{'.'.join(map(str, loc))}.tpyo_field: unknown field")
                    out.append(Case(f"mut-{stem}-{dotted(loc)}-unknown-key", {SC: text}, argv, expect))
                continue
            for literal, name in _mutations(loc, value):
                key = (dotted(loc), name)
                if key in seen or key in NOT_MISTAKES:
                    continue
                seen.add(key)
                text, line, col = marked(data, loc, literal)
                expect = at_value(SC, line, col, literal, ".".join(map(str, loc)))
                out.append(Case(f"mut-{stem}-{dotted(loc)}-{name}", {SC: text}, argv, expect))
        for loc in _required(data):
            key = (dotted(loc), "missing")
            if key in seen or key in NOT_MISTAKES:
                continue
            seen.add(key)
            d = copy.deepcopy(data)
            del _get(d, loc[:-1])[loc[-1]]
            text = yaml.safe_dump(d, sort_keys=False, width=1_000_000)
            parent = ".".join(map(str, loc[:-1]))
            expect = rf"^error: {re.escape(SC)}:\d+:\d+: {re.escape(parent)}"
            out.append(Case(f"mut-{stem}-{dotted(loc)}-missing", {SC: text}, argv, expect))
    return out


def sweep_cases() -> list[Case]:
    """Each swept value of each shipped sweep broken each way: the error names the sweep file's line:col."""
    out: list[Case] = []
    argv = ["sweep", SWEEP, "--out", "out", "-q"]
    for f in shipped_sweeps():
        data = _absolute_base(yaml.safe_load(f.read_text(encoding="utf-8")), f)
        for table in ("grid", "zip"):
            for k, values in (data.get(table) or {}).items():
                for loc, value in _walk(values, (table, k)):
                    if len(loc) < 3:
                        continue
                    muts = _mutations(loc, value) if not isinstance(value, dict) else []
                    path = ".".join([k, *(str(x) for x in loc[3:])])
                    for literal, name in muts:
                        if (path, name) in NOT_MISTAKES:
                            continue
                        text, line, col = marked(data, loc, literal)
                        expect = at_value(SWEEP, line, col, literal, path)
                        label = ".".join(map(str, loc))
                        out.append(Case(f"mutsweep-{f.stem}-{label}-{name}", {SWEEP: text}, argv, expect))
    return out


# -- broken traces ----------------------------------------------------------------------------------------
TRACE_ROWS = 6  # header + this many rows of each shipped trace
BAD_CELLS = ["", "nan", "inf", "-3", "1e30", "abc", "2.5"]
BAD_STAMPS = ["", "yesterday", "2999-01-01 00:00:00", "nan", "1e30"]


def _shipped_traces() -> list[tuple[str, Path, str]]:
    from sim.workload.traces import TRACE_FORMATS, trace_names

    return [(name, path, TRACE_FORMATS[name]) for name, path in trace_names().items()]


def _trace_scenario(fmt: str, file: str) -> str:
    sec = {"kind": "trace", "path": file, "format": fmt}
    data: dict[str, Any] = {
        "name": "mut-trace",
        "model": "llama-3.1-8b",
        "hardware": "h100-sxm",
        "workload": {"num_requests": 5},
    }
    if fmt == "vidur":
        data["workload"]["arrival"] = {"kind": "poisson", "rate": 1.0}
        data["workload"]["lengths"] = sec
    else:
        data["workload"]["arrival"] = sec
    return yaml.safe_dump(data, sort_keys=False)


def _csv_cases(name: str, path: Path, fmt: str) -> list[Case]:
    from sim.workload.traces import _AZURE_COLUMNS, _VIDUR_COLUMNS

    columns = _AZURE_COLUMNS if fmt == "azure" else _VIDUR_COLUMNS
    with path.open(encoding="utf-8") as fh:
        lines = [next(fh).rstrip("\n") for _ in range(TRACE_ROWS + 1)]
    header = lines[0].split(",")
    argv = ["run", SC, "--out", "out", "-q"]
    files = {SC: _trace_scenario(fmt, "t.csv")}
    out = []
    row = 3  # the third data row: file line 4
    for c in columns:
        j = header.index(c)
        for bad in BAD_STAMPS if c == "TIMESTAMP" else BAD_CELLS:
            cells = lines[row].split(",")
            cells[j] = bad
            body = "\n".join([*lines[:row], ",".join(cells), *lines[row + 1 :]]) + "\n"
            expect = rf"^error: t\.csv:{row + 1}: {re.escape(c)}"
            out.append(Case(f"muttrace-{name}-{c}-{bad or 'empty'}", {**files, "t.csv": body}, argv, expect))
    short = "\n".join([*lines[:row], lines[row].split(",")[0], *lines[row + 1 :]]) + "\n"
    out.append(Case(f"muttrace-{name}-short-row", {**files, "t.csv": short}, argv, rf"^error: t\.csv:{row + 1}: "))
    if fmt == "azure":  # rows out of order: the first row moved after the fourth
        body = "\n".join([lines[0], *lines[2 : row + 1], lines[1], *lines[row + 1 :]]) + "\n"
        out.append(Case(f"muttrace-{name}-unsorted", {**files, "t.csv": body}, argv, rf"^error: t\.csv:{row + 1}: "))
    return out


def _jsonl_cases(name: str, path: Path) -> list[Case]:
    with path.open(encoding="utf-8") as fh:
        rows = [json.loads(next(fh)) for _ in range(TRACE_ROWS)]
    for i, r in enumerate(rows):  # increasing timestamps, so moving a row breaks the order
        r["timestamp"] = 1000 * i
    argv = ["run", SC, "--out", "out", "-q"]
    files = {SC: _trace_scenario("mooncake", "t.jsonl")}
    out = []
    bad_values: list[Any] = [None, "abc", -3, 1e30, 2.5, [1], {"a": 1}, True]
    for field in ("timestamp", "input_length", "output_length", "hash_ids"):
        # a bad time in the last row, so the error is about that row and not the order of the next one
        row = len(rows) - 1 if field == "timestamp" else 2
        for bad in bad_values if field != "hash_ids" else ["x", [1.5], {"a": 1}, ["a"], [True]]:
            if field == "timestamp" and isinstance(bad, float) and bad == 2.5:
                continue  # a fractional millisecond is a valid time
            rs = copy.deepcopy(rows)
            rs[row][field] = bad
            body = "".join(json.dumps(r) + "\n" for r in rs)
            expect = rf"^error: t\.jsonl:{row + 1}: {field}"
            label = json.dumps(bad).replace(" ", "")
            out.append(Case(f"muttrace-{name}-{field}-{label}", {**files, "t.jsonl": body}, argv, expect))
        rs = copy.deepcopy(rows)
        del rs[row][field]
        if field != "hash_ids":  # hash_ids are optional
            body = "".join(json.dumps(r) + "\n" for r in rs)
            out.append(
                Case(f"muttrace-{name}-{field}-missing", {**files, "t.jsonl": body}, argv, rf"t\.jsonl:{row + 1}: ")
            )
    row = 2
    lines = [json.dumps(r) for r in rows]
    broken = [*lines[:row], lines[row][: len(lines[row]) // 2], *lines[row + 1 :]]
    out.append(
        Case(
            f"muttrace-{name}-cut-line",
            {**files, "t.jsonl": "\n".join(broken) + "\n"},
            argv,
            rf"^error: t\.jsonl:{row + 1}: ",
        )
    )
    return out


def trace_cases() -> list[Case]:
    out: list[Case] = []
    for name, path, fmt in _shipped_traces():
        out += _jsonl_cases(name, path) if fmt == "mooncake" else _csv_cases(name, path, fmt)
    return out


def all_mutations() -> list[Case]:
    return [*scenario_cases(), *sweep_cases(), *trace_cases()]
