"""The planner's traffic: a trace replayed (optionally at another mean rate), or a rate with lengths.

Besides the scenario's `workload` section, a `Traffic` carries the statistics the analytic bounds need
(mean rate, inter-arrival variability, the prompt and output lengths), read once here so every
candidate's bounds come from the same numbers the simulations replay.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sim.config.limits import MAX_RATE, MAX_REQUESTS, MAX_TOKENS, file_kind
from sim.core.registry import ARRIVALS
from sim.errors import ServesimError
from sim.workload.traces import TRACE_FORMATS, Trace, load_trace, resolve_trace_path

# `--lengths` accepts the length-only formats the workloads read; "csv" files also carry arrivals
LENGTH_FORMATS = ("vidur", "csv")


@dataclass(frozen=True)
class Traffic:
    """A workload section plus its statistics. `rate` is the mean arrival rate (requests/s)."""

    workload: dict[str, Any]
    rate: float
    ca2: float  # squared coefficient of variation of inter-arrival gaps (1 for Poisson)
    prompt: np.ndarray
    output: np.ndarray
    label: str

    @property
    def tokens_per_request(self) -> float:
        return float(self.prompt.mean() + self.output.mean())

    def at_rate(self, rate: float) -> Traffic:
        """The same traffic at another mean rate: a trace is time-scaled, a synthetic process re-rated."""
        wl = copy.deepcopy(self.workload)
        arr = wl["arrival"]
        if ARRIVALS.caps(arr["kind"]).replays_trace:
            arr["time_scale"] = float(arr.get("time_scale", 1.0)) * self.rate / rate
        else:
            arr["rate"] = rate
        return replace(self, workload=wl, rate=rate)

    def truncated(self, num_requests: int | None) -> Traffic:
        """The first `num_requests` requests only (for quick screening runs)."""
        if num_requests is None:
            return self
        wl = copy.deepcopy(self.workload)
        wl["num_requests"] = min(num_requests, wl.get("num_requests") or num_requests)
        return replace(self, workload=wl)


def _trace_format(path: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    if path in TRACE_FORMATS:
        return TRACE_FORMATS[path]
    if path.endswith(".jsonl"):
        return "mooncake"
    return ""


def _line_reached(err: ServesimError, path: Path) -> int:
    """The line an error names (`path:LINE: ...`), 0 when none: how far that format read."""
    m = re.match(re.escape(str(path)) + r":(\d+)", str(err))
    return int(m.group(1)) if m else 0


def _load_any(path: str, formats: tuple[str, ...], option: str) -> tuple[Trace, str]:
    """Try each format in turn; the first that reads wins. When none does, the error of the format that read
    furthest is reported (a bad cell on line 7 of a Vidur file, not the CSV reader's complaint about its header).
    A device or a pipe (/dev/zero) is refused before any reader could read it forever."""
    resolved = resolve_trace_path(path)
    if not resolved.is_file():
        raise ServesimError(f"{option} {path}: found {file_kind(resolved)}, expected a trace file")
    errors: list[ServesimError] = []
    for f in formats:
        try:
            return load_trace(resolved, f), f
        except ServesimError as e:
            errors.append(e)
    raise max(reversed(errors), key=lambda e: _line_reached(e, resolved))


def trace_traffic(
    trace: str, fmt: str | None = None, rate: float | None = None, num_requests: int | None = None
) -> Traffic:
    """Replay a trace (a shipped name or a path); `rate` rescales its timing to that mean rate."""
    f = _trace_format(trace, fmt)
    tr, f = _load_any(trace, (f,) if f else ("azure", "csv", "mooncake"), "--traffic")
    if tr.arrival_s is None:
        raise ServesimError(
            f"--traffic {trace}: format {f!r} has no timestamps; use --rate R --lengths {trace} instead"
        )
    t, p, o = tr.arrival_s, tr.prompt_tokens, tr.output_tokens
    if num_requests is not None:
        t, p, o = t[:num_requests], p[:num_requests], o[:num_requests]
    if len(t) < 2 or t[-1] <= t[0]:
        raise ServesimError(f"--traffic {trace}: need at least two requests at distinct times")
    gaps = np.diff(t)
    own = (len(t) - 1) / float(t[-1] - t[0])
    path = trace if trace in TRACE_FORMATS else str(Path(resolve_trace_path(trace)).resolve())
    wl: dict[str, Any] = {"arrival": {"kind": "trace", "path": path, "format": f, "time_scale": 1.0}}
    if num_requests is not None:
        wl["num_requests"] = num_requests
    base = Traffic(wl, own, float(gaps.var() / gaps.mean() ** 2), p, o, f"trace {trace}")
    return base.at_rate(rate) if rate is not None else base


def _lengths_section(lengths: str, fmt: str | None) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    if lengths.startswith("fixed:"):
        try:
            prompt, output = (int(x) for x in lengths[6:].split(","))
        except ValueError:
            raise ServesimError(f"--lengths {lengths!r}: expected fixed:PROMPT,OUTPUT, e.g. fixed:1000,200") from None
        if not (1 <= prompt <= MAX_TOKENS and 1 <= output <= MAX_TOKENS):
            raise ServesimError(f"--lengths {lengths!r}: token counts must be 1 to {MAX_TOKENS:,}")
        return {"kind": "fixed", "prompt": prompt, "output": output}, np.array([prompt]), np.array([output])
    formats = (fmt,) if fmt else ((TRACE_FORMATS[lengths],) if lengths in TRACE_FORMATS else LENGTH_FORMATS)
    tr, f = _load_any(lengths, formats, "--lengths")
    path = lengths if lengths in TRACE_FORMATS else str(Path(resolve_trace_path(lengths)).resolve())
    return {"kind": "trace", "path": path, "format": f}, tr.prompt_tokens, tr.output_tokens


def synthetic_traffic(
    rate: float, lengths: str, fmt: str | None = None, num_requests: int = 2000, cv: float | None = None
) -> Traffic:
    """Poisson (or Gamma with `cv`) arrivals at `rate`, lengths sampled from a file, shipped name or fixed:P,O."""
    if not 0 < rate <= MAX_RATE:  # also refuses inf and nan
        raise ServesimError(f"--rate: expected a number of requests/s in (0, {MAX_RATE:g}], found {rate}")
    if num_requests < 1:
        raise ServesimError(f"--requests must be >= 1, got {num_requests}")
    section, p, o = _lengths_section(lengths, fmt)
    arrival: dict[str, Any] = {"kind": "poisson", "rate": rate}
    if cv is not None:
        arrival = {"kind": "gamma", "rate": rate, "cv": cv}
    wl = {"num_requests": num_requests, "arrival": arrival, "lengths": section}
    return Traffic(wl, rate, 1.0 if cv is None else cv**2, p, o, f"{arrival['kind']} {rate:g}/s, lengths {lengths}")


def make_traffic(
    traffic: str | None,
    rate: float | None,
    lengths: str | None,
    fmt: str | None = None,
    num_requests: int | None = None,
    cv: float | None = None,
) -> Traffic:
    """The CLI's `--traffic TRACE [--rate R]` or `--rate R --lengths L` as one `Traffic`."""
    if traffic and lengths:
        raise ServesimError("give --traffic TRACE or --rate R --lengths L, not both")
    if rate is not None and not 0 < rate <= MAX_RATE:  # also refuses inf and nan
        raise ServesimError(f"--rate: expected a number of requests/s in (0, {MAX_RATE:g}], found {rate}")
    if cv is not None and not 0 < cv <= 1000:
        raise ServesimError(f"--cv: expected a coefficient of variation in (0, 1000], found {cv}")
    if num_requests is not None and not 1 <= num_requests <= MAX_REQUESTS:
        raise ServesimError(f"--requests: expected 1 to {MAX_REQUESTS:,}, found {num_requests}")
    if traffic:
        return trace_traffic(traffic, fmt, rate, num_requests)
    if rate is None or not lengths:
        raise ServesimError("give --traffic TRACE, or --rate R with --lengths L (a file, a shipped name, fixed:P,O)")
    return synthetic_traffic(rate, lengths, fmt, num_requests or 2000, cv)
