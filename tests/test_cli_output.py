"""CLI output a user of vLLM bench / GuideLLM expects (issue 15): complete tables when piped and never cut
names on a terminal, --version, --format csv|json, --percentiles, input/total token throughput, "no SLO",
--no-plots saying what it wrote, --set paths from the working directory."""

from __future__ import annotations

import csv
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

from sim.tools.cli import run_cli
from sim.tools.tables import show

REPO = Path(__file__).resolve().parents[1]


def _cli(argv: list[str]) -> tuple[int, str, str]:
    o, e = io.StringIO(), io.StringIO()
    with redirect_stdout(o), redirect_stderr(e):
        rc = run_cli(argv)
    return rc, o.getvalue(), e.getvalue()


def _small(tmp: Path, **over) -> Path:
    sc = yaml.safe_load((REPO / "scenarios/quickstart.yaml").read_text())
    sc["workload"]["num_requests"] = 40
    sc["workload"]["lengths"] = {"kind": "fixed", "prompt": 100, "output": 20}
    sc["cluster"]["instances"] = 1
    sc.update(over)
    p = tmp / "s.yaml"
    p.write_text(yaml.safe_dump(sc))
    return p


def test_version() -> None:
    rc, out, _ = _cli(["--version"])
    assert rc == 0 and out.startswith("servesim ") and out.split()[1][0].isdigit()


def test_piped_list_is_complete_csv_rows() -> None:
    rc, out, _ = _cli(["list", "models"])
    assert rc == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:2] == ["name", "layers"]
    hits = [r for r in rows if "70b" in ",".join(r)]  # `servesim list models | grep 70b`
    assert {"llama-3.1-70b", "llama-2-70b"} <= {r[0] for r in hits}
    assert all(len(r) == len(rows[0]) for r in rows[1:])
    assert "…" not in out


def test_terminal_tables_never_truncate_names() -> None:
    t = Table(title="t")
    t.add_column("name")
    t.add_column("ms", justify="right")
    for n in ("sarathi/512 on h100-sxm tp4 x 3 instances", "sarathi/2048 on h100-sxm tp4 x 3 instances"):
        t.add_row(n, "123456.789")
    buf = io.StringIO()
    show(Console(file=buf, force_terminal=True, width=40, color_system=None), t)
    text = buf.getvalue()
    assert "sarathi/512 on h100-sxm tp4 x 3 instances" in text and "sarathi/2048 on h100-sxm tp4 x 3" in text
    assert "123456.789" in text and "…" not in text


def test_run_formats_percentiles_throughput_and_no_slo(tmp_path: Path) -> None:
    sc = _small(tmp_path, slo={})
    rc, out, err = _cli(["run", str(sc), "--out", str(tmp_path / "o"), "-q", "--no-plots", "--format", "csv",
                         "--percentiles", "50,90,99,99.9"])  # fmt: skip
    assert rc == 0, err
    assert "p99.9 (ms)" in out and "no SLO set" in out and "SLO attainment" not in out
    assert "input +" in out and "total tok/s" in out
    assert "plots/" not in out and "requests.csv" in out
    df = pd.read_csv(tmp_path / "o" / "requests.csv")
    assert len(df) == 40 and not (tmp_path / "o" / "plots").exists()
    rc, out, _ = _cli(["run", str(_small(tmp_path)), "--out", str(tmp_path / "j"), "-q", "--format", "json"])
    assert rc == 0 and "goodput" in out and "plots/" in out
    rows = [json.loads(line) for line in (tmp_path / "j" / "requests.json").read_text().splitlines()]
    assert len(rows) == 40 and "ttft_s" in rows[0]


def test_set_paths_resolve_against_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "sub").mkdir()
    _small(tmp_path / "sub")
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n" + "".join(
        f"{i * 0.1},50,5\n" for i in range(7)))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    trace = "workload.arrival={kind: trace, path: t.csv, format: csv}"
    rc, _, err = _cli(["run", "sub/s.yaml", "--out", "o", "-q", "--no-plots", "--set", trace,
                       "--set", "workload.lengths=null"])  # fmt: skip
    assert rc == 0, err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["counts"]["arrived"] == 7


def test_cdf_plots_draw_the_slo_targets(tmp_path: Path) -> None:
    import sim

    res = sim.run(sim.load_scenario(_small(tmp_path)))  # quickstart's SLO: ttft 2 s, tpot 0.1 s
    fig = res.plot_latency_cdfs()
    lines = {ax.get_xlabel(): [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"] for ax in fig.axes}
    assert [ln.get_xdata()[0] for ln in lines["TTFT (s)"]] == [2.0]
    assert [ln.get_xdata()[0] for ln in lines["TPOT (s)"]] == [0.1]
    assert lines["E2E latency (s)"] == []
    assert "meet it" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_estimate_takes_a_config_json_or_an_inline_spec_yaml(tmp_path: Path, monkeypatch) -> None:
    """The same model as a Hugging Face config.json and as an inline spec YAML without head_dim (derived as
    hidden_size / num_heads = 64) prices the same iteration; tp must divide its heads."""
    hf = {
        "model_type": "llama",
        "hidden_size": 1024,
        "num_hidden_layers": 4,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "intermediate_size": 4096,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
    }
    (tmp_path / "config.json").write_text(json.dumps(hf))
    spec = {"name": "mini", "num_layers": 4, "hidden_size": 1024, "num_heads": 16, "num_kv_heads": 4,
            "intermediate_size": 4096, "vocab_size": 32000, "max_context": 4096}  # fmt: skip
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    args = ["--hardware", "h100-sxm", "--prefill-tokens", "512", "--json"]
    rc1, out1, _ = _cli(["estimate", "--model", "config.json", *args])
    rc2, out2, _ = _cli(["estimate", "--model", "mini.yaml", *args])
    assert rc1 == rc2 == 0
    assert json.loads(out1)["iteration_s"] == json.loads(out2)["iteration_s"] > 0
    rc, _, err = _cli(["estimate", "--model", "mini.yaml", "--hardware", "h100-sxm", "--tp", "3"])
    assert rc == 2 and "tp 3 must divide mini's 16 attention heads" in err and len(err.strip().splitlines()) == 1
