"""`servesim report RUN_DIR`: one self-contained HTML page of a run, for sharing a result.

Everything is inline (CSS, plots as base64 PNG, the scenario as YAML), so the file can be mailed or
attached to a ticket and opens anywhere without the run directory or network access.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sim.errors import ServesimError

LATENCY_ROWS = (
    ("ttft_s", "TTFT"),
    ("tpot_s", "TPOT"),
    ("itl_s", "ITL"),
    ("e2el_s", "E2E latency"),
    ("queue_delay_s", "queue delay"),
)
STATS = ("mean", "p50", "p90", "p95", "p99")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0} table{border-collapse:collapse;margin:.5rem 0}
th,td{padding:.25rem .7rem;border-bottom:1px solid #eee;text-align:right} th:first-child,td:first-child{text-align:left}
th{background:#f6f6f6} .kpi{display:flex;flex-wrap:wrap;gap:1rem} .kpi div{background:#f6f8fa;padding:.6rem 1rem;
border-radius:6px} .kpi b{display:block;font-size:1.3rem} img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
pre{background:#f6f8fa;padding:1rem;overflow:auto;font-size:.85rem}
"""


def ms(x: Any) -> str:
    """Seconds as milliseconds with one decimal ('-' when undefined)."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{float(x) * 1000:.1f}"


def _num(x: Any, fmt: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _figures(run_dir: Path, requests: pd.DataFrame | None, timeline: pd.DataFrame | None) -> list[tuple[str, bytes]]:
    """The run's plots/*.png; when there are none (a `--no-plots` run), drawn now from the parquet tables."""
    found = sorted((run_dir / "plots").glob("*.png")) if (run_dir / "plots").is_dir() else []
    if found:
        return [(p.stem.replace("_", " "), p.read_bytes()) for p in found]
    import matplotlib.pyplot as plt

    from sim.output import plots

    figs = []
    if requests is not None:
        figs.append(("latency cdfs", plots.latency_cdfs(requests)))
    if timeline is not None and not timeline.empty:
        figs.append(("timeline", plots.timeline(timeline)))
    out = []
    for name, fig in figs:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        out.append((name, buf.getvalue()))
    return out


def _per_instance(df: pd.DataFrame) -> dict[str, Any]:
    done = df[df["status"] == "completed"]
    rows = []
    for inst, g in df[df["instance"] >= 0].groupby("instance"):
        d = done[done["instance"] == inst]
        rows.append(
            [
                str(inst),
                str(len(g)),
                str(len(d)),
                str(int(d["output_tokens"].sum())),
                ms(d["ttft_s"].mean() if len(d) else None),
                ms(d["ttft_s"].quantile(0.99) if len(d) else None),
                ms(d["tpot_s"].mean() if len(d) else None),
            ]
        )
    header = ["instance", "routed", "completed", "output tokens", "TTFT mean (ms)", "TTFT p99 (ms)", "TPOT mean (ms)"]
    return {"header": header, "rows": rows}


def render(run_dir: str | Path) -> str:
    """The HTML page of a run directory (needs summary.json; parquet tables and plots are used when present)."""
    d = Path(run_dir)
    if not d.is_dir():
        raise ServesimError(f"{d}: not a run directory")
    try:
        summary = json.loads((d / "summary.json").read_text())
    except FileNotFoundError:
        raise ServesimError(f"{d}: no summary.json (write one with `servesim run SCENARIO --out {d}`)") from None
    except ValueError as e:
        raise ServesimError(f"{d / 'summary.json'}: not JSON ({e})") from None
    need = ("counts", "metrics", "throughput")
    if not isinstance(summary, dict) or any(not isinstance(summary.get(k), dict) for k in need):
        raise ServesimError(f"{d / 'summary.json'}: not a servesim run summary (needs {', '.join(need)})")
    requests = pd.read_parquet(d / "requests.parquet") if (d / "requests.parquet").exists() else None
    timeline = pd.read_parquet(d / "timeline.parquet") if (d / "timeline.parquet").exists() else None
    return _page(d, summary, requests, timeline)


def cluster_label(summary: dict[str, Any]) -> str:
    """`2 × tp1 × h100-sxm (prefill) + 2 × tp1 × a100-80g (decode)`: every pool as the run built it."""
    pools = (summary.get("cluster") or {}).get("pools") or (summary.get("cost") or {}).get("pools")
    if isinstance(pools, dict) and pools:
        parts = [
            f"{p.get('instances', '?')} × tp{p.get('tp', '?')} × {p.get('hardware', '?')}"
            + ("" if role == "colocated" else f" ({role})")
            for role, p in pools.items()
            if isinstance(p, dict)
        ]
        return " + ".join(parts)
    sc = summary.get("scenario") or {}
    cl = sc.get("cluster") or {}
    hw = sc.get("hardware")
    gpu = hw if isinstance(hw, str) else (hw or {}).get("name", "?")
    return f"{cl.get('instances', '?')} × tp{cl.get('tp', '?')} × {gpu}"


def _cost_rows(summary: dict[str, Any]) -> list[list[str]]:
    c = summary.get("cost") or {}
    if not c:
        return []
    rows = [
        ["GPUs", str(c.get("gpus", "-"))],
        ["$ per hour", _num(c.get("dollars_per_hour"))],
        ["$ per million output tokens", _num(c.get("dollars_per_million_output_tokens"), ".3f")],
        ["average power (kW)", _num((c.get("avg_power_w") or math.nan) / 1000)],
    ]
    for role, p in (c.get("pools") or {}).items():
        rows.append(
            [
                f"  {role}: {p.get('gpus')} × {p.get('hardware')}",
                f"${_num(p.get('dollars_per_hour'))}/h, busy {_num(100 * (p.get('busy_fraction') or 0), '.0f')} %",
            ]
        )
    return rows


