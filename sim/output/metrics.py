"""Per-request table and summary metrics, with vLLM's names and definitions.

ttft = first token as the client sees it − arrival + `serving_engine.frontend_s` (the front end; the first
token the client sees is the engine's unless the server holds it for a streamed chunk, `client_first_token`); tpot =
(e2el − ttft)/(output − 1) for outputs longer than one token; itl = every gap between consecutive tokens
of a request, pooled (from a streaming histogram); e2el = completion − arrival + frontend_s;
queue_delay = first scheduled − arrival. Goodput counts completed requests meeting every SLO that is set;
SLO attainment is that count over requests that finished, were rejected or were abandoned by their client
(each of those misses its SLO).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.config.scenario import SLO
from sim.core.recorder import ABANDONED, COMPLETED, REJECT_REASONS, REJECTED, LogHistogram, RequestLog

PERCENTILES = (50, 90, 95, 99)
STATUS_NAMES = np.array(["in_flight", "completed", "rejected", "abandoned"])


def client_first_token(
    first: np.ndarray, completion: np.ndarray, output: np.ndarray, stream_interval: int, first_at_once: bool
) -> np.ndarray:
    """When the client receives each request's first token (engine seconds), the server streaming in chunks.

    With the first token sent at once (or `stream_interval` 1) it is the engine's first token. Otherwise the
    first chunk leaves with token m = min(stream_interval, output) (the last token always goes out, at
    completion). The engine keeps each request's first and last token times, not every token's (the pooled
    ITL histogram has the gaps): token m is placed at first + (m − 1)/(output − 1) × (completion − first),
    the request's own mean inter-token gap — exact when its decode steps take equal time (an --ignore-eos
    closed loop at steady batch), and exact at both ends (m = 1, m = output). Requests not completed get NaN:
    the client's first chunk time is not known."""
    if stream_interval <= 1 or first_at_once:
        return first
    m = np.minimum(stream_interval, output).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(output > 1, (m - 1) / (output - 1), 0.0)
    return first + frac * (completion - first)


def decode_first_token(
    first: np.ndarray, ready: np.ndarray, completion: np.ndarray, output: np.ndarray, at_admission: bool = False
) -> np.ndarray:
    """When a handed-off request's first token leaves the decode worker: at the end of its first decode step
    there (`at_admission`: as the decode worker takes it into its batch, `ready`, with no step: SGLang). The
    decode instance takes the request into its batch at `ready` (the start of that step: after the KV copy, the
    step in flight when it landed and any wait for a decode slot, `sim.cluster.disagg` `decode_wait_s`);
    its output − 1 remaining tokens take output − 1 steps, ending at completion, so the first step ends at
    ready + (completion − ready)/(output − 1) — its own mean decode step. Requests not handed off (NaN `ready`)
    keep the prefill's first token; a request handed off but not yet taken into a decode batch when the run
    stopped (`ready` = +inf) has no first token at the client yet (NaN), not the prefill's."""
    with np.errstate(invalid="ignore", divide="ignore"):
        step = 0.0 if at_admission else np.where(output > 1, (completion - ready) / (output - 1), 0.0)
    return np.where(np.isnan(ready), first, np.where(np.isinf(ready), np.nan, ready + step))


def requests_frame(
    arrival: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    log: RequestLog,
    *,
    extra: dict[str, Any] | None = None,
    frontend_s: float = 0.0,
    stream_interval: int = 1,
    stream_first_token: bool = True,
    decode_ready: np.ndarray | None = None,
    first_at_admission: bool = False,
) -> pd.DataFrame:
    """One row per request: raw timestamps (seconds) and derived latencies (+ `extra` columns, e.g. class).

    `frontend_s` (`serving_engine.frontend_s`: HTTP, tokenisation, streaming) is added to TTFT and E2E as a
    client sees them; `stream_interval` / `stream_first_token` (the server's streamed chunks) move the first
    token the client sees (`client_first_token`), and with it TPOT = (E2E − TTFT)/(output − 1), as a benchmark
    client computes them. `first_token_s` / `completion_s` stay engine-side timestamps. `decode_ready` (seconds;
    NaN where a request was not handed off): disaggregated, the first token reaches the client from the decode
    worker (`serving_engine.disagg_first_token: decode`, or `decode_admission`: `first_at_admission`) —
    `decode_first_token`."""
    first = (
        log.first_token
        if decode_ready is None
        else decode_first_token(log.first_token, decode_ready, log.completion, output, first_at_admission)
    )
    seen = client_first_token(first, log.completion, output, stream_interval, stream_first_token)
    ttft = seen - arrival + frontend_s
    e2el = log.completion - arrival + frontend_s
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(output > 1, (e2el - ttft) / (output - 1), np.nan)
    return pd.DataFrame(
        {
            "request_id": np.arange(log.n, dtype=np.int64),
            "arrival_s": arrival,
            "prompt_tokens": prompt,
            "output_tokens": output,
            "instance": log.instance,
            "status": pd.Categorical(STATUS_NAMES[log.status], categories=list(STATUS_NAMES)),
            "reject_reason": pd.Categorical(
                np.array(REJECT_REASONS, dtype=object)[log.reason], categories=list(REJECT_REASONS)
            ),
            "first_scheduled_s": log.first_scheduled,
            "first_token_s": log.first_token,
            "completion_s": log.completion,
            "generated_tokens": log.generated,
            "preemptions": log.preemptions,
            "ttft_s": ttft,
            "tpot_s": tpot,
            "e2el_s": e2el,
            "queue_delay_s": log.first_scheduled - arrival,
            **(extra or {}),
        }
    )


