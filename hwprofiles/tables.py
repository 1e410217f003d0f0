"""Measured operator tables: the on-disk format, the loader and the lookups the cost model needs.

A table directory (shipped under `hwprofiles/measured/<gpu>/`, or written by `servesim calibrate measure`
/ `calibrate import-vidur`) holds median kernel times in milliseconds:

- `operators.csv`: one row per (model shape, tp, num_tokens); shape columns `n_head, n_kv_head, n_embd,
  n_expanded_embd, vocab_size, use_gated_mlp` (Vidur's names), then one column per operator, one layer's
  worth (Vidur's op names: `attn_pre_proj`, `mlp_up_proj`, `input_layernorm`, ...). `emb` and `lm_head`
  are once per iteration; `lm_head` is indexed by sequences, the rest by tokens in the batch.
- `attention.csv` (optional): `model, <shape>, tp, phase, batch, q_tokens, kv_tokens, time_ms`; phase
  `prefill` is one sequence's q new tokens over kv_tokens cached, `decode` is `batch` sequences of one
  new token over kv_tokens context each (per layer).
- `collectives.csv` (optional): `collective, num_workers, devices_per_node, size_bytes, time_ms`.
- `provenance.yaml`: device, source, versions, date, dtype_bytes, license/attribution.

Interpolation is in log-log space (time vs tokens), which keeps both the latency floor of small kernels
and the linear growth of large ones. Nothing here imports torch or the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hwprofiles.interp import loglog
from hwprofiles.specs import ModelSpec

MEASURED_DIR = Path(__file__).resolve().parent / "measured"
SHAPE_COLS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp")
TOKEN_OPS = (
    "emb",
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
    "attn_kv_cache_save",
    "lm_head",
)
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj", "lm_head")
ATTENTION_COLS = ("model", *SHAPE_COLS, "tp", "phase", "batch", "q_tokens", "kv_tokens", "time_ms")
COLLECTIVE_COLS = ("collective", "num_workers", "devices_per_node", "size_bytes", "time_ms")

Curve = tuple[np.ndarray, np.ndarray]  # (x ascending, y), both float64


def shape_of(model: ModelSpec) -> dict[str, Any]:
    """The table shape columns of a catalogue model (vocab excluded from matching: tables pad it)."""
    return {
        "n_head": model.num_heads,
        "n_kv_head": model.num_kv_heads,
        "n_embd": model.hidden_size,
        "n_expanded_embd": model.intermediate_size,
        "vocab_size": model.vocab_size,
        "use_gated_mlp": bool(model.gated_mlp),
    }


def spec_from_shape(name: str, row: Any, num_layers: int = 1, dtype_bytes: int = 2) -> ModelSpec:
    """An inline ModelSpec from a table row's shape columns (for models not in the catalogue)."""
    h, nh = int(row["n_embd"]), int(row["n_head"])
    return ModelSpec(
        name=name,
        num_layers=num_layers,
        hidden_size=h,
        num_heads=nh,
        num_kv_heads=int(row["n_kv_head"]),
        head_dim=h // nh,
        intermediate_size=int(row["n_expanded_embd"]),
        vocab_size=int(row["vocab_size"]),
        max_context=32768,
        gated_mlp=_truthy(row["use_gated_mlp"]),
        dtype_bytes=dtype_bytes,
    )


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes") if not isinstance(v, bool | np.bool_) else bool(v)


def _match(df: pd.DataFrame, model: ModelSpec) -> pd.Series:
    s = shape_of(model)
    m = np.ones(len(df), dtype=bool)
    for c in ("n_head", "n_kv_head", "n_embd", "n_expanded_embd"):
        m &= df[c].to_numpy() == s[c]
    m &= df["use_gated_mlp"].map(_truthy).to_numpy() == s["use_gated_mlp"]
    return pd.Series(m, index=df.index)


loglog_interp = loglog  # the one log-log interpolation (hwprofiles.interp), under its historical name


