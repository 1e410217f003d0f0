"""Read request traces (Azure, Mooncake, Vidur/etalon lengths, generic CSV) into numpy arrays.

The happy path is vectorised (one ``pandas.read_csv`` or one ``json.loads`` per line); only when a
value is wrong do we re-scan the file to name the physical line, so user mistakes come back as
``ServesimError("{file}:{line}: {field}: expected {what}, found {value!r}")`` and never as a traceback.

Token counts must be positive integers: a request always has at least one prompt token and produces at
least one output token. The shipped public traces contain no zeros (checked), so a zero, negative or
non-integer count is reported as an error rather than silently changed.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np

from sim.errors import ServesimError
from sim.workload.trace_rows import MAX_FIELDS, wide_row

if TYPE_CHECKING:  # pandas loads on first trace read, so `servesim list` starts fast
    import pandas as pd

__all__ = [
    "FORMATS",
    "TRACE_FORMATS",
    "Trace",
    "load_trace",
    "read_trace",
    "resolve_trace_path",
    "spread_buckets",
    "trace_names",
]

FORMATS = ("azure", "mooncake", "vidur", "csv")
TraceFormat = Literal["azure", "mooncake", "vidur", "lengths", "csv"]
"""The `format` a scenario may give a trace (`lengths` is `vidur`)."""
_ALIASES = {"lengths": "vidur"}

TRACES_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "traces"

# short name -> (file under scenarios/traces, format); the order is the order `servesim list traces` shows.
_SHIPPED: dict[str, tuple[str, str]] = {
    "azure-conv": ("azure_llm_2023/AzureLLMInferenceTrace_conv.csv", "azure"),
    "azure-code": ("azure_llm_2023/AzureLLMInferenceTrace_code.csv", "azure"),
    "mooncake-conv": ("mooncake_fast25/conversation_trace.jsonl", "mooncake"),
    "sharegpt": ("lengths/sharegpt_8k_llama2_tokenizer.csv", "vidur"),
    "arxiv": ("lengths/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", "vidur"),
}
TRACE_FORMATS: dict[str, str] = {name: fmt for name, (_, fmt) in _SHIPPED.items()}
"""Format of each shipped trace, so a scenario can name a trace without also naming its format."""

_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_VIDUR_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
_CSV_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
_POSITIVE_INT = "a positive integer"
MAX_TOKENS = 10_000_000  # one prompt or output (as sim.config.limits); larger is a corrupt cell
MAX_SPAN_S = 1e7  # seconds from the first arrival to the last (about 116 days)
_MISSING = object()


def _exact_floats(pd: Any) -> dict[str, str]:
    """pandas 3 parses floats exactly by default (and deprecates the option); pandas 2 needs asking."""
    return {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


@dataclass(frozen=True, eq=False)
class Trace:
    """Requests read from one file: lengths always, arrivals and prompt block ids when the file has them."""

    prompt_tokens: np.ndarray  # int64, >= 1
    output_tokens: np.ndarray  # int64, >= 1
    arrival_s: np.ndarray | None  # float64 seconds after the first request (first = 0.0), non-decreasing
    hash_ids: list[np.ndarray] | None  # Mooncake 512-token prompt block ids, one int64 array per request
    source: str  # the path it came from
    classes: np.ndarray | None = None  # traffic-class name per request (a csv trace's optional `class` column)

    def __post_init__(self) -> None:
        n = len(self.prompt_tokens)
        sizes = [len(self.output_tokens)]
        sizes += [len(x) for x in (self.arrival_s, self.hash_ids) if x is not None]
        if any(s != n for s in sizes):  # a programming error, not a user one
            raise ValueError(f"Trace columns differ in length: {[n, *sizes]}")

    def __len__(self) -> int:
        return len(self.prompt_tokens)


# --------------------------------------------------------------------------------------------- errors


def _error(file: str | Path, line: int, field: str, what: str, found: str) -> ServesimError:
    """``found`` is already formatted (usually ``repr(value)``) so 'an empty file' can read as prose."""
    return ServesimError(f"{file}:{line}: {field}: expected {what}, found {found}")


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# ------------------------------------------------------------------------------------------- CSV files


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open_text(path: Path, newline: str | None = None) -> IO[str]:
    """The file as text, gunzipped when it is gzip (as pandas reads it), so error lines match what pandas saw."""
    if _is_gzip(path):
        return gzip.open(path, "rt", newline=newline, encoding="utf-8-sig", errors="replace")
    return path.open(newline=newline, encoding="utf-8-sig", errors="replace")


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(physical line, fields) for each non-blank CSV record: the slow path that names lines for errors."""
    with _open_text(path, newline="") as f:
        reader = csv.reader(f)
        start = 1
        for rec in reader:
            if rec and not (len(rec) == 1 and not rec[0].strip()):  # pandas skips blank lines too
                yield start, rec
            start = reader.line_num + 1


