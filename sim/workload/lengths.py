"""Length distributions, registered by `kind` in `LENGTHS`: a config class and a factory that draws lengths.

A factory is `f(config, *, n, base_dir, rng) -> (prompt_tokens, output_tokens)`, two int64 arrays of n
lengths >= 1, drawn only from `rng` (the scenario's `lengths` stream).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.config.limits import MAX_TOKENS
from sim.core.registry import LENGTHS
from sim.workload.traces import TraceFormat, read_trace

LengthArrays = tuple[np.ndarray, np.ndarray]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TraceLengths(_Strict):
    """Sample (prompt, output) pairs from a trace or length-only file."""

    kind: Literal["trace"] = "trace"
    path: str
    format: TraceFormat = "vidur"
    sample: Literal["random", "sequential"] = Field(default="random", description="with replacement, or in order")


class FixedLengths(_Strict):
    kind: Literal["fixed"] = "fixed"
    prompt: int = Field(ge=1, le=MAX_TOKENS, strict=True)
    output: int = Field(ge=1, le=MAX_TOKENS, strict=True)


class LognormalLengths(_Strict):
    """Log-normal lengths given by median and log-space sigma, rounded and clipped to [1, max]."""

    kind: Literal["lognormal"] = "lognormal"
    prompt_median: float = Field(gt=0, le=MAX_TOKENS)
    prompt_sigma: float = Field(default=1.0, ge=0, le=10)
    output_median: float = Field(gt=0, le=MAX_TOKENS)
    output_sigma: float = Field(default=1.0, ge=0, le=10)
    max_prompt: int = Field(default=32768, ge=1, le=MAX_TOKENS)
    max_output: int = Field(default=8192, ge=1, le=MAX_TOKENS)


@LENGTHS.register("trace", TraceLengths)
def _trace(cfg: TraceLengths, *, n: int, base_dir: Path, rng: np.random.Generator, **_: object) -> LengthArrays:
    """(prompt, output) pairs sampled from a trace, with replacement or in order"""
    tr = read_trace(cfg.path, cfg.format, base_dir)
    idx = rng.integers(0, len(tr), n) if cfg.sample == "random" else np.arange(n) % len(tr)
    return tr.prompt_tokens[idx], tr.output_tokens[idx]


@LENGTHS.register("fixed", FixedLengths)
def _fixed(cfg: FixedLengths, *, n: int, **_: object) -> LengthArrays:
    """the same prompt and output length for every request"""
    return np.full(n, cfg.prompt, dtype=np.int64), np.full(n, cfg.output, dtype=np.int64)


@LENGTHS.register("lognormal", LognormalLengths)
def _lognormal(cfg: LognormalLengths, *, n: int, rng: np.random.Generator, **_: object) -> LengthArrays:
    """log-normal prompt and output lengths (median, sigma), rounded and clipped to [1, max]"""
    p = rng.lognormal(np.log(cfg.prompt_median), cfg.prompt_sigma, n)
    o = rng.lognormal(np.log(cfg.output_median), cfg.output_sigma, n)
    return (
        np.clip(np.rint(p), 1, cfg.max_prompt).astype(np.int64),
        np.clip(np.rint(o), 1, cfg.max_output).astype(np.int64),
    )
