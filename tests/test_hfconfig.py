"""Loading a model from a Hugging Face config.json: the dialects of the catalogue's families, and one-line
errors for files that cannot be used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hwprofiles import catalog
from hwprofiles.hfconfig import load_hf_config
from sim.errors import ServesimError

# Key facts of published config.json files (trimmed to the keys the loader reads).
DEEPSEEK_V3 = {
    "_name_or_path": "deepseek-ai/DeepSeek-V3",
    "model_type": "deepseek_v3",
    "num_hidden_layers": 61,
    "hidden_size": 7168,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "moe_layer_freq": 1,
    "kv_lora_rank": 512,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
}
LLAMA_31_8B = {
    "model_type": "llama",
    "num_hidden_layers": 32,
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
}


def _write(tmp_path: Path, cfg: object, name: str = "config.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(cfg), encoding="utf-8")
    return p


def test_dense_config_matches_catalogue_and_derives_head_dim(tmp_path: Path) -> None:
    spec = load_hf_config(_write(tmp_path, LLAMA_31_8B))
    assert spec.head_dim == 128  # derived: hidden / heads (the config omits it)
    assert spec.num_params == catalog.model("llama-3.1-8b").num_params


def test_mla_moe_config_matches_catalogue(tmp_path: Path) -> None:
    spec = load_hf_config(_write(tmp_path, DEEPSEEK_V3))
    ref = catalog.model("deepseek-v3")
    assert spec.head_dim == 192 and spec.is_mla and spec.num_shared_experts == 1
    assert spec.num_params == ref.num_params
    assert spec.kv_bytes_per_token() == ref.kv_bytes_per_token()
    assert spec.name == "deepseek-v3"


def test_layer_types_and_text_config(tmp_path: Path) -> None:
    gpt_oss = {
        "model_type": "gpt_oss",
        "num_hidden_layers": 4,
        "hidden_size": 2880,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "intermediate_size": 2880,
        "num_local_experts": 32,
        "num_experts_per_tok": 4,
        "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"] * 2,
        "vocab_size": 201088,
        "max_position_embeddings": 131072,
    }
    spec = load_hf_config(_write(tmp_path, {"text_config": gpt_oss, "vision_config": {}}))
    assert (spec.attention_pattern, spec.sliding_window, spec.moe_intermediate_size) == ("LF", 128, 2880)
    # 2 full layers hold every token, 2 sliding layers at most 128 of a 1024-token sequence.
    per_layer = 8 * (64 + 64) * 2
    assert spec.kv_bytes_per_token(context=1024) == pytest.approx(per_layer * (2 + 2 * 128 / 1024))


def test_model_accepts_a_config_path(tmp_path: Path) -> None:
    p = _write(tmp_path, LLAMA_31_8B)
    assert catalog.model(str(p)).num_layers == 32


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"hidden_size": 4096}), "lacks 'num_hidden_layers'"),
        (json.dumps({**LLAMA_31_8B, "num_experts_per_tok": 4, "num_local_experts": 2}), "no model servesim can size"),
        # a DSA config (index_topk) without its indexer's heads: an error, not a free indexer
        (json.dumps({**DEEPSEEK_V3, "index_topk": 2048, "index_head_dim": 128}), "lacks 'index_n_heads'"),
        (json.dumps({**DEEPSEEK_V3, "index_topk": 2048, "index_n_heads": 0}), "lacks 'index_n_heads'"),
    ],
)
def test_bad_config_is_one_line(tmp_path: Path, content: str, needle: str) -> None:
    p = tmp_path / "config.json"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ServesimError) as e:
        load_hf_config(p)
    msg = str(e.value)
    assert needle in msg and str(p) in msg and "\n" not in msg


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ServesimError, match=r"cannot read config\.json"):
        catalog.model(str(tmp_path / "nope" / "config.json"))


def test_edited_config_is_seen_within_one_process(tmp_path: Path) -> None:
    """A notebook or a sweep edits config.json between runs: the catalogue's cache is keyed on the contents,
    so the edit is seen even at the same size and modification time, and an unchanged file is parsed once."""
    import sim

    p = _write(tmp_path, LLAMA_31_8B)
    first = catalog.model(str(p))
    assert first.num_layers == 32 and catalog.model(str(p)) is first  # unchanged: the cached spec
    st = p.stat()
    p.write_text(json.dumps({**LLAMA_31_8B, "num_hidden_layers": 40}), encoding="utf-8")  # same size
    assert p.stat().st_size == st.st_size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same modification time
    assert catalog.model(str(p)).num_layers == 40
    data = {
        "model": str(p),
        "hardware": "h100-sxm",
        "workload": {
            "num_requests": 1,
            "arrival": {"kind": "poisson", "rate": 1},
            "lengths": {"kind": "fixed", "prompt": 8, "output": 8},
        },
    }
    assert sim.load_scenario(data).model_spec.num_layers == 40


def test_dsa_config_without_indexer_heads_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sim.tools.cli import app

    p = _write(tmp_path, {**DEEPSEEK_V3, "index_topk": 2048})
    r = CliRunner().invoke(app, ["estimate", "--model", str(p), "--hardware", "h200", "--tp", "8"])
    assert r.exit_code == 2 and "lacks 'index_n_heads'" in r.output and str(p) in r.output
    good = _write(tmp_path, {**DEEPSEEK_V3, "index_topk": 2048, "index_n_heads": 64}, "good.json")
    assert load_hf_config(good).index_n_heads == 64


def test_spec_with_topk_on_mla_needs_indexer_heads() -> None:
    from pydantic import ValidationError

    from hwprofiles.specs import ModelSpec

    v3 = catalog.model("deepseek-v3").model_dump(exclude={"num_params"})
    with pytest.raises(ValidationError, match="needs index_n_heads > 0"):
        ModelSpec.model_validate({**v3, "attention_topk": 2048})
    assert ModelSpec.model_validate({**v3, "attention_topk": 2048, "index_n_heads": 64}).index_n_heads == 64
