"""`model:` (and `speculative.draft_model`, `hardware`, pool `hardware`) naming a spec YAML or a Hugging Face
config.json inside a scenario: read relative to the scenario's folder, equal to the same spec written inline,
and a bad file is one line naming the file:line:col of the mistake (or the scenario's key that names it)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

import sim
from sim.errors import ServesimError
from sim.tools.cli import run_cli
from sim.tools.sweep.spec import scenario_hash

MODEL = {"num_layers": 4, "hidden_size": 1024, "num_heads": 16, "num_kv_heads": 4,
         "intermediate_size": 4096, "vocab_size": 32000, "max_context": 4096}  # fmt: skip
HF = {"model_type": "llama", "hidden_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 16,
      "num_key_value_heads": 4, "intermediate_size": 4096, "vocab_size": 32000,
      "max_position_embeddings": 4096}  # fmt: skip
GPU = {"memory_bytes": 8.0e10, "bf16_flops": 1.0e15, "mem_bw": 3.0e12, "intra_node_bw": 4.5e11,
       "host_link_bw": 6.4e10, "price_per_hour": 2.0, "tdp_w": 700}  # fmt: skip


def scenario(model: object, **more: object) -> dict[str, object]:
    return {
        "name": "spec",
        "model": model,
        "hardware": "h100-sxm",
        "workload": {
            "num_requests": 20,
            "arrival": {"kind": "poisson", "rate": 5.0},
            "lengths": {"kind": "fixed", "prompt": 64, "output": 8},
        },
        **more,
    }


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False) if path.suffix != ".json" else json.dumps(data))
    return path


def at(path: Path, needle: str) -> str:
    """`path:line:col` of `needle`'s first occurrence, or of the value of the key when `needle` is `key:`."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if needle.endswith(":") and line.startswith(needle):
            return f"{path}:{n}:{len(needle) + 2}"
        if not needle.endswith(":") and needle in line:
            return f"{path}:{n}:{line.index(needle) + 1}"
    raise AssertionError(needle)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a folder that is not the scenario's, so a path read from the working directory fails."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return tmp_path


def test_spec_yaml_is_relative_to_the_scenario_and_equals_the_inline_spec(elsewhere: Path) -> None:
    write(elsewhere / "exp" / "models" / "tiny.yaml", MODEL)
    f = write(elsewhere / "exp" / "s.yaml", scenario("models/tiny.yaml"))
    inline = sim.load_scenario(scenario({"name": "tiny", **MODEL}))  # inline too: head_dim derived
    sc = sim.load_scenario(f)
    assert sc.model_spec == inline.model_spec  # name from the file's stem, head_dim = 1024 / 16
    assert sc.model_spec.head_dim == 64
    a, b = sim.run(sc).summary, sim.run(inline).summary
    assert a["counts"]["completed"] == b["counts"]["completed"] == 20
    assert a["metrics"] == b["metrics"]
    # the dumped scenario carries the spec itself, so a saved run reloads without the file
    again = sim.load_scenario(sc)
    assert again.model_spec == sc.model_spec


def test_head_dim_is_derived_only_when_the_heads_divide_the_width() -> None:
    sc = sim.load_scenario(scenario({"name": "w", **MODEL, "hidden_size": 2048, "num_heads": 32}))
    assert sc.model_spec.head_dim == 64
    with pytest.raises(ServesimError, match=r"model: missing required fields: head_dim|model.head_dim: Field"):
        sim.load_scenario(scenario({"name": "w", **MODEL, "hidden_size": 1000}))  # 1000 / 16 is not whole
    explicit = sim.load_scenario(scenario({"name": "w", **MODEL, "head_dim": 128}))
    assert explicit.model_spec.head_dim == 128  # a given head_dim is kept (MLA and Gemma differ from h / n)


def test_config_json_is_relative_to_the_scenario_and_stored_absolute(elsewhere: Path) -> None:
    cfg = write(elsewhere / "exp" / "hf" / "config.json", HF)
    f = write(elsewhere / "exp" / "s.yaml", scenario("hf/config.json"))
    sc = sim.load_scenario(f)
    assert sc.model == str(cfg.resolve())
    assert (sc.model_spec.num_layers, sc.model_spec.head_dim, sc.model_spec.num_kv_heads) == (4, 64, 4)
    # an edited config.json changes the sweep cache key (the file's bytes are hashed, not only its path)
    before = scenario_hash(sc)
    write(cfg, {**HF, "num_hidden_layers": 8})
    assert scenario_hash(sc) != before