@dataclass(frozen=True, eq=False)
class MeasuredTables:
    """One device's measured tables (any subset may be empty) and their provenance."""

    operators: pd.DataFrame
    attention: pd.DataFrame
    collectives: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None

    @property
    def dtype_bytes(self) -> int:
        return int(self.provenance.get("dtype_bytes", 2))

    def models(self) -> list[str]:
        return sorted(set(self.operators["model"]) | set(self.attention.get("model", pd.Series(dtype=str))))

    def subset(self, models: list[str] | set[str], exclude: bool = False) -> MeasuredTables:
        """Only (or all but) the rows of the named table models: how held-out evaluation trains."""
        keep = set(models)

        def sel(df: pd.DataFrame) -> pd.DataFrame:
            if df.empty or "model" not in df:
                return df
            m = df["model"].isin(keep)
            return df[~m if exclude else m].reset_index(drop=True)

        return MeasuredTables(sel(self.operators), sel(self.attention), self.collectives, self.provenance, self.root)

    def for_model(self, model: ModelSpec, tp: int) -> MeasuredTables | None:
        """Only this model shape's rows at this tp (first matching table model), or None if it has none."""

        def sel(df: pd.DataFrame) -> pd.DataFrame:
            if df.empty:
                return df
            rows = df[_match(df, model) & (df["tp"] == tp)]
            return rows[rows["model"] == rows["model"].iloc[0]].reset_index(drop=True) if len(rows) else rows

        ops, att = sel(self.operators), sel(self.attention)
        if ops.empty and att.empty:
            return None
        return MeasuredTables(ops, att, self.collectives, self.provenance, self.root)

    def has_model(self, model: ModelSpec, tp: int) -> bool:
        df = self.operators
        return not df.empty and bool((_match(df, model) & (df["tp"] == tp)).any())

    def operator_curves(self, model: ModelSpec, tp: int) -> dict[str, Curve]:
        """op -> (num_tokens, seconds) for this model shape and tp; empty if the tables lack it."""
        df = self.operators
        if df.empty:
            return {}
        rows = df[_match(df, model) & (df["tp"] == tp)]
        if rows.empty:
            return {}
        rows = rows[rows["model"] == rows["model"].iloc[0]]
        out: dict[str, Curve] = {}
        for op in TOKEN_OPS:
            if op not in rows:
                continue
            g = rows[["num_tokens", op]].dropna()
            g = g[g[op] > 0].groupby("num_tokens")[op].median()
            if len(g):
                out[op] = (g.index.to_numpy(np.float64), g.to_numpy(np.float64) * 1e-3)
        return out

    def attention_rows(self, model: ModelSpec, tp: int, phase: str) -> pd.DataFrame:
        """Attention rows (batch, q_tokens, kv_tokens, seconds) for this shape, tp and phase."""
        df = self.attention
        if df.empty:
            return df
        rows = df[_match(df, model) & (df["tp"] == tp) & (df["phase"] == phase)]
        out = rows[["batch", "q_tokens", "kv_tokens"]].astype(np.float64).copy()
        out["time_s"] = rows["time_ms"].to_numpy(np.float64) * 1e-3
        return out.groupby(["batch", "q_tokens", "kv_tokens"], as_index=False)["time_s"].median()

    def collective_curve(self, collective: str, workers: int) -> Curve | None:
        """(bytes, seconds) for `workers` GPUs in one node, smoothed by a running median in log size."""
        df = self.collectives
        if df.empty:
            return None
        rows = df[(df["collective"] == collective) & (df["num_workers"] == workers)]
        if rows.empty:
            return None
        intra = rows[rows["devices_per_node"] >= workers]
        rows = intra if not intra.empty else rows
        g = rows.groupby("size_bytes")["time_ms"].median().sort_index()
        sm = g.rolling(9, center=True, min_periods=1).median()
        return g.index.to_numpy(np.float64), sm.to_numpy(np.float64) * 1e-3


TABLE_FILES = ("operators.csv", "attention.csv", "collectives.csv", "provenance.yaml")


def _read_csv(path: Path, cols: tuple[str, ...]) -> pd.DataFrame:
    """A table file, or an empty table when it is absent; a damaged one (not CSV, not UTF-8, a column
    missing) is a ServesimError naming the file, never a pandas traceback."""
    from hwprofiles.errors import ServesimError

    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    try:
        df = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, OSError) as e:  # pandas' ParserError and EmptyDataError are ValueErrors
        raise ServesimError(f"{path}: not a CSV table ({' '.join(str(e).split())[:120]})") from None
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ServesimError(f"{path}: expected columns {', '.join(cols)}; missing {', '.join(missing)}")
    return df


def _read_provenance(path: Path) -> dict[str, Any]:
    """provenance.yaml as a mapping; damaged YAML, binary bytes or a non-mapping is one line naming the file."""
    from hwprofiles.errors import ServesimError

    try:
        prov = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise ServesimError(f"{path}: not a provenance YAML file ({' '.join(str(e).split())[:120]})") from None
    if prov is not None and not isinstance(prov, dict):
        raise ServesimError(f"{path}: expected a mapping of provenance fields; found {type(prov).__name__}")
    return prov or {}


def load_tables(root: str | Path) -> MeasuredTables:
    """Read a table directory (see module doc); missing files are empty tables. Cached on the files' sizes
    and modification times, so a table edited within one process (a notebook, a sweep) is read again."""
    root = Path(root).resolve()
    stamp = tuple((n, st.st_mtime_ns, st.st_size) for n in TABLE_FILES if (st := _stat(root / n)) is not None)
    return _load_cached(root, stamp)


def _stat(path: Path) -> Any:
    try:
        return path.stat()
    except OSError:
        return None


@cache
def _load_cached(root: Path, stamp: tuple[tuple[str, int, int], ...]) -> MeasuredTables:
    from hwprofiles.errors import ServesimError

    if not root.is_dir():
        raise ServesimError(f"{root}: measured-table directory not found")
    ops = _read_csv(root / "operators.csv", ("model", *SHAPE_COLS, "tp", "num_tokens"))
    att = _read_csv(root / "attention.csv", ATTENTION_COLS)
    col = _read_csv(root / "collectives.csv", COLLECTIVE_COLS)
    prov_path = root / "provenance.yaml"
    prov = _read_provenance(prov_path) if prov_path.exists() else {}
    if ops.empty and att.empty and col.empty:
        raise ServesimError(f"{root}: no operators.csv, attention.csv or collectives.csv")
    return MeasuredTables(ops, att, col, prov or {}, root)


def shipped_tables(gpu_name: str) -> MeasuredTables | None:
    """The measured tables shipped for a catalogue GPU, or None (then spec-sheet efficiencies apply)."""
    d = MEASURED_DIR / gpu_name
    return load_tables(d) if (d / "provenance.yaml").exists() else None


def write_tables(tables: MeasuredTables, root: str | Path) -> Path:
    """Write a table directory in the compact form (medians, 5 significant digits)."""
    d = Path(root)
    d.mkdir(parents=True, exist_ok=True)
    for name, df in (
        ("operators.csv", tables.operators),
        ("attention.csv", tables.attention),
        ("collectives.csv", tables.collectives),
    ):
        if not df.empty:
            df.to_csv(d / name, index=False, float_format="%.5g")
    (d / "provenance.yaml").write_text(yaml.safe_dump(tables.provenance, sort_keys=False))
    return d
