"""Readers of per-request benchmark logs of real serving engines, into one `ObservedRun`.

Three formats, chosen by what the file holds (not its name):
- `requests.jsonl` (LLMServingSim's vLLM runs, `../shared/data/ground-truth/llmservingsim/*/`): one JSON object a
  line with `input_toks`, `output_toks` and engine-side timestamps `queued_ts`, `first_token_ts`,
  `last_token_ts` in seconds; a `meta.json` beside it gives the engine arguments. A directory holding
  `requests.jsonl` is read the same way.
- vLLM `bench serve --save-result` JSON: one object with per-request lists `input_lens`, `output_lens`, `ttfts`
  (s), `itls` (a list of inter-token gaps per request, s), `errors`, and run fields `request_rate`, `burstiness`,
  `max_concurrency`, `date`, `model_id`. It records no arrival times: it is replayed closed-loop at
  `max_concurrency`, or open-loop at `request_rate` (all at t=0 when the rate is `inf`).
- a generic CSV with header `arrival_s,prompt_tokens,output_tokens,ttft_s,e2e_s` (extra columns are ignored).

Every malformed input is a `ServesimError` naming file:line and what was expected.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.errors import ServesimError

CSV_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens", "ttft_s", "e2e_s")
JSONL_FIELDS = ("input_toks", "output_toks", "queued_ts", "first_token_ts", "last_token_ts")


@dataclass
class ObservedRun:
    """Per-request measurements of one real run, in the order the requests were issued.

    `arrival_s` is None when the log has no arrival times (then `concurrency` or `request_rate` says how the
    client drove the server). `itl_s` holds every inter-token gap of every request, when the log has them.
    """

    source: str
    fmt: str
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    ttft_s: np.ndarray
    e2e_s: np.ndarray
    arrival_s: np.ndarray | None = None
    itl_s: np.ndarray | None = None
    concurrency: int | None = None
    request_rate: float | None = None
    burstiness: float = 1.0
    failed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    means_only: bool = False  # the log gives only per-run means (every request carries them): compare means
    engine_side: bool = False  # timestamps taken inside the engine: no HTTP/tokeniser front end in TTFT/E2E

    def __len__(self) -> int:
        return len(self.prompt_tokens)

    @property
    def tpot_s(self) -> np.ndarray:
        """Per-request time per output token after the first, NaN for one-token outputs (vLLM's definition)."""
        n = self.output_tokens - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 0, (self.e2e_s - self.ttft_s) / np.maximum(n, 1), np.nan)

    @property
    def closed_loop(self) -> bool:
        return self.arrival_s is None and self.concurrency is not None


def read_observed(path: str | Path) -> ObservedRun:
    """Read a per-request log in any supported format (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        if not (p / "requests.jsonl").is_file():
            raise ServesimError(f"{p}: directory without requests.jsonl")
        p = p / "requests.jsonl"
    if not p.is_file():
        raise ServesimError(f"{p}: observed log not found")
    text = p.read_text(errors="replace")
    head = text.lstrip()[:1]
    if not head:
        raise ServesimError(f"{p}:1: empty file, expected a per-request log")
    if head == "{":
        first = text.lstrip().splitlines()[0].strip()
        if first.endswith("}") and _jsonl_line(first):
            return _read_jsonl(p, text)
        return _read_vllm(p, text)
    return _read_csv(p, text)


def _jsonl_line(line: str) -> bool:
    """The first line is a whole object that is not a vLLM result (which has per-request lists)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and "ttfts" not in obj