def test_draft_model_and_pool_hardware_files(elsewhere: Path) -> None:
    write(elsewhere / "exp" / "draft.yaml", {**MODEL, "num_layers": 2})
    write(elsewhere / "exp" / "gpus" / "mygpu.yaml", GPU)
    spec = {"kind": "draft_model", "num_tokens": 2, "acceptance": 0.7, "draft_model": "draft.yaml"}
    f = write(elsewhere / "exp" / "s.yaml", scenario("llama-3.1-8b", speculative=spec, hardware="gpus/mygpu.yaml"))
    sc = sim.load_scenario(f)
    assert sc.speculative is not None
    draft = sc.speculative.draft_model
    assert draft is not None and not isinstance(draft, str)
    assert draft.num_layers == 2
    assert (sc.gpu_spec.name, sc.gpu_spec.bf16_flops) == ("mygpu", 1.0e15)
    pools = {"prefill": {"instances": 1, "hardware": "gpus/mygpu.yaml"}, "decode": {"instances": 1}}
    f = write(elsewhere / "exp" / "d.yaml", scenario("llama-3.1-8b", cluster=pools))
    sc = sim.load_scenario(f)
    assert sc.cluster.prefill is not None and not isinstance(sc.cluster.prefill.hardware, str)
    assert sc.cluster.prefill.hardware is not None and sc.cluster.prefill.hardware.tdp_w == 700


def test_set_model_file_is_relative_to_the_working_directory(elsewhere: Path) -> None:
    write(elsewhere / "elsewhere" / "here.yaml", MODEL)
    f = write(elsewhere / "exp" / "s.yaml", scenario("llama-3.1-8b"))
    sc = sim.load_scenario(f, ["model=here.yaml"])
    assert sc.model_spec.name == "here"


def cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = run_cli(argv)
    return rc, err.getvalue()


BAD_SPECS = [  # (file name, contents, the offending key, field)
    ("m.yaml", {**MODEL, "num_layers": -4}, "num_layers:", "model.num_layers"),
    ("m.yaml", {**MODEL, "hidden_size": "wide"}, "hidden_size:", "model.hidden_size"),
    ("m.yaml", {**MODEL, "num_kv_heads": 3}, "num_kv_heads:", "model.num_kv_heads"),  # limits.py check
    ("m.yaml", {**MODEL, "vocab_size": float("inf")}, "vocab_size:", "model.vocab_size"),
    ("m.yaml", {**MODEL, "bogus": 1}, "bogus:", "model.bogus"),
    ("m.yaml", {**MODEL, "num_layers": 10**6}, "num_layers:", "model.num_layers"),  # limits.py bound
]


@pytest.mark.parametrize(("name", "body", "needle", "field"), BAD_SPECS)
def test_bad_spec_file_is_one_line_at_its_own_line_and_column(
    elsewhere: Path, name: str, body: dict[str, object], needle: str, field: str
) -> None:
    spec = write(elsewhere / "exp" / name, body)
    f = write(elsewhere / "exp" / "s.yaml", scenario(name))
    rc, err = cli(["run", str(f), "--out", "out", "-q"])
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    want = at(spec, needle)
    assert err.startswith(f"error: {want}: {field}"), (err, want)
    assert not (elsewhere / "elsewhere" / "out").exists()


@pytest.mark.parametrize(
    ("files", "model", "expect"),
    [
        ({}, "nope.yaml", r"nope\.yaml: file not found"),
        ({}, "nope/config.json", r"config\.json: file not found"),
        ({"m.yaml": "num_layers: [4\n"}, "m.yaml", r"m\.yaml:2:1: invalid YAML"),
        ({"m.yaml": "- 1\n"}, "m.yaml", r"m\.yaml:1:1: expected a mapping of model fields"),
        ({"m.yaml": b"\xff\xfe\x00"}, "m.yaml", r"m\.yaml:1:1: UTF-16"),
        ({"c.json": "{nope"}, "c.json", r"c\.json:1:2: not valid JSON"),
        ({"c.json": "[1]"}, "c.json", r"c\.json: expected a JSON object"),
        ({"c.json": json.dumps({"model_type": "llama"})}, "c.json", r"c\.json: config\.json lacks"),
    ],
)
def test_unreadable_spec_file_names_the_scenario_key_and_the_file(
    elsewhere: Path, files: dict[str, str | bytes], model: str, expect: str
) -> None:
    for rel, body in files.items():
        p = elsewhere / "exp" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body) if isinstance(body, bytes) else p.write_text(body)
    f = write(elsewhere / "exp" / "s.yaml", scenario(model))
    with pytest.raises(ServesimError) as e:
        sim.load_scenario(f)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{at(f, model)}: model: "), msg
    assert __import__("re").search(expect, msg), msg