def stats(values: np.ndarray) -> dict[str, float]:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return {"mean": math.nan, **{f"p{p}": math.nan for p in PERCENTILES}, "count": 0}
    q = np.percentile(v, PERCENTILES)
    return {
        "mean": float(v.mean()),
        **{f"p{p}": float(x) for p, x in zip(PERCENTILES, q, strict=True)},
        "count": int(v.size),
    }


def hist_stats(h: LogHistogram) -> dict[str, float]:
    return {"mean": h.mean(), **{f"p{p}": h.quantile(p / 100) for p in PERCENTILES}, "count": h.count}


def slo_met(df: pd.DataFrame, slo: SLO) -> np.ndarray:
    """Completed requests meeting every SLO that is set (a 1-token output has no TPOT to miss)."""
    ok = (df["status"] == "completed").to_numpy().copy()
    if slo.ttft_s is not None:
        ok = ok & (df["ttft_s"].to_numpy() <= slo.ttft_s)
    if slo.tpot_s is not None:
        tpot = df["tpot_s"].to_numpy()
        ok = ok & (np.isnan(tpot) | (tpot <= slo.tpot_s))
    if slo.e2el_s is not None:
        ok = ok & (df["e2el_s"].to_numpy() <= slo.e2el_s)
    return ok


def class_summary(df: pd.DataFrame, slo: SLO, classes: list[Any], span: float) -> dict[str, Any]:
    """Per traffic class: counts, latency stats, and SLO attainment against the class's own SLOs."""
    out: dict[str, Any] = {}
    for c in classes:
        sub = df[df["class"] == c.name]
        merged = slo.model_copy(update={k: v for k, v in (c.slo.model_dump() if c.slo else {}).items() if v})
        done = sub["status"] == "completed"
        met = slo_met(sub, merged)
        finished = int(done.sum()) + int(sub["status"].isin(["rejected", "abandoned"]).sum())
        out[c.name] = {
            "priority": c.priority,
            "slo": merged.model_dump(),
            "counts": {
                "arrived": len(sub),
                "completed": int(done.sum()),
                "rejected": int((sub["status"] == "rejected").sum()),
                "abandoned": int((sub["status"] == "abandoned").sum()),
                "in_flight": int((sub["status"] == "in_flight").sum()),
            },
            "metrics": {k: stats(sub.loc[done, k].to_numpy()) for k in ("ttft_s", "tpot_s", "e2el_s", "queue_delay_s")},
            "goodput_rps": int(met.sum()) / span,
            "slo_attainment": (int(met.sum()) / finished) if finished else math.nan,
        }
    return out


def summarize(
    df: pd.DataFrame, log: RequestLog, slo: SLO, simulated_s: float, classes: list[Any] | None = None
) -> dict[str, Any]:
    status = log.status
    completed = int((status == COMPLETED).sum())
    rejected = int((status == REJECTED).sum())
    abandoned = int((status == ABANDONED).sum())
    unsent = int(np.isnan(df["arrival_s"].to_numpy()).sum())  # closed loop stopped by the horizon
    n = log.n - unsent
    done = df["status"] == "completed"
    first = float(df["arrival_s"].min()) if n else 0.0
    end = float(np.nanmax(df["completion_s"])) if completed else simulated_s
    span = max(end - first, 1e-12)
    met = slo_met(df, slo)
    finished = completed + rejected + abandoned
    reasons = {r: int((log.reason[status == REJECTED] == i).sum()) for i, r in enumerate(REJECT_REASONS) if r}
    out: dict[str, Any] = {
        "counts": {
            "arrived": n,
            "completed": completed,
            "rejected": rejected,
            "abandoned": abandoned,
            "in_flight": n - completed - rejected - abandoned,
            "rejected_by_reason": reasons,
            "preemptions": int(log.preemptions.sum()),
        },
        "metrics": {
            "ttft_s": stats(df.loc[done, "ttft_s"].to_numpy()),
            "tpot_s": stats(df.loc[done, "tpot_s"].to_numpy()),
            "itl_s": hist_stats(log.itl),
            "e2el_s": stats(df.loc[done, "e2el_s"].to_numpy()),
            "queue_delay_s": stats(df["queue_delay_s"].to_numpy()),
        },
        "throughput": {
            "requests_per_s": completed / span,
            "output_tokens_per_s": float(df.loc[done, "output_tokens"].sum()) / span,
            "goodput_rps": int(met.sum()) / span,
            "slo_attainment": (int(met.sum()) / finished) if finished else math.nan,
            "duration_s": span,
        },
    }
    if unsent:
        out["counts"]["not_sent"] = unsent  # closed-loop requests the clients had not sent by the horizon
    if "clipped" in df.columns:
        out["counts"]["clipped"] = int(df["clipped"].sum())  # outputs cut by admission.max_tokens
    if classes and "class" in df.columns:
        out["classes"] = class_summary(df, slo, classes, span)
    return out


def check_conservation(log: RequestLog) -> None:
    """Every request that arrived is completed, rejected, abandoned or still in flight — and tokens add up."""
    status = log.status
    assert ((status == COMPLETED) | (status == REJECTED) | (status == ABANDONED) | (status == 0)).all()
    n_c, n_r = int((status == COMPLETED).sum()), int((status == REJECTED).sum())
    n_a, n_f = int((status == ABANDONED).sum()), int((status == 0).sum())
    if n_c + n_r + n_a + n_f != log.n:
        raise AssertionError(f"conservation: {n_c} + {n_r} + {n_a} + {n_f} != {log.n} arrived")
