"""A corpus of user mistakes, generated and hand-written, for tests/test_hostile.py.

Each case is a set of files to write, the `servesim` arguments to run, and a regex the single error line
must match: `file:line:col` for scenario/sweep files, `file:line` for trace cells (or the file, for a whole
file that is damaged), or the option's name. Every case is a mistake: none may run a simulation.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

BASE: dict[str, Any] = {
    "name": "hostile",
    "model": "llama-3.1-8b",
    "hardware": "h100-sxm",
    "workload": {
        "num_requests": 10,
        "arrival": {"kind": "poisson", "rate": 1.0},
        "lengths": {"kind": "fixed", "prompt": 10, "output": 10},
    },
    "cluster": {"instances": 1, "tp": 1, "link": {"latency_s": 0.0}},
    "kv_cache": {"block_size": 16, "gpu_memory_utilization": 0.9, "reserve_gb": 2.0, "watermark": 0.01},
    "slo": {"ttft_s": 1.0, "tpot_s": 0.1, "e2el_s": 10.0},
    "engine": {"fast_forward": True, "horizon_s": 100.0, "timeline_interval_s": 1.0},
    "cost_model": {"kind": "roofline", "iteration_overhead_s": 0.002},
    "scheduler": {"kind": "fcfs", "max_num_seqs": 256},
    "seed": 0,
}
SC = "s.yaml"
AT_SC = rf"{SC}:\d+:\d+: [\w.]*"  # the scenario file, with line and column


@dataclass
class Case:
    name: str
    files: dict[str, Any]  # relative path -> text or bytes
    argv: list[str]
    expect: str  # regex searched in the single error line
    extra: dict[str, Any] = field(default_factory=dict)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def with_value(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.loads(json.dumps(base or BASE))
    node = data
    *parents, last = path.split(".")
    for k in parents:
        node = node.setdefault(k, {})
    node[last] = value
    return data


def run_case(name: str, text: str | bytes, expect: str = AT_SC, *extra_args: str) -> Case:
    return Case(name, {SC: text}, ["run", SC, "--out", "out", "-q", *extra_args], expect)


# -- field x bad value ------------------------------------------------------------------------------------
INF, NAN = float("inf"), float("nan")
FLOAT_FIELDS = [
    "workload.arrival.rate",
    "workload.duration_s",
    "cluster.link.latency_s",
    "cluster.link.bandwidth_gbps",
    "kv_cache.gpu_memory_utilization",
    "kv_cache.reserve_gb",
    "kv_cache.watermark",
    "slo.ttft_s",
    "slo.tpot_s",
    "slo.e2el_s",
    "engine.horizon_s",
    "engine.timeline_interval_s",
    "cluster.idle_power_fraction",
    "cost_model.iteration_overhead_s",
]
# a huge sampling period is how the queueing checks turn the timeline off: allowed, not a mistake
NOT_MISTAKES = {("engine.timeline_interval_s", 1e300)}
BAD_FLOATS: list[Any] = [INF, -INF, NAN, 1e300, -1.0, "abc", [1.0], {"a": 1}]
INT_FIELDS = [
    "workload.num_requests",
    "cluster.instances",
    "cluster.tp",
    "kv_cache.block_size",
    "seed",
    "workload.lengths.prompt",
    "workload.lengths.output",
]
BAD_INTS: list[Any] = [True, 1.5, -1, 10**20, 1e20, "x", INF, [], {"n": 1}]
BOOL_FIELDS = ["engine.fast_forward", "engine.cohort_decoding"]
BAD_BOOLS: list[Any] = ["maybe", 2, [], {"a": 1}, 0.5]


def value_cases() -> list[Case]:
    out = []
    for fields, values in ((FLOAT_FIELDS, BAD_FLOATS), (INT_FIELDS, BAD_INTS), (BOOL_FIELDS, BAD_BOOLS)):
        for f in fields:
            for i, v in enumerate(values):
                if any(f == a and isinstance(v, float) and v == b for a, b in NOT_MISTAKES):
                    continue
                leaf = re.escape(f.split(".")[-1])
                out.append(run_case(f"value-{f}-{i}", dump(with_value(f, v)), AT_SC + rf"[\w.]*{leaf}"))
    return out


# -- structure: unknown keys and kinds, names -------------------------------------------------------------
SECTIONS = [
    "",
    "workload",
    "workload.arrival",
    "workload.lengths",
    "cluster",
    "cluster.link",
    "kv_cache",
    "slo",
    "engine",
    "scheduler",
    "cost_model",
]
KINDS = ["scheduler", "cluster.router", "cost_model", "workload.arrival", "workload.lengths", "cluster.migration"]


def structure_cases() -> list[Case]:
    out = []
    for s in SECTIONS:
        path = f"{s}.tpyo" if s else "tpyo"
        out.append(run_case(f"unknown-{s or 'top'}", dump(with_value(path, 1)), AT_SC + ".*unknown field"))
    for k in KINDS:
        out.append(run_case(f"kind-{k}", dump(with_value(k, {"kind": "no-such-kind"})), AT_SC))
        out.append(run_case(f"kind-missing-{k}", dump(with_value(k, {"rate": 1})), AT_SC))
        out.append(run_case(f"kind-scalar-{k}", dump(with_value(k, 7)), AT_SC))
    v: Any
    for key in ("model", "hardware"):
        for v in ("no-such", "[/x]", "[bold red]x", "ünïcødé", "x" * 5000, "", 42, ["a"], None):
            out.append(run_case(f"name-{key}-{str(v)[:12]}", dump(with_value(key, v)), AT_SC + key))
    names: tuple[str, ...] = ("../../x", "/abs/x", "a/b", "..", ".", "", "a\\b", "c:x", "x\n y", "x" * 500)
    names += ("a\u202eb", "a\x7f", "a\u2028")  # a right-to-left override, DEL, a line separator
    for v in names:
        out.append(run_case(f"runname-{v[:10]!r}", dump(with_value("name", v)), AT_SC + "name"))
    for top in ("workload", "cluster", "kv_cache", "slo", "engine"):
        for v in ([1, 2], "text", 3.5):
            out.append(run_case(f"section-{top}-{v!r}", dump(with_value(top, v)), AT_SC + top))
    return out


# -- physics ----------------------------------------------------------------------------------------------
GPU = {
    "name": "g",
    "memory_bytes": 8e10,
    "bf16_flops": 1e15,
    "mem_bw": 3e12,
    "intra_node_bw": 4.5e11,
    "host_link_bw": 6.4e10,
    "price_per_hour": 2.0,
    "tdp_w": 700,
}
MODEL = {
    "name": "m",
    "num_layers": 4,
    "hidden_size": 1024,
    "num_heads": 16,
    "num_kv_heads": 4,
    "head_dim": 64,
    "intermediate_size": 4096,
    "vocab_size": 32000,
    "max_context": 4096,
}


def physics_cases() -> list[Case]:
    out = []
    for tp in (3, 5, 6, 7, 12, 24, 48, 65, 1024, 0, -2):
        out.append(run_case(f"tp-{tp}", dump(with_value("cluster.tp", tp)), AT_SC + "cluster.tp"))
    big = with_value("model", "llama-3.1-70b", with_value("hardware", "l40s"))
    out.append(run_case("no-fit", dump(big), AT_SC + ".*does not fit"))
    out.append(
        run_case("no-fit-util", dump(with_value("kv_cache.gpu_memory_utilization", 0.05)), AT_SC + ".*does not fit")
    )
    out.append(run_case("no-fit-reserve", dump(with_value("kv_cache.reserve_gb", 900)), AT_SC + ".*does not fit"))
    for f, v in (
        ("bf16_flops", 1e-300),
        ("memory_bytes", INF),
        ("mem_bw", 0),
        ("price_per_hour", -1),
        ("tdp_w", NAN),
        ("mem_bw", 1e30),
        ("host_link_bw", "fast"),
        ("bf16_flops", 1e300),
    ):
        out.append(run_case(f"gpu-{f}-{v}", dump(with_value("hardware", {**GPU, f: v})), AT_SC + "hardware"))
    out.append(run_case("gpu-missing", dump(with_value("hardware", {"name": "g"})), AT_SC + "hardware"))
    for f, v in (
        ("num_heads", 0),
        ("num_kv_heads", 3),
        ("num_layers", 10**9),
        ("hidden_size", -5),
        ("experts_per_token", 4),
        ("vocab_size", INF),
        ("head_dim", "wide"),
    ):
        out.append(run_case(f"model-{f}-{v}", dump(with_value("model", {**MODEL, f: v})), AT_SC + "model"))
    out.append(run_case("model-missing", dump(with_value("model", {"name": "m"})), AT_SC + "model"))
    absurd: list[tuple[str, Any]] = [
        ("workload.num_requests", 1e13),
        ("workload.duration_s", 1e300),
        ("engine.timeline_interval_s", 1e-9),
        ("engine.horizon_s", 1e12),
        ("workload.arrival.rate", 1e9),
        ("cost_model", {"kind": "linear", "base_s": INF}),
        ("cost_model", {"kind": "linear", "base_s": 1e300}),
        ("cluster.migration", {"kind": "llumnix", "interval_s": 1e-12}),
        ("cluster.link", {"latency_s": INF}),
        ("cluster.link", {"latency_s": 1e300}),
        ("workload.lengths", {"kind": "lognormal", "prompt_median": 10, "output_median": 5, "prompt_sigma": INF}),
    ]
    for path, v in absurd:
        out.append(run_case(f"absurd-{path}-{v}", dump(with_value(path, v)), AT_SC))
    long_run = with_value("workload.duration_s", 1e7, with_value("workload.arrival.rate", 1e5))
    del long_run["workload"]["num_requests"]
    out.append(run_case("rate-x-duration", dump(long_run), AT_SC + "workload"))
    ticks = with_value("engine.timeline_interval_s", 0.001, with_value("engine.horizon_s", 1e6))
    out.append(run_case("timeline-ticks", dump(ticks), AT_SC + "engine.timeline_interval_s"))
    for v in ("nope.csv", "traces/", "/no/such/file.csv", ""):
        arr = {"kind": "trace", "path": v, "format": "csv"}
        out.append(run_case(f"trace-path-{v}", dump(with_value("workload.arrival", arr)), AT_SC + "path"))
        if v == "traces/":
            out[-1].files["traces/x"] = ""  # `traces/` exists and is a directory
    ts = {"kind": "trace", "path": "mooncake-conv", "format": "mooncake", "time_scale": INF}
    out.append(run_case("time-scale-inf", dump(with_value("workload.arrival", ts)), AT_SC + "time_scale"))
    return out


# -- YAML itself ------------------------------------------------------------------------------------------
def bomb(levels: int, fan: int, under: str = "workload") -> str:
    lines = [f"a0: &a0 [{', '.join(['x'] * fan)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]")
    return "\n".join(lines) + f"\n{under}: *a{levels - 1}\n"


SYNTAX = {
    "unclosed-flow": "model: [llama\n",
    "unclosed-map": "workload: {num_requests: 10\n",
    "unclosed-quote": 'model: "llama\n',
    "tab-indent": "workload:\n\tnum_requests: 10\n",
    "bad-indent": "workload:\n  num_requests: 10\n    rate: 1\n",
    "colon-in-plain": "model: a: b\n",
    "undefined-alias": "model: *nope\n",
    "dup-top": "model: a\nmodel: b\n",
    "dup-nested": "workload:\n  num_requests: 1\n  num_requests: 2\n",
    "dup-flow": "cluster: {tp: 1, tp: 2}\n",
    "dup-anchor-merge": "a: &x {k: 1}\nb:\n  <<: *x\n  k: 2\n  k: 3\n",
    "multi-doc": "model: a\n---\nmodel: b\n",
    "directive": "%YAML 9.9\n---\nmodel: a\n",
    "bad-tag": "model: !python/object:os.system ls\n",
    "bad-tag-2": "model: !!python/name:os.system\n",
    "scalar-doc": "just a string\n",
    "list-doc": "- 1\n- 2\n",
    "int-doc": "42\n",
    "null-doc": "~\n",
    "comment-only": "# nothing\n",
    "empty": "",
    "whitespace": "   \n\n  \n",
    "complex-key": "? [a, b]\n: 1\n",
    "null-key": "~: 1\nmodel: a\n",
    "int-key": "1: 2\nmodel: a\n",
    "bad-escape": 'model: "\\q"\n',
    "stray-bracket": "model: a]\n",
    "stray-dash": "model: a\n- b\n",
    "anchor-only": "model: &a\n",
    "bad-date": "seed: 2024-13-45\n",
    "bom-then-garbage": "\ufeff{{{{\n",
    "recursive-alias": "a: &r [1, *r]\nmodel: *r\n",
    "recursive-map": "a: &r {b: *r}\nworkload: *r\n",
    "deep-flow-100": "workload: " + "[" * 100 + "]" * 100 + "\n",
    "deep-flow-5000": "workload: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-map-flow-3000": "workload: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "deep-block-200": "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
    "deep-seq-1000": "workload:\n" + "- " * 1000 + "x\n",
}


def yaml_cases() -> list[Case]:
    out = [run_case(f"yaml-{k}", v) for k, v in SYNTAX.items()]
    for levels, fan in ((6, 9), (7, 9), (9, 9), (12, 10), (20, 2), (30, 2), (5, 20), (4, 100)):
        out.append(run_case(f"bomb-{levels}x{fan}", bomb(levels, fan)))
    return out


def encoding_cases() -> list[Case]:
    text = dump(BASE)
    rng = random.Random(15)
    cases = {
        "latin1": text.replace("hostile", "hôstile").encode("latin-1"),
        "utf16-le": text.encode("utf-16"),
        "utf16-be": b"\xfe\xff" + text.encode("utf-16-be"),
        "utf32": text.encode("utf-32"),
        "nul": text.encode() + b"\x00",
        "nul-middle": text.encode()[:40] + b"\x00" + text.encode()[40:],
        "cp1252-quote": text.encode() + b"note: \x93hi\x94\n",
        "lone-continuation": b"model: \x80\n",
        "truncated-utf8": "model: ü".encode()[:-1] + b"\n",
        "gzip": gzip.compress(text.encode()),
        "png-header": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "elf": b"\x7fELF" + bytes(range(256)),
    }
    for i in range(12):
        cases[f"random-{i}"] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))) + b"\x00"
    return [run_case(f"enc-{k}", v) for k, v in cases.items()]


# -- broken traces ----------------------------------------------------------------------------------------
CSV_HEAD = "arrival_s,prompt_tokens,output_tokens\n"
AT_TRACE = r"t\.(csv|jsonl)(\.gz)?:\d+: "


def trace_scenario(fmt: str, name: str) -> str:
    return dump(with_value("workload.arrival", {"kind": "trace", "path": name, "format": fmt}))


def trace_cases() -> list[Case]:
    csvs: dict[str, tuple[str | bytes, str]] = {
        "arrival-1e30": (CSV_HEAD + "0,10,10\n1e30,10,10\n", AT_TRACE + "arrival_s"),
        "prompt-1e30": (CSV_HEAD + "0,10,10\n1,1e30,10\n", AT_TRACE + "prompt_tokens"),
        "output-1e30": (CSV_HEAD + "0,10,10\n1,10,1e30\n", AT_TRACE + "output_tokens"),
        "prompt-neg": (CSV_HEAD + "0,-5,10\n", AT_TRACE + "prompt_tokens"),
        "prompt-zero": (CSV_HEAD + "0,0,10\n", AT_TRACE + "prompt_tokens"),
        "prompt-frac": (CSV_HEAD + "0,1.5,10\n", AT_TRACE + "prompt_tokens"),
        "prompt-text": (CSV_HEAD + "0,ten,10\n", AT_TRACE + "prompt_tokens"),
        "prompt-nan": (CSV_HEAD + "0,nan,10\n", AT_TRACE + "prompt_tokens"),
        "prompt-inf": (CSV_HEAD + "0,inf,10\n", AT_TRACE + "prompt_tokens"),
        "arrival-inf": (CSV_HEAD + "0,10,10\ninf,10,10\n", AT_TRACE + "arrival_s"),
        "arrival-text": (CSV_HEAD + "soon,10,10\n", AT_TRACE + "arrival_s"),
        "unsorted": (CSV_HEAD + "5,10,10\n1,10,10\n", AT_TRACE + "arrival_s"),
        "empty": ("", AT_TRACE + "header"),
        "header-only": (CSV_HEAD, AT_TRACE + "file"),
        "missing-column": ("arrival_s,prompt_tokens\n0,10\n", AT_TRACE + "output_tokens"),
        "long-row": (CSV_HEAD + "0,10,10,99,98\n", AT_TRACE + "row"),
        "binary": (bytes(range(256)) * 4, r"t\.csv"),
        "latin1": ((CSV_HEAD + "0,10,10\n").encode() + b"\xe9\n", r"t\.csv"),
        "row-of-millions": (CSV_HEAD + "0,10,10\n" + "1," * 2_000_000 + "\n", AT_TRACE.replace(r"\d+", "3") + "row"),
        "row-of-1024": (CSV_HEAD + "0," * 1023 + "0\n", AT_TRACE.replace(r"\d+", "2") + "row"),
    }
    out = []
    for k, (body, expect) in csvs.items():
        out.append(
            Case(
                f"trace-csv-{k}",
                {SC: trace_scenario("csv", "t.csv"), "t.csv": body},
                ["run", SC, "--out", "out", "-q"],
                expect,
            )
        )
    gz_bad = gzip.compress((CSV_HEAD + "0,10,10\n1,abc,10\n").encode())
    out.append(
        Case(
            "trace-gz-bad-cell",
            {SC: trace_scenario("csv", "t.csv.gz"), "t.csv.gz": gz_bad},
            ["run", SC, "--out", "out", "-q"],
            AT_TRACE + "prompt_tokens",
        )
    )
    out.append(
        Case(
            "trace-gz-1e30",
            {SC: trace_scenario("csv", "t.csv.gz"), "t.csv.gz": gzip.compress((CSV_HEAD + "0,1e30,3\n").encode())},
            ["run", SC, "--out", "out", "-q"],
            AT_TRACE + "prompt_tokens",
        )
    )
    out.append(
        Case(
            "trace-gz-truncated",
            {SC: trace_scenario("csv", "t.csv.gz"), "t.csv.gz": gz_bad[:25]},
            ["run", SC, "--out", "out", "-q"],
            r"t\.csv\.gz: .*gzip",
        )
    )
    jsonl = {
        "tokens-1e30": ('{"timestamp": 0, "input_length": 1e30, "output_length": 3}\n', "input_length"),
        "ts-1e30": (
            '{"timestamp": 0, "input_length": 5, "output_length": 3}\n'
            '{"timestamp": 1e30, "input_length": 5, "output_length": 3}\n',
            "timestamp",
        ),
        "not-json": ("{timestamp: 0}\n", "line"),
        "array": ("[1, 2]\n", "line"),
        "missing": ('{"timestamp": 0, "input_length": 5}\n', "output_length"),
        "hash-ids": ('{"timestamp": 0, "input_length": 5, "output_length": 3, "hash_ids": "x"}\n', "hash_ids"),
        "backwards": (
            '{"timestamp": 9, "input_length": 5, "output_length": 3}\n'
            '{"timestamp": 1, "input_length": 5, "output_length": 3}\n',
            "timestamp",
        ),
        "empty": ("\n\n", "file"),
        "nested-100k": ("[" * 100_000 + "]" * 100_000 + "\n", "line"),
        "object-nested-50k": ('{"a":' * 50_000 + "1" + "}" * 50_000 + "\n", "line"),
        "int-5000-digits": ('{"timestamp": 0, "input_length": 1' + "0" * 5000 + ', "output_length": 3}\n', "line"),
    }
    for k, (body, col) in jsonl.items():
        out.append(
            Case(
                f"trace-jsonl-{k}",
                {SC: trace_scenario("mooncake", "t.jsonl"), "t.jsonl": body},
                ["run", SC, "--out", "out", "-q"],
                AT_TRACE + col,
            )
        )
    vidur = "num_prefill_tokens,num_decode_tokens\n5,1e30\n"
    lengths = {"kind": "trace", "path": "t.csv", "format": "vidur"}
    out.append(
        Case(
            "trace-vidur-1e30",
            {SC: dump(with_value("workload.lengths", lengths)), "t.csv": vidur},
            ["run", SC, "--out", "out", "-q"],
            AT_TRACE + "num_decode_tokens",
        )
    )
    out.append(
        Case(
            "trace-azure-date",
            {SC: trace_scenario("azure", "t.csv"), "t.csv": "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,5,5\n"},
            ["run", SC, "--out", "out", "-q"],
            AT_TRACE + "TIMESTAMP",
        )
    )
    out.append(
        Case(
            "trace-azure-far",
            {
                SC: trace_scenario("azure", "t.csv"),
                "t.csv": "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-01-01 00:00:00,5,5\n2999-01-01 00:00:00,5,5\n",
            },
            ["run", SC, "--out", "out", "-q"],
            AT_TRACE + "TIMESTAMP",
        )
    )
    return out


# -- options ----------------------------------------------------------------------------------------------
def option_cases() -> list[Case]:
    ok = {SC: dump(BASE)}
    run = ["run", SC, "-q"]
    cases = [
        Case("opt-format", ok, [*run, "--out", "out", "--format", "xml"], "--format"),
        Case("opt-pct-0", ok, [*run, "--out", "out", "--percentiles", "0,50"], "--percentiles"),
        Case("opt-pct-100", ok, [*run, "--out", "out", "--percentiles", "50,100"], "--percentiles"),
        Case("opt-pct-text", ok, [*run, "--out", "out", "--percentiles", "p99"], "--percentiles"),
        Case("opt-pct-empty", ok, [*run, "--out", "out", "--percentiles", ","], "--percentiles"),
        Case("opt-set-noeq", ok, [*run, "--out", "out", "--set", "cluster.tp"], "--set"),
        Case("opt-set-nokey", ok, [*run, "--out", "out", "--set", "=4"], "--set"),
        Case("opt-set-dots", ok, [*run, "--out", "out", "--set", "...=4"], "--set"),
        Case("opt-set-catalogue", ok, [*run, "--out", "out", "--set", "model.num_layers=4"], "--set"),
        Case("opt-set-inf", ok, [*run, "--out", "out", "--set", "workload.arrival.rate=.inf"], AT_SC + "workload"),
        Case("opt-set-bool", ok, [*run, "--out", "out", "--set", "cluster.instances=true"], AT_SC + "cluster"),
        Case("opt-set-typo", ok, [*run, "--out", "out", "--set", "cluster.instancs=2"], AT_SC + ".*unknown field"),
        Case("opt-set-bomb", ok, [*run, "--out", "out", "--set", "workload=" + bomb(9, 9)], "--set"),
        Case("opt-out-file", {**ok, "out": "x"}, [*run, "--out", "out"], "--out"),
        Case("opt-out-under-file", {**ok, "f": "x"}, [*run, "--out", "f/sub/dir"], "--out"),
        Case(
            "opt-trace-events-under-file",
            {**ok, "f": "x"},
            [*run, "--out", "out", "--trace-events", "f/t.json"],
            "--trace-events",
        ),
        Case("opt-missing-scenario", {}, [*run, "--out", "out"], r"s\.yaml: file not found"),
        Case("opt-scenario-dir", {"s.yaml/x": "1"}, [*run, "--out", "out"], r"s\.yaml: is a directory"),
        Case("opt-no-command", {}, ["nope"], "No such command"),
        Case("opt-unknown-option", ok, [*run, "--bogus"], "--bogus"),
        Case("list-unknown", {}, ["list", "gpus"], "unknown list"),
    ]
    est = ["estimate", "--model", "llama-3.1-8b", "--hardware", "h100-sxm"]
    for opt, v in (
        ("--prefill-tokens", "1e17"),
        ("--prefill-tokens", "100000000000"),
        ("--batch-size", "1e8"),
        ("--batch-size", "100000000"),
        ("--batch-size", "0"),
        ("--context-tokens", "-1"),
        ("--tp", "abc"),
        ("--tp", "3"),
        ("--tp", "1024"),
        ("--cost-model", "nope"),
    ):
        cases.append(Case(f"est{opt}-{v}", {}, [*est, opt, v], "--prefill|--batch|--context|--tp|tp|--cost-model"))
    cases += [
        Case("est-model", {}, ["estimate", "--model", "nope", "--hardware", "h100"], "--model"),
        Case("est-model-json-missing", {}, ["estimate", "--model", "c.json", "--hardware", "h100"], "--model"),
        Case(
            "est-model-json-bad",
            {"c.json": "{nope"},
            ["estimate", "--model", "c.json", "--hardware", "h100"],
            r"c\.json:\d+:\d+",
        ),
        Case(
            "est-model-yaml-bad",
            {"m.yaml": "name: m\nnum_layers: -1\n"},
            ["estimate", "--model", "m.yaml", "--hardware", "h100"],
            r"m\.yaml:\d+:\d+",
        ),
        Case(
            "est-model-yaml-dup",
            {"m.yaml": "name: m\nname: n\n"},
            ["estimate", "--model", "m.yaml", "--hardware", "h100"],
            r"m\.yaml:\d+:\d+",
        ),
        Case("est-hardware", {}, ["estimate", "--model", "llama-3.1-8b", "--hardware", "[/x]"], "hardware"),
    ]
    plan = ["plan", "--model", "llama-3.1-8b", "--lengths", "fixed:100,10", "--out", "out", "-q"]
    for opt, v in (
        ("--rate", "inf"),
        ("--rate", "nan"),
        ("--rate", "-1"),
        ("--rate", "0"),
        ("--rate", "abc"),
        ("--rate", "1e300"),
        ("--requests", "0"),
        ("--requests", "100000000000"),
        ("--cv", "inf"),
        ("--attainment", "2"),
        ("--tp", "abc"),
        ("--tp", "0"),
        ("--hardware", "nope"),
        ("--shapes", "round"),
        ("--schedulers", "nope"),
        ("--budget", "0"),
        ("--slo", "ttft=abc"),
        ("--margin", "0.5"),
        ("--model", "nope"),
        ("--model", "m.json"),
        ("--lengths", "fixed:a,b"),
    ):
        argv = [*plan, opt, v] if opt == "--rate" else [*plan, "--rate", "1", opt, v]
        cases.append(Case(f"plan{opt}-{v}", {}, argv, re.escape(opt) + "|" + re.escape(opt.strip("-"))))
    cases.append(Case("plan-out-file", {"out": "x"}, [*plan, "--rate", "1"], "--out"))
    once = r"^error: --hardware: unknown hardware 'nope'; known: [^;]*$"  # the option and the value named once
    cases.append(Case("plan-hardware-once", {}, [*plan, "--rate", "1", "--hardware", "nope"], once))
    cases.append(
        Case(
            "plan-base-bad",
            {"b.yaml": "cluster: {tp: [}\n"},
            [*plan, "--rate", "1", "--base", "b.yaml"],
            r"b\.yaml:\d+:\d+",
        )
    )
    for k, text in {
        "missing": None,
        "file": "x",
        "bad-json": "{",
        "json-list": "[1]",
        "binary": b"\x00\xff",
    }.items():
        files = {} if text is None else ({"rd": text} if k == "file" else {"rd/summary.json": text})
        cases.append(Case(f"report-{k}", files, ["report", "rd"], r"rd"))
    sweep_base = {"base": "s.yaml", "grid": {"cluster.instances": [1, 2]}}
    for k, body in {
        "dup": "base: s.yaml\nbase: t.yaml\n",
        "name": dump({**sweep_base, "name": "../../x"}),
        "abs-name": dump({**sweep_base, "name": "/tmp/x"}),
        "empty-grid": dump({"base": "s.yaml", "grid": {"cluster.instances": []}}),
        "bad-base": dump({"base": "nope.yaml", "grid": {"seed": [1]}}),
        "bad-value": dump({"base": "s.yaml", "grid": {"cluster.instances": [1, True]}}),
        "inf-value": dump({"base": "s.yaml", "grid": {"workload.arrival.rate": [1, INF]}}),
        "bomb": bomb(9, 9, "grid"),
        "zip-len": dump({"base": "s.yaml", "zip": {"seed": [1, 2], "cluster.instances": [1]}}),
        "replications": dump({**sweep_base, "replications": 0}),
        "empty": "",
    }.items():
        cases.append(
            Case(
                f"sweep-{k}",
                {**ok, "w.yaml": body},
                ["sweep", "w.yaml", "--out", "out", "-q"],
                r"(w|s|nope)\.yaml:\d+:\d+|w\.yaml:|nope\.yaml",
            )
        )
    return cases


# -- files a scenario names besides traces: a fitted cost profile, measured tables, model/GPU spec files --------
PROFILE_OK = "format: servesim-profile/1\nparams: {iteration_overhead_s: 0.001}\n"


def named_file_cases() -> list[Case]:
    bad = r"not a servesim profile: "
    profiles: dict[str, tuple[str | bytes, str]] = {
        "binary": (b"\x89PNG\r\n\x1a\n" + bytes(32), r"p\.yaml:3:1: binary"),  # the first NUL: line 3
        "nul": (PROFILE_OK.encode() + b"\x00", r"p\.yaml:3:1: binary"),
        "latin1": ("params: {}\nnote: caf\xe9\n".encode("latin-1"), r"p\.yaml:2:\d+: not UTF-8"),
        "utf16": (PROFILE_OK.encode("utf-16"), r"p\.yaml:1:1: UTF-16"),
        "syntax": ("params: {iteration_overhead_s: [\n", r"p\.yaml:\d+:\d+: invalid YAML"),
        "list": ("- 1\n", r"p\.yaml:1:1: not a servesim profile: \(top level\)"),
        "empty": ("", r"p\.yaml:1:1: empty file"),
        "unknown-field": (
            "params: {iteration_overhead: 0.001}\n",
            r"p\.yaml:1:\d+: " + bad + r"params\.iteration_overhead: unkn",
        ),
        "negative": (
            "params: {iteration_overhead_s: -1}\n",
            r"p\.yaml:1:\d+: " + bad + r"params\.iteration_overhead_s",
        ),
        "format": ("format: other/9\n", r"p\.yaml:1:9: not a servesim profile: format"),
        "dup": ("params: {}\nparams: {}\n", r"p\.yaml:2:1: invalid YAML: .*duplicate"),
        "bomb": (bomb(9, 9, "fit"), r"p\.yaml:\d+:\d+: invalid YAML: aliases"),
    }
    out = []
    for k, (body, expect) in profiles.items():
        sc = dump(with_value("cost_model", {"kind": "roofline", "profile": "p.yaml"}))
        out.append(Case(f"profile-{k}", {SC: sc, "p.yaml": body}, ["run", SC, "--out", "out", "-q"], expect))
    for k, v in {"missing": "nope.yaml", "dir": "d", "tables-missing": "nope-dir"}.items():
        key = "tables" if k.startswith("tables") else "profile"
        sc = dump(with_value("cost_model", {"kind": "table", key: v}))
        argv = ["run", SC, "--out", "out", "-q"]
        out.append(Case(f"profile-{k}", {SC: sc, "d/x": ""}, argv, AT_SC + f"cost_model.{key}"))
    specs: dict[str, tuple[str | bytes | None, str]] = {
        "model-spec-binary": (b"\x00\x01", r"m\.yaml:1:1: binary"),
        "model-spec-field": ("num_layers: 4\nhidden_size: wide\n", r"m\.yaml:2:14: model\.hidden_size"),
        "model-spec-missing": (None, AT_SC + r"model: .*m\.yaml: file not found"),
        "model-json-bad": ('{"hidden_size": }', AT_SC + r"model: .*m\.json:1:\d+: not valid JSON"),
    }
    for k, (spec, expect) in specs.items():
        name = "m.json" if "json" in k else "m.yaml"
        files: dict[str, str | bytes] = {SC: dump(with_value("model", name))}
        if spec is not None:
            files[name] = spec
        out.append(Case(k, files, ["run", SC, "--out", "out", "-q"], expect))
    return out


# -- sizes: files, sweeps and worker pools that would take minutes or exhaust the host -------------------------
def size_cases() -> list[Case]:
    ok = {SC: dump(BASE)}
    big_list = "workload:\n  num_requests: 10\n  classes:\n" + "  - {name: c, share: 1}\n" * 6000  # 138 KiB
    sweep = ["sweep", "w.yaml", "--out", "out", "-q"]
    grid = {"base": SC, "grid": {"seed": list(range(200)), "cluster.instances": list(range(1, 101))}}
    return [
        run_case("size-scenario-138k", big_list, r"s\.yaml: 1\d\d KiB is too big"),
        run_case("size-comments-1m", "# x\n" * 300_000, r"s\.yaml: 1,172 KiB is too big"),
        Case(
            "size-spec-file",
            {SC: dump(with_value("model", "m.yaml")), "m.yaml": "#\n" * 70_000},
            ["run", SC, "--out", "out", "-q"],
            r"m\.yaml: 137 KiB is too big",
        ),
        Case("size-sweep-grid", {**ok, "w.yaml": dump(grid)}, sweep, r"w\.yaml:\d+:\d+: grid: 20,000 grid cells"),
        Case(
            "size-sweep-zip",
            {**ok, "w.yaml": dump({"base": SC, "zip": {"seed": list(range(10_001))}})},
            sweep,
            r"w\.yaml:\d+:\d+: zip: .* 10,001 runs",
        ),
        Case(
            "size-sweep-grid-x-reps",
            {**ok, "w.yaml": dump({**grid, "grid": {"seed": list(range(11))}, "replications": 1000})},
            sweep,
            r"w\.yaml:\d+:\d+: replications: .* 11,000 runs",
        ),
        Case(
            "size-sweep-reps",
            {**ok, "w.yaml": dump({"base": SC, "replications": 10**9})},
            sweep,
            r"w\.yaml:\d+:\d+: replications",
        ),
        Case(
            "size-sweep-workers",
            {**ok, "w.yaml": dump({"base": SC, "grid": {"seed": [1, 2]}})},
            [*sweep, "--workers", "100000"],
            r"--workers 100000: at most",
        ),
    ]


DEV_ZERO_TRACE = {"kind": "trace", "path": "/dev/zero", "format": "csv"}


def more_option_cases() -> list[Case]:
    """Options and paths in the way found by probing after the first corpus: each named on its one line."""
    ok = {SC: dump(BASE), "w.yaml": dump({"base": SC, "grid": {"seed": [1, 2]}})}
    cq = ["check-queueing", "--rho", "0.5"]
    est = ["estimate", "--model", "llama-3.1-8b", "--hardware", "h100", "--prefill-tokens", "64"]
    return [
        Case("path-runs-is-a-file-run", {**ok, "runs": "x"}, ["run", SC, "-q"], r"--out runs/hostile: runs is a file"),
        Case("path-runs-is-a-file-sweep", {**ok, "runs": "x"}, ["sweep", "w.yaml", "-q"], r"--out .*runs is a file"),
        Case("path-sweep-out-file", {**ok, "o": "x"}, ["sweep", "w.yaml", "-q", "--out", "o"], r"--out .*o: is a file"),
        Case("cq-requests-huge", {}, [*cq, "--requests", "1000000000000"], r"--requests: expected"),
        Case("cq-replications-huge", {}, [*cq, "--replications", "100000000"], r"--replications: expected"),
        Case("cq-workers-huge", {}, [*cq, "--workers", "100000"], r"--workers: expected"),
        Case("cq-seed-negative", {}, [*cq, "--seed", "-1"], r"--seed: expected"),
        Case("path-scenario-dev-zero", {}, ["run", "/dev/zero", "--out", "out", "-q"], r"/dev/zero: not a regular"),
        Case("path-sweep-dev-urandom", {}, ["sweep", "/dev/urandom", "--out", "out", "-q"], r"/dev/urandom: not a reg"),
        Case(
            "path-trace-dev-zero",
            {SC: dump(with_value("workload.arrival", {"kind": "trace", "path": "/dev/zero", "format": "csv"}))},
            ["run", SC, "--out", "out", "-q"],
            AT_SC + r"path: /dev/zero is not a regular file",
        ),
        Case(
            "path-sweep-trace-dev-zero",
            {**ok, "w.yaml": dump({"base": SC, "grid": {"workload.arrival": [DEV_ZERO_TRACE]}})},
            ["sweep", "w.yaml", "--out", "out", "-q"],
            r"w\.yaml:\d+:\d+: workload\.arrival\.path: /dev/zero is not a regular file",
        ),
        *[
            Case(f"sweep-plot-{k}", ok, ["sweep", "w.yaml", "--out", "o", "-q", "--plot", v], r"--plot .*no such col")
            for k, v in {
                "x": "x=nope y=goodput_rps",
                "y": "x=seed y=ttft_p99_s+nope",
                "hue": "x=seed y=goodput_rps hue=nope",
                "col": "x=seed,y=goodput_rps,col=nope",
                "row": "x=seed y=goodput_rps row=Seed",
            }.items()
        ],
        Case("schema-out-under-file", {"f": "x"}, ["schema", "--out", "f/s.json"], r"--out f/s\.json: cannot write"),
        Case("schema-out-dir", {"d/x": ""}, ["schema", "--out", "d"], r"--out d: cannot write"),
        Case(
            "regress-baseline-under-file",
            {"rg/s.yaml": dump(BASE), "f": "x"},
            ["regress", "rg", "--baseline", "f/b.json", "--update"],
            r"--baseline f: is a file",
        ),
        Case(
            "regress-baseline-dir",
            {"rg/s.yaml": dump(BASE), "d/x": ""},
            ["regress", "rg", "--baseline", "d", "--update"],
            r"--baseline d: is a directory",
        ),
        Case(
            "est-tp-0", {}, [*est, "--tp", "0"], r"^error: --tp: Input should be greater than or equal to 1; found 0$"
        ),
        Case(
            "est-hardware-markup",
            {},
            [*est[:3], "--hardware", "[/x]"],
            r"^error: --hardware: unknown hardware .\[/x\].; known: [^;]*$",
        ),
        Case("est-cost-model", {}, [*est, "--cost-model", "nope"], r"^error: --cost-model: Input tag .nope."),
    ]


def all_cases() -> list[Case]:
    from tests.hostile_residuals import residual_cases  # it builds on this module's helpers

    return [
        *value_cases(),
        *structure_cases(),
        *physics_cases(),
        *yaml_cases(),
        *encoding_cases(),
        *trace_cases(),
        *option_cases(),
        *named_file_cases(),
        *size_cases(),
        *more_option_cases(),
        *residual_cases(),
    ]
