"""Output-length predictors: what a length-aware scheduler believes a request will generate.

A predictor turns the workload's true output lengths into predicted ones, once, vectorised over all
requests and seeded from the scenario's `predictor` stream; the engine stores the prediction on each
request (`Request.predicted`). Kinds:

- `oracle`: the true length (an upper bound on what any predictor can do);
- `noisy`: true length × exp(N(bias, sigma)) — a regressor with log-normal error;
- `rank`: a score whose Kendall's tau with the true length is `tau` (Learning to Rank, Fu et al. 2024,
  measures predictors by exactly this); lengths are given back on the true lengths' own scale;
- `bucket`: TetriInfer-style classification into length buckets, right with probability `accuracy`,
  else off by one bucket.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.core.registry import PREDICTORS

MAX_LOG_ERROR = 10.0  # bound on a noisy predictor's sigma and |bias| (natural-log units)
_MAX_PREDICTION = 2.0**62  # tokens: a prediction stays an int64 whatever the draw (no valid run comes near)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LengthPredictor(Protocol):
    def predict(self, output: np.ndarray, prompt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Predicted output tokens (int64, ≥ 1) for each request."""
        ...


class OracleConfig(_Strict):
    """The true output length."""

    kind: Literal["oracle"] = "oracle"


class NoisyConfig(_Strict):
    """True length times a log-normal error: exp(N(bias, sigma))."""

    kind: Literal["noisy"] = "noisy"
    # The error is in natural-log units: sigma 10 is already a factor e^10 (about 22,000) per standard deviation,
    # a predictor that knows nothing (use `rank` with tau 0 for that); larger values only overflow `exp`.
    sigma: float = Field(default=0.5, ge=0, le=MAX_LOG_ERROR, description="spread of the log error (at most 10)")
    bias: float = Field(
        default=0.0, ge=-MAX_LOG_ERROR, le=MAX_LOG_ERROR, description="mean of the log error (>0 over-predicts)"
    )


class RankConfig(_Strict):
    """Scores with a given Kendall's tau against the true lengths (Gaussian copula)."""

    kind: Literal["rank"] = "rank"
    tau: float = Field(default=0.6, ge=-1, le=1, description="Kendall's tau between prediction and truth")


class BucketConfig(_Strict):
    """Length buckets `bucket_tokens` wide; the right bucket with probability `accuracy`, else a neighbour."""

    kind: Literal["bucket"] = "bucket"
    bucket_tokens: int = Field(default=100, ge=1)
    accuracy: float = Field(default=1.0, ge=0, le=1)
    report: Literal["mid", "upper"] = Field(default="upper", description="length reported for a bucket")


def _as_tokens(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.maximum(1, np.rint(x)).astype(np.int64)
    return out


class Oracle:
    def predict(self, output: np.ndarray, prompt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(output, dtype=np.int64).copy()


class Noisy:
    def __init__(self, cfg: NoisyConfig) -> None:
        self.sigma, self.bias = cfg.sigma, cfg.bias

    def predict(self, output: np.ndarray, prompt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        err = rng.normal(self.bias, self.sigma, len(output))
        # a 70-standard-deviation draw would still overflow exp: clip it (never reached in a real run)
        pred = np.asarray(output, dtype=np.float64) * np.exp(np.minimum(err, 700.0))
        return _as_tokens(np.minimum(pred, _MAX_PREDICTION))


class Rank:
    """Gaussian copula: for a bivariate normal, Kendall's tau = (2/π)·arcsin(ρ), so ρ = sin(π·tau/2).

    The true lengths' normal scores z (mid-ranks for ties) are mixed with independent noise,
    s = ρ·z + √(1−ρ²)·ε, and the prediction of rank r among the scores is the r-th smallest true
    length: the predictions have the true marginal distribution and rank correlation ≈ tau (a little
    less when many true lengths tie).
    """

    def __init__(self, cfg: RankConfig) -> None:
        self.tau = cfg.tau

    def predict(self, output: np.ndarray, prompt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(output)
        out = np.asarray(output, dtype=np.int64)
        if n < 2:
            return out.copy()
        rho = math.sin(math.pi * self.tau / 2.0)
        from scipy.special import ndtri  # scipy loads on first use: `servesim list` starts fast
        from scipy.stats import rankdata

        z = ndtri((rankdata(out) - 0.5) / n)
        score = rho * z + math.sqrt(max(0.0, 1.0 - rho * rho)) * rng.standard_normal(n)
        order = np.argsort(score, kind="stable")
        pred = np.empty(n, dtype=np.int64)
        pred[order] = np.sort(out)
        return pred


class Bucket:
    def __init__(self, cfg: BucketConfig) -> None:
        self.width, self.accuracy, self.report = cfg.bucket_tokens, cfg.accuracy, cfg.report

    def predict(self, output: np.ndarray, prompt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(output)
        bucket = (np.asarray(output, dtype=np.int64) - 1) // self.width  # lengths 1..w are bucket 0
        wrong = rng.random(n) >= self.accuracy
        step = np.where(rng.random(n) < 0.5, -1, 1)
        bucket = np.maximum(0, bucket + np.where(wrong, step, 0))
        if self.report == "upper":
            return (bucket + 1) * self.width
        return _as_tokens(bucket * self.width + (self.width + 1) / 2.0)


@PREDICTORS.register("oracle", OracleConfig)
def _oracle(cfg: OracleConfig, **_: object) -> LengthPredictor:
    """the true output length"""
    return Oracle()


@PREDICTORS.register("noisy", NoisyConfig)
def _noisy(cfg: NoisyConfig, **_: object) -> LengthPredictor:
    """true length with log-normal error"""
    return Noisy(cfg)


@PREDICTORS.register("rank", RankConfig)
def _rank(cfg: RankConfig, **_: object) -> LengthPredictor:
    """scores with a given Kendall's tau to the true length"""
    return Rank(cfg)


@PREDICTORS.register("bucket", BucketConfig)
def _bucket(cfg: BucketConfig, **_: object) -> LengthPredictor:
    """TetriInfer-style length buckets"""
    return Bucket(cfg)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (for tests and reports)."""
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)