def _cell(path: Path, row: int, column: str) -> tuple[int, str]:
    """Physical line and raw text of data row ``row`` (0-based, as pandas numbers them) in ``column``."""
    records = _records(path)
    _, header = next(records)
    col = [h.strip() for h in header].index(column)
    for i, (line, rec) in enumerate(records):
        if i == row:
            return line, rec[col] if col < len(rec) else ""
    raise AssertionError(f"row {row} not found in {path}")  # pandas and csv disagree: should not happen


def _shape_error(path: Path, detail: str) -> ServesimError:
    """A row with more fields than the header: pandas raises (or silently makes an index); name the line."""
    records = _records(path)
    _, header = next(records)
    for line, rec in records:
        if len(rec) > len(header):
            return _error(path, line, "row", f"{len(header)} fields like the header", f"{len(rec)} fields")
    return ServesimError(f"{path}: not a readable CSV file: {detail}")


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV with a header that must contain ``columns`` (others are ignored) and at least one row."""
    import pandas as pd

    header = f"a header with columns {','.join(columns)}"
    wide = wide_row(path)
    if wide is not None:
        raise _error(path, wide[0], "row", f"at most {MAX_FIELDS:,} fields", f"{wide[1]:,} fields")
    try:
        df = pd.read_csv(
            path, skipinitialspace=True, compression="gzip" if _is_gzip(path) else None, **_exact_floats(pd)
        )
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ServesimError(f"{path}: a damaged gzip file ({exc})") from None
    except pd.errors.EmptyDataError:
        raise _error(path, 1, "header", header, "an empty file") from None
    except pd.errors.ParserError as exc:
        raise _shape_error(path, str(exc).strip()) from None
    except UnicodeDecodeError as exc:
        raise ServesimError(f"{path}: expected UTF-8 text, found byte {exc.object[exc.start]:#x}") from None
    except (ValueError, OverflowError, MemoryError) as exc:  # e.g. a binary file pandas cannot tokenise
        raise ServesimError(f"{path}: not a readable CSV file: {' '.join(str(exc).split())[:120]}") from None
    if not isinstance(df.index, pd.RangeIndex):  # the first row had one field too many
        raise _shape_error(path, "rows are longer than the header")
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        line, found = next(_records(path))
        raise _error(path, line, missing[0], header, repr(",".join(found)))
    if df.empty:
        raise _error(path, 2, "file", "at least one request after the header", "end of file")
    return df


def _positive_ints(path: Path, df: pd.DataFrame, column: str) -> np.ndarray:
    """Token counts as int64; integral floats ('12.0') are accepted, anything below 1 is not."""
    import pandas as pd

    s = df[column]
    if s.dtype.kind in "iu":
        values = s.to_numpy(np.int64)
        bad = (values < 1) | (values > MAX_TOKENS)
    else:
        x = pd.to_numeric(s, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(x) | (x < 1) | (x != np.floor(x)) | (x > MAX_TOKENS)
        values = np.where(bad, 1, x).astype(np.int64)
    if bad.any():
        line, raw = _cell(path, int(np.argmax(bad)), column)
        raise _error(path, line, column, _POSITIVE_INT, repr(raw))
    return values


def _check_sorted(path: Path, ticks: np.ndarray, column: str) -> None:
    """Arrivals must not go backwards: a shuffled trace is more likely a mistake than something to fix."""
    back = np.diff(ticks) < 0
    if back.any():
        row = int(np.argmax(back)) + 1
        prev_line, prev = _cell(path, row - 1, column)
        line, raw = _cell(path, row, column)
        raise _error(path, line, column, f"a time not before {prev!r} on line {prev_line}", repr(raw))


def _check_span(path: Path, seconds: np.ndarray, column: str, what: str) -> None:
    """A trace spanning more than MAX_SPAN_S (a value like 1e30) would make a run that never ends."""
    bad = seconds > MAX_SPAN_S
    if bad.any():
        line, raw = _cell(path, int(np.argmax(bad)), column)
        raise _error(path, line, column, what, repr(raw))


def _load_azure(path: Path) -> Trace:
    """Azure LLM inference trace: wall-clock TIMESTAMP (7 fractional digits), context and generated tokens."""
    import pandas as pd

    df = _read_csv(path, _AZURE_COLUMNS)
    stamps = pd.to_datetime(df["TIMESTAMP"].astype(str), format="ISO8601", errors="coerce", utc=True)
    bad = stamps.isna().to_numpy()
    if bad.any():
        line, raw = _cell(path, int(np.argmax(bad)), "TIMESTAMP")
        raise _error(path, line, "TIMESTAMP", "a time like '2023-11-16 18:15:46.6805900'", repr(raw))
    seconds = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy(np.float64)  # any resolution pandas picks
    _check_sorted(path, seconds, "TIMESTAMP")
    _check_span(path, seconds, "TIMESTAMP", "a time within 1e7 s of the first")
    return Trace(
        prompt_tokens=_positive_ints(path, df, "ContextTokens"),
        output_tokens=_positive_ints(path, df, "GeneratedTokens"),
        arrival_s=seconds,
        hash_ids=None,
        source=str(path),
    )


def _load_vidur(path: Path) -> Trace:
    """Length-only CSV (Vidur / etalon processed traces): no arrivals, pair it with an arrival process."""
    df = _read_csv(path, _VIDUR_COLUMNS)
    return Trace(
        prompt_tokens=_positive_ints(path, df, "num_prefill_tokens"),
        output_tokens=_positive_ints(path, df, "num_decode_tokens"),
        arrival_s=None,
        hash_ids=None,
        source=str(path),
    )


def _load_csv(path: Path) -> Trace:
    """Generic ``arrival_s,prompt_tokens,output_tokens[,class]`` CSV; arrivals are shifted so the first is 0."""
    import pandas as pd

    df = _read_csv(path, _CSV_COLUMNS)
    arrival = pd.to_numeric(df["arrival_s"], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    bad = ~np.isfinite(arrival)
    if bad.any():
        line, raw = _cell(path, int(np.argmax(bad)), "arrival_s")
        raise _error(path, line, "arrival_s", "a number of seconds", repr(raw))
    _check_sorted(path, arrival, "arrival_s")
    _check_span(path, arrival - arrival[0], "arrival_s", "a time within 1e7 s of the first")
    return Trace(
        prompt_tokens=_positive_ints(path, df, "prompt_tokens"),
        output_tokens=_positive_ints(path, df, "output_tokens"),
        arrival_s=arrival - arrival[0],
        hash_ids=None,
        source=str(path),
        classes=df["class"].astype(str).str.strip().to_numpy() if "class" in df.columns else None,
    )


# -------------------------------------------------------------------------------------- Mooncake JSONL


def _json_column(path: Path, rows: list[dict], lines: list[int], key: str, what: str) -> np.ndarray:
    """One numeric key of every row as float64; type checks run over the whole column at C speed."""
    values = [row.get(key, _MISSING) for row in rows]
    if set(map(type, values)) <= {int, float}:
        x = np.array(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(x)
            if what == _POSITIVE_INT:
                bad |= (x < 1) | (x != np.floor(x)) | (x > MAX_TOKENS)
        if not bad.any():
            return x
        i = int(np.argmax(bad))
    else:
        i = next(i for i, v in enumerate(values) if type(v) not in (int, float))
    found = "no such key" if values[i] is _MISSING else repr(values[i])
    raise _error(path, lines[i], key, what, found)


def _load_mooncake(path: Path) -> Trace:
    """Mooncake JSON lines: ``timestamp`` in ms, ``input_length``, ``output_length``, ``hash_ids``."""
    try:
        with _open_text(path) as f:
            text = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ServesimError(f"{path}: a damaged gzip file ({exc})") from None
    rows: list[Any] = []
    lines: list[int] = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            found = f"{_clip(line.strip())!r} ({exc.msg} at column {exc.colno})"
            raise _error(path, n, "line", "a JSON object", found) from None
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, brackets nested 100,000 deep
            why = "nested too deeply" if isinstance(exc, RecursionError) else " ".join(str(exc).split())[:80]
            raise _error(path, n, "line", "a JSON object", f"{_clip(line.strip())!r} ({why})") from None
        lines.append(n)
    if not rows:
        raise _error(path, 1, "file", "one JSON object per line", "an empty file")
    if set(map(type, rows)) != {dict}:
        i = next(i for i, r in enumerate(rows) if not isinstance(r, dict))
        raise _error(path, lines[i], "line", "a JSON object", repr(_clip(json.dumps(rows[i]))))

    ts = _json_column(path, rows, lines, "timestamp", "a number of milliseconds")
    back = np.diff(ts) < 0
    if back.any():
        i = int(np.argmax(back)) + 1
        what = f"a time not before {rows[i - 1]['timestamp']!r} on line {lines[i - 1]}"
        raise _error(path, lines[i], "timestamp", what, repr(rows[i]["timestamp"]))
    far = (ts - ts[0]) / 1000.0 > MAX_SPAN_S
    if far.any():
        i = int(np.argmax(far))
        raise _error(path, lines[i], "timestamp", "a time within 1e7 s of the first", repr(rows[i]["timestamp"]))
    prompt = _json_column(path, rows, lines, "input_length", _POSITIVE_INT).astype(np.int64)
    output = _json_column(path, rows, lines, "output_length", _POSITIVE_INT).astype(np.int64)
    return Trace(
        prompt_tokens=prompt,
        output_tokens=output,
        arrival_s=(ts - ts[0]) / 1000.0,
        hash_ids=_hash_ids(path, rows, lines),
        source=str(path),
    )


def _hash_ids(path: Path, rows: list[dict], lines: list[int]) -> list[np.ndarray] | None:
    """Prompt block ids, or None when no row has them (a Mooncake-style file without prefix information)."""
    raw = [row.get("hash_ids", _MISSING) for row in rows]
    if all(r is _MISSING for r in raw):
        return None
    out: list[np.ndarray] = []
    for i, ids in enumerate(raw):
        arr = np.asarray(ids) if isinstance(ids, list) else None
        if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            found = "no such key" if ids is _MISSING else repr(_clip(json.dumps(ids)))
            raise _error(path, lines[i], "hash_ids", "a list of integer block ids", found)
        out.append(arr.astype(np.int64))
    return out


# ----------------------------------------------------------------------------------------- public API

_LOADERS = {"azure": _load_azure, "mooncake": _load_mooncake, "vidur": _load_vidur, "csv": _load_csv}


def load_trace(path: str | Path, format: str) -> Trace:
    """Read ``path`` in ``format`` (one of FORMATS, or "lengths" for "vidur"); bad input -> ServesimError."""
    fmt = _ALIASES.get(format.lower(), format.lower()) if isinstance(format, str) else format
    if fmt not in _LOADERS:
        known = ", ".join([*FORMATS, *_ALIASES])
        raise ServesimError(f"{path}: format: expected one of {known}, found {format!r}")
    path = Path(path)
    if not path.exists():
        raise ServesimError(f"{path}: file not found")
    if not path.is_file():
        raise ServesimError(f"{path}: expected a trace file, found a directory")
    return _LOADERS[fmt](path)


def spread_buckets(arrival_s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Spread requests that share a timestamp uniformly over [t, next distinct timestamp).

    Mooncake logs arrivals in ~3 s buckets, so replaying them as-is fires bursts of simultaneous
    requests that never happened. Offsets are sorted within each bucket so the result stays sorted and
    every request stays in its bucket; the last bucket uses the median bucket width. A request alone at
    its timestamp is left where it is (so traces without ties, like Azure's, come back unchanged), and
    the first request may move off 0. Deterministic for a given ``rng`` state.
    """
    t = np.asarray(arrival_s, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError("arrival_s must be one-dimensional")
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("arrival_s must be non-decreasing")
    if t.size < 2:
        return t.copy()
    starts, bucket, counts = np.unique(t, return_inverse=True, return_counts=True)
    gaps = np.diff(starts)
    last = float(np.median(gaps)) if gaps.size else 0.0
    width = np.append(gaps, last)[bucket]
    width[counts[bucket] == 1] = 0.0
    u = rng.random(t.size)
    u = u[np.lexsort((u, bucket))]  # bucket is non-decreasing, so this sorts offsets inside each bucket
    out = t + u * width
    # t + u*w can round up to the next bucket's start; keep every request strictly inside its bucket
    spread = width > 0
    out[spread] = np.minimum(out[spread], np.nextafter(t[spread] + width[spread], -np.inf))
    return out


def trace_names() -> dict[str, Path]:
    """Short names of the traces shipped under scenarios/traces (``servesim list traces``)."""
    return {name: TRACES_DIR / rel for name, (rel, _) in _SHIPPED.items()}


def resolve_trace_path(path: str) -> Path:
    """A short name from trace_names(), an existing path, or a path relative to the repository root."""
    names = trace_names()
    if path in names:
        return names[path]
    candidate = Path(path).expanduser()
    if candidate.exists():
        return candidate
    from_root = TRACES_DIR.parent.parent / candidate
    if not candidate.is_absolute() and from_root.exists():
        return from_root
    raise ServesimError(f"{path}: file not found, and not a shipped trace name ({', '.join(names)})")


def scenario_trace_path(path: str, base: Path) -> Path:
    """Where a scenario's trace `path` is: relative to the scenario's directory `base` when it exists there,
    else as resolve_trace_path finds it (ServesimError when nowhere)."""
    p = Path(path)
    if not p.is_absolute() and not p.exists() and (base / p).exists():
        return base / p
    return resolve_trace_path(path)


def read_trace(path: str, format: str, base: Path) -> Trace:
    """A scenario's trace (see scenario_trace_path)."""
    return load_trace(scenario_trace_path(path, base), "vidur" if format == "lengths" else format)
