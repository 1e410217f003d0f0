"""Hostile cases for the residuals of issue 15 (planner options, predictor sigma, measured tables, GPU spec
files): each mistake is one line naming the option, or the file:line:col where the bad value is."""

from __future__ import annotations

from tests.hostile_corpus import AT_SC, SC, Case, dump, with_value

PLAN = ["plan", "--model", "llama-3.1-8b", "--out", "out", "-q"]


def planner_cases() -> list[Case]:
    synth = [*PLAN, "--rate", "1", "--lengths"]
    return [
        Case("plan-traffic-dev-zero", {}, [*PLAN, "--traffic", "/dev/zero"], r"--traffic /dev/zero: found a char"),
        Case("plan-traffic-dir", {"d/x": ""}, [*PLAN, "--traffic", "d"], r"--traffic d: found a directory"),
        Case("plan-lengths-dev-null", {}, [*synth, "/dev/null"], r"--lengths /dev/null: found a character device"),
        Case("plan-lengths-fixed-huge", {}, [*synth, "fixed:100000000000,5"], r"^error: --lengths 'fixed:1.*1 to"),
        Case("plan-lengths-fixed-huge-out", {}, [*synth, "fixed:5,10000001"], r"^error: --lengths 'fixed:5.*1 to"),
        Case(
            "plan-lengths-vidur-bad-row",  # the Vidur reader got furthest: its error, not the CSV header's
            {"l.csv": "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n20000000,5,20000005,1\n"},
            [*synth, "l.csv"],
            r"^error: l\.csv:2: num_prefill_tokens",
        ),
        Case(
            "plan-set-bad",
            {},
            [*synth, "fixed:100,5", "--set", "engine.timeline_interval_s=1e-12"],
            r"^error: --base/--set: engine\.timeline_interval_s",
        ),
        Case("plan-model-unknown", {}, [*synth, "fixed:100,5", "--model", "nope"], r"^error: --model: unknown model"),
    ]


def run_sc(name: str, data: dict, expect: str, files: dict | None = None) -> Case:
    return Case(name, {SC: dump(data), **(files or {})}, ["run", SC, "--out", "out", "-q"], expect)


def predictor_cases() -> list[Case]:
    return [
        run_sc(f"predictor-{k}-{v:g}", with_value("predictor", {"kind": "noisy", k: v}), AT_SC + k + r": .*10")
        for k, v in (("sigma", 100.0), ("sigma", 10.5), ("bias", 1e3), ("bias", -11.0))
    ]


def tables_cases() -> list[Case]:
    """A measured-table folder with no table, or a damaged one: named at the scenario's cost_model.tables."""
    at = AT_SC.replace(r"[\w.]*", "") + r"cost_model\.tables: "
    sc = with_value("cost_model", {"kind": "table", "tables": "t"})
    ops = "model,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,tp,num_tokens\n"
    return [
        run_sc("tables-empty-folder", sc, at + r".*t: no operators\.csv, attention\.csv", {"t/README": "x"}),
        run_sc("tables-binary-csv", sc, at + r".*operators\.csv: not a CSV table", {"t/operators.csv": b"\xff\xfe"}),
        run_sc("tables-open-quote", sc, at + r".*operators\.csv: not a CSV", {"t/operators.csv": 'a,b\n"x\n'}),
        run_sc("tables-no-columns", sc, at + r".*operators\.csv: expected columns", {"t/operators.csv": "a,b\n1,2\n"}),
        run_sc("tables-attention-cols", sc, at + r".*attention\.csv: .*missing .*time_ms", {"t/attention.csv": ops}),
        *(
            run_sc(f"tables-provenance-{k}", sc, at + r".*provenance\.yaml: " + why, {"t/operators.csv": ops, **bad})
            for k, bad, why in (
                ("yaml", {"t/provenance.yaml": "device: [a100\n"}, "not a provenance YAML"),
                ("binary", {"t/provenance.yaml": b"\xff\xfe\x00"}, "not a provenance YAML"),
                ("list", {"t/provenance.yaml": "- a\n- b\n"}, "expected a mapping"),
            )
        ),
    ]


def spec_file_cases() -> list[Case]:
    """A spec file short of fields is named itself, at its mapping (line 3 after a comment and a blank line),
    not at the scenario key that names it; a bad value in it, at that value's line."""
    gpu = "# my GPU\n\nname: g\nbf16_flops: 1.0e15\n"
    model = "# my model\n\nname: m\nnum_layers: 2\n"
    miss = r"^error: .*{f}:3:1: {key}: missing required fields: "
    return [
        run_sc(
            "spec-gpu-missing",
            with_value("hardware", "g.yaml"),
            miss.format(f="g.yaml", key="hardware"),
            {"g.yaml": gpu},
        ),
        run_sc(
            "spec-gpu-missing-prefill",
            with_value("cluster", {"prefill": {"hardware": "g.yaml"}, "decode": {}}),
            miss.format(f="g.yaml", key=r"cluster\.prefill\.hardware"),
            {"g.yaml": gpu},
        ),
        run_sc(
            "spec-model-missing", with_value("model", "m.yaml"), miss.format(f="m.yaml", key="model"), {"m.yaml": model}
        ),
        run_sc(
            "spec-gpu-bad-value",
            with_value("hardware", "g.yaml"),
            r"^error: .*g\.yaml:4:13: hardware\.bf16_flops",
            {"g.yaml": gpu.replace("1.0e15", "-1") + "memory_bytes: 8.0e10\n"},
        ),
    ]


def residual_cases() -> list[Case]:
    return [*planner_cases(), *predictor_cases(), *tables_cases(), *spec_file_cases()]