def _transfer_rows(summary: dict[str, Any]) -> list[list[str]]:
    t = summary.get("disaggregation") or {}
    if not t:
        return []
    x, w = t.get("kv_transfer_s") or {}, t.get("kv_transfer_wait_s") or {}
    return [
        ["mode", str(t.get("mode", "-"))],
        ["transfers", str(t.get("transfers", "-"))],
        ["KV transfer mean / p50 / p99 (ms)", f"{ms(x.get('mean'))} / {ms(x.get('p50'))} / {ms(x.get('p99'))}"],
        ["wait for decode memory mean / p99 (ms)", f"{ms(w.get('mean'))} / {ms(w.get('p99'))}"],
        ["link busy (s)", _num(t.get("link_busy_s"))],
        ["blocks moved", str(t.get("blocks_moved", "-"))],
    ]


def _page(d: Path, summary: dict[str, Any], requests: pd.DataFrame | None, timeline: pd.DataFrame | None) -> str:
    sc = summary.get("scenario") or {}
    c, tp, simd = summary["counts"], summary["throughput"], summary.get("sim") or {}
    m = sc.get("model")
    model = m if isinstance(m, str) else (m or {}).get("name", "?")
    cl = sc.get("cluster") or {}
    slo = sc.get("slo") or {}
    has_slo = any(v is not None for v in slo.values())
    kpis = [
        ("completed", f"{c['completed']} / {c['arrived']}"),
        ("requests/s", _num(tp.get("requests_per_s"))),
        ("output tokens/s", _num(tp.get("output_tokens_per_s"), ".0f")),
        ("goodput (req/s)", _num(tp.get("goodput_rps")) if has_slo else "no SLO"),
        ("SLO attainment", f"{tp['slo_attainment']:.1%}" if has_slo and tp.get("slo_attainment") is not None else "-"),
        ("TTFT p99 (ms)", ms(summary["metrics"]["ttft_s"].get("p99"))),
        ("TPOT p99 (ms)", ms(summary["metrics"]["tpot_s"].get("p99"))),
    ]
    cost = summary.get("cost") or {}
    if cost:
        kpis.append(("$ per hour", _num(cost.get("dollars_per_hour"))))
    counts = [
        ["arrived", str(c["arrived"])],
        ["completed", str(c["completed"])],
        ["rejected", str(c["rejected"])],
        *([[f"  rejected: {r}", str(n)] for r, n in (c.get("rejected_by_reason") or {}).items() if n]),
        ["in flight at the end", str(c["in_flight"])],
        ["preemptions", str(c["preemptions"])],
        *([["outputs clipped", str(c["clipped"])]] if "clipped" in c else []),
        ["duration (s)", _num(tp.get("duration_s"), ".1f")],
        ["simulated (s)", _num(simd.get("simulated_s"), ".1f")],
        ["wall (s)", _num(simd.get("wall_s"), ".2f")],
        ["iterations", str(simd.get("iterations", "-"))],
        ["events", str(simd.get("events", "-"))],
    ]
    classes = [
        [
            cname,
            str(cs["priority"]),
            f"{cs['counts']['completed']} / {cs['counts']['arrived']}",
            ms(cs["metrics"]["ttft_s"].get("p50")),
            ms(cs["metrics"]["ttft_s"].get("p99")),
            ms(cs["metrics"]["tpot_s"].get("p99")),
            "-" if cs["slo_attainment"] is None else f"{cs['slo_attainment']:.1%}",
        ]
        for cname, cs in (summary.get("classes") or {}).items()
    ]
    figs = _figures(d, requests, timeline)
    from sim.output.report_template import TEMPLATE

    return TEMPLATE.render(
        css=CSS,
        name=sc.get("name", d.name),
        model=model,
        cluster=cluster_label(summary),
        scheduler=(sc.get("scheduler") or {}).get("kind", "?"),
        router=(cl.get("router") or {}).get("kind", "?"),
        seed=summary.get("seed", "?"),
        version=summary.get("version", "?"),
        kpis=kpis,
        latency={
            "header": ["metric", *STATS],
            "rows": [[label, *(ms(summary["metrics"][k].get(s)) for s in STATS)] for k, label in LATENCY_ROWS],
        },
        counts={"header": ["", "value"], "rows": counts},
        slo=", ".join(f"{k} ≤ {v * 1000:.0f} ms" for k, v in slo.items() if v is not None),
        cost={"header": ["cost", "value"], "rows": _cost_rows(summary)},
        transfer={"header": ["KV transfer (prefill → decode)", "value"], "rows": _transfer_rows(summary)},
        classes={
            "header": ["class", "priority", "completed", "TTFT p50", "TTFT p99", "TPOT p99", "SLO attainment"],
            "rows": classes,
        },
        instances=_per_instance(requests) if requests is not None and not requests.empty else None,
        figures=[(alt, base64.b64encode(data).decode()) for alt, data in figs],
        scenario_yaml=yaml.safe_dump(sc, sort_keys=False, allow_unicode=True),
        summary_json=json.dumps({k: v for k, v in summary.items() if k != "scenario"}, indent=1),
    )


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the page (default RUN_DIR/report.html) and return its path."""
    page = render(run_dir)
    p = Path(out) if out is not None else Path(run_dir) / "report.html"
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(page, encoding="utf-8")
    except OSError as e:
        raise ServesimError(f"{p}: cannot write ({e.strerror or e})") from None
    return p