def _num(where: str, name: str, v: Any, *, integer: bool = False, lo: float = 0.0) -> float:
    """A finite number >= lo (an integer >= 1 when `integer`), else a user error at `where`."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if ok and integer:
        ok = float(v).is_integer() and v >= 1
    if not ok or v < lo:
        want = "an integer >= 1" if integer else f"a finite number >= {lo:g}"
        raise ServesimError(f"{where}: field {name!r}: expected {want}, found {v!r}")
    return float(v)


def _check_times(where: str, ttft: float, e2e: float) -> None:
    if e2e < ttft:
        raise ServesimError(f"{where}: end-to-end time {e2e:g} s is before the first token ({ttft:g} s)")


# -- requests.jsonl (LLMServingSim) ------------------------------------------------------------------------------
def _read_jsonl(p: Path, text: str) -> ObservedRun:
    rows: list[tuple[float, float, float, float, float]] = []
    for ln, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p}:{ln}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ServesimError(f"{where}: not a JSON object: {e.msg} at column {e.colno}") from None
        if not isinstance(obj, dict):
            raise ServesimError(f"{where}: expected a JSON object per line, found {type(obj).__name__}")
        missing = [k for k in JSONL_FIELDS if k not in obj]
        if missing:
            raise ServesimError(f"{where}: missing field {missing[0]!r} (each line needs {', '.join(JSONL_FIELDS)})")
        q = _num(where, "queued_ts", obj["queued_ts"], lo=-math.inf)
        f = _num(where, "first_token_ts", obj["first_token_ts"], lo=q)
        last = _num(where, "last_token_ts", obj["last_token_ts"], lo=f)
        rows.append(
            (
                q,
                _num(where, "input_toks", obj["input_toks"], integer=True),
                _num(where, "output_toks", obj["output_toks"], integer=True),
                f - q,
                last - q,
            )
        )
    a = np.array(rows, dtype=np.float64)
    order = np.argsort(a[:, 0], kind="stable")
    a = a[order]
    meta = _jsonl_meta(p)
    return ObservedRun(
        str(p),
        "requests.jsonl",
        a[:, 1].astype(np.int64),
        a[:, 2].astype(np.int64),
        a[:, 3],
        a[:, 4],
        arrival_s=a[:, 0] - a[0, 0],
        meta=meta,
        engine_side=True,
    )


def _jsonl_meta(p: Path) -> dict[str, Any]:
    """Engine arguments from the `meta.json` beside a requests.jsonl (LLMServingSim), if there is one."""
    m = p.parent / "meta.json"
    if not m.is_file():
        return {}
    try:
        raw = json.loads(m.read_text())
    except json.JSONDecodeError as e:
        raise ServesimError(f"{m}:{e.lineno}: not JSON: {e.msg}") from None
    kw = raw.get("engine_kwargs", {}) if isinstance(raw, dict) else {}
    out = {
        "model": raw.get("model"),
        "engine": "vllm",
        "engine_version": raw.get("vllm_version"),
        "date": raw.get("started_at"),
    }
    for k in ("tensor_parallel_size", "max_num_seqs", "max_num_batched_tokens", "max_model_len", "dtype"):
        if kw.get(k) is not None:
            out[k] = kw[k]
    return {k: v for k, v in out.items() if v is not None}


# -- vLLM bench serve --save-result JSON ----------------------------------------------------------------------
def _key_line(text: str, key: str) -> int:
    i = text.find(f'"{key}"')
    return text.count("\n", 0, i) + 1 if i >= 0 else 1


def _read_vllm(p: Path, text: str) -> ObservedRun:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ServesimError(f"{p}:{e.lineno}: not JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(obj, dict):
        raise ServesimError(f"{p}:1: expected a vLLM bench result object, found {type(obj).__name__}")
    need = ("input_lens", "output_lens", "ttfts", "itls")
    for k in need:
        if k not in obj:
            raise ServesimError(f"{p}:1: missing {k!r}: a vLLM `bench serve --save-result` file has {', '.join(need)}")
        if not isinstance(obj[k], list):
            raise ServesimError(f"{p}:{_key_line(text, k)}: {k!r}: expected a list, found {type(obj[k]).__name__}")
    n = len(obj["ttfts"])
    errors = obj.get("errors")
    if not isinstance(errors, list):
        errors = [""] * n
    for k in (*need, "errors"):
        v = errors if k == "errors" else obj[k]
        if len(v) != n:
            raise ServesimError(f"{p}:{_key_line(text, k)}: {k!r} has {len(v)} entries, 'ttfts' has {n}")
    prompt, output, ttft, e2e, itls = [], [], [], [], []
    failed = 0
    for i in range(n):
        if errors[i] or not obj["output_lens"][i]:  # a failed request: vLLM records ttft 0 and an error string
            failed += 1
            continue
        where = f"{p}:{_key_line(text, 'ttfts')}: request {i}"
        t = _num(where, "ttfts", obj["ttfts"][i])
        gaps = obj["itls"][i]
        if not isinstance(gaps, list):
            raise ServesimError(f"{p}:{_key_line(text, 'itls')}: request {i}: 'itls': expected a list of gaps")
        g = [_num(f"{p}:{_key_line(text, 'itls')}: request {i}", "itls", x) for x in gaps]
        prompt.append(_num(where, "input_lens", obj["input_lens"][i], integer=True))
        output.append(_num(where, "output_lens", obj["output_lens"][i], integer=True))
        ttft.append(t)
        e2e.append(t + math.fsum(g))
        itls.extend(g)
    if not ttft:
        raise ServesimError(f"{p}:1: no successful requests in the log")
    rate = obj.get("request_rate")
    rate_f = None if rate in (None, "inf", "Infinity") or (isinstance(rate, float) and math.isinf(rate)) else rate
    if rate_f is not None:
        rate_f = _num(f"{p}:{_key_line(text, 'request_rate')}", "request_rate", rate_f)
    conc = obj.get("max_concurrency")
    if conc is not None:
        conc = int(_num(f"{p}:{_key_line(text, 'max_concurrency')}", "max_concurrency", conc, integer=True))
    meta = {k: obj[k] for k in ("date", "model_id", "backend", "tokenizer_id") if obj.get(k) is not None}
    if "model_id" in meta:
        meta["model"] = meta["model_id"]
    return ObservedRun(
        str(p),
        "vllm-bench",
        np.array(prompt, dtype=np.int64),
        np.array(output, dtype=np.int64),
        np.array(ttft),
        np.array(e2e),
        itl_s=np.array(itls),
        concurrency=conc,
        request_rate=rate_f,
        burstiness=float(obj.get("burstiness") or 1.0),
        failed=failed,
        meta=meta,
    )


# -- generic CSV ------------------------------------------------------------------------------------------
def _read_csv(p: Path, text: str) -> ObservedRun:
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader)]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise ServesimError(f"{p}:1: missing column {missing[0]!r}: expected a header {','.join(CSV_COLUMNS)}")
    col = [header.index(c) for c in CSV_COLUMNS]
    rows = []
    for ln, rec in enumerate(reader, 2):
        if not rec or not "".join(rec).strip():
            continue
        where = f"{p}:{ln}"
        if len(rec) < len(header):
            raise ServesimError(f"{where}: expected {len(header)} fields, found {len(rec)}")
        vals = []
        for name, j in zip(CSV_COLUMNS, col, strict=True):
            try:
                v = float(rec[j])
            except ValueError:
                raise ServesimError(f"{where}: column {name!r}: expected a number, found {rec[j]!r}") from None
            vals.append(_num(where, name, v, integer=name.endswith("tokens")))
        _check_times(where, vals[3], vals[4])
        rows.append(vals)
    if not rows:
        raise ServesimError(f"{p}:2: no requests after the header")
    a = np.array(rows)
    a = a[np.argsort(a[:, 0], kind="stable")]
    return ObservedRun(
        str(p),
        "csv",
        a[:, 1].astype(np.int64),
        a[:, 2].astype(np.int64),
        a[:, 3],
        a[:, 4],
        arrival_s=a[:, 0] - a[0, 0],
    )
