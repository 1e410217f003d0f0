"""A ModelSpec from a Hugging Face `config.json`, so any published model can be simulated without a catalogue entry.

Covers the config dialects of the catalogue's families: Llama/Mistral/Qwen (dense), Mixtral/Qwen-MoE/gpt-oss/
MiniMax (routed experts), DeepSeek/Kimi/GLM-5 (MLA, shared experts, leading dense layers), Llama-4 (chunked
attention, interleaved MoE), Qwen3.5/Qwen3-Next (linear-attention layers), and nested `text_config` (VLMs).
A file that cannot be read or lacks a required key is one `ServesimError` line naming the file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hwprofiles.errors import ServesimError
from hwprofiles.specs import GPUSpec, ModelSpec

_LAYER_KIND = {
    "full_attention": "F",
    "attention": "F",
    "sliding_attention": "L",
    "chunked_attention": "L",
    "linear_attention": "G",
}


# Families whose MLP is up -> activation -> down (2 matrices); everything else in the catalogue is gated.
_TWO_MATRIX_MLP = ("opt", "bloom", "gpt2", "gpt_neox", "gptj", "falcon", "phi")


def is_config_path(name: str) -> bool:
    """A model string that names a config file rather than a catalogue entry."""
    return name.strip().lower().endswith(".json")


def _first(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def _pattern(cfg: dict[str, Any], layers: int) -> tuple[str, int | None]:
    """(attention_pattern, window) from layer_types, full_attention_interval or Llama-4's chunked layers."""
    types = cfg.get("layer_types")
    window = _first(cfg, "sliding_window", "attention_chunk_size")
    if isinstance(types, list) and types:
        kinds = "".join(_LAYER_KIND.get(str(t), "F") for t in types)
        for n in range(1, len(kinds) + 1):  # shortest period that reproduces the list
            if len(kinds) % n == 0 and kinds[:n] * (len(kinds) // n) == kinds:
                kinds = kinds[:n]
                break
        return kinds, (int(window) if "L" in kinds and window else None)
    interval = cfg.get("full_attention_interval")
    if interval and int(interval) > 1 and cfg.get("linear_num_value_heads"):
        return "G" * (int(interval) - 1) + "F", None
    chunk = cfg.get("attention_chunk_size")
    nope = cfg.get("no_rope_layers")
    if chunk and isinstance(nope, list) and nope:
        kinds = "".join("L" if flag else "F" for flag in nope[:layers])
        return kinds, int(chunk)
    if chunk and cfg.get("model_type", "").startswith("llama4"):
        return "LLLF", int(chunk)
    if window and cfg.get("use_sliding_window", True) and cfg.get("model_type") in ("mistral", "gemma2"):
        return "L", int(window)
    return "F", None


def spec_from_config(cfg: dict[str, Any], name: str, source: str = "") -> ModelSpec:
    """The ModelSpec a config dict describes (raises KeyError naming a missing required key)."""
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg, **cfg["text_config"]}
    raw_layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    if raw_layers is None:
        raise KeyError("num_hidden_layers")
    layers = int(raw_layers)
    hidden = int(cfg["hidden_size"])
    heads = int(_first(cfg, "num_attention_heads", "n_head", default=0)) or int(cfg["num_attention_heads"])
    kv_heads = int(_first(cfg, "num_key_value_heads", default=heads))
    rope = int(cfg.get("qk_rope_head_dim") or 0)
    mla = cfg.get("kv_lora_rank") is not None
    head_dim = int(cfg["qk_nope_head_dim"]) + rope if mla else int(_first(cfg, "head_dim", default=hidden // heads))
    experts = int(_first(cfg, "num_local_experts", "n_routed_experts", "num_experts", default=1) or 1)
    moe_w = _first(cfg, "moe_intermediate_size")
    dense_w = int(_first(cfg, "intermediate_size_mlp", "intermediate_size", "ffn_dim", default=4 * hidden))
    if experts > 1 and moe_w is None:  # Mixtral/gpt-oss/MiniMax/Llama-4 name the expert width intermediate_size
        moe_w = cfg.get("intermediate_size")
    pattern, window = _pattern(cfg, layers)
    fields: dict[str, Any] = {
        "name": name,
        "hf_id": str(cfg.get("_name_or_path", "")),
        "num_layers": layers,
        "hidden_size": hidden,
        "num_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "intermediate_size": dense_w,
        "vocab_size": int(cfg["vocab_size"]),
        "max_context": int(_first(cfg, "max_position_embeddings", "n_positions", "seq_length", default=4096)),
        "gated_mlp": cfg.get("model_type") not in _TWO_MATRIX_MLP,
        "num_experts": experts,
        "experts_per_token": int(_first(cfg, "num_experts_per_tok", "experts_per_token", default=1) or 1),
        "num_shared_experts": int(_first(cfg, "n_shared_experts", default=0) or 0),
        "n_group": int(cfg.get("n_group") or 1),
        "topk_group": int(cfg.get("topk_group") or 1),
        "moe_intermediate_size": int(moe_w) if moe_w else None,
        "first_dense_layers": int(_first(cfg, "first_k_dense_replace", default=0) or 0),
        "moe_layer_interval": int(_first(cfg, "interleave_moe_layer_step", "decoder_sparse_step", default=1) or 1),
        "attention_pattern": pattern,
        "sliding_window": window,
        "attention_topk": cfg.get("index_topk"),
        "tied_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "qk_norm_per_layer": bool(cfg.get("use_qk_norm")) and cfg.get("qk_norm_type") == "per_layer",
        "sources": [source] if source else [],
    }
    shared_w = cfg.get("shared_expert_intermediate_size")
    if shared_w:
        fields["num_shared_experts"] = max(1, fields["num_shared_experts"])
        fields["shared_expert_intermediate_size"] = int(shared_w)
    if cfg.get("model_type", "").startswith("llama4") and experts > 1:
        fields["num_shared_experts"] = 1  # every Llama-4 MoE layer has one shared expert (not in the config)
    if mla:
        fields.update(
            kv_lora_rank=int(cfg["kv_lora_rank"]),
            q_lora_rank=int(cfg["q_lora_rank"]) if cfg.get("q_lora_rank") else None,
            qk_rope_head_dim=rope,
            v_head_dim=int(cfg["v_head_dim"]),
        )
    if cfg.get("index_topk"):  # DSA's lightning indexer: without its heads the indexer would cost nothing
        if not cfg.get("index_n_heads"):
            raise KeyError("index_n_heads")
        fields["index_n_heads"] = int(cfg["index_n_heads"])
        fields["index_head_dim"] = int(cfg.get("index_head_dim") or 128)
    if "G" in pattern:
        fields.update(
            linear_num_key_heads=int(cfg["linear_num_key_heads"]),
            linear_num_value_heads=int(cfg["linear_num_value_heads"]),
            linear_head_dim=int(_first(cfg, "linear_key_head_dim", default=128)),
        )
    return ModelSpec.model_validate(fields)


def load_hf_config(path: str | Path) -> ModelSpec:
    """The model a Hugging Face config.json file describes; one-line ServesimError if it cannot be used."""
    p = Path(path).expanduser()
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ServesimError(f"model: {p}: cannot read config.json ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ServesimError(f"model: {p}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    if not isinstance(cfg, dict):
        raise ServesimError(
            f"model: {p}: expected a JSON object (a Hugging Face config.json), found {type(cfg).__name__}"
        )
    name = str(cfg.get("_name_or_path") or p.parent.name or p.stem).split("/")[-1].lower() or "model"
    try:
        return spec_from_config(cfg, name, source=str(p))
    except KeyError as e:
        raise ServesimError(f"model: {p}: config.json lacks {e.args[0]!r}, needed to size the model") from None
    except (TypeError, ValueError) as e:
        msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
        raise ServesimError(f"model: {p}: config.json describes no model servesim can size ({msg})") from None


def quantization_from_config(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The scenario `quantization` a checkpoint's config.json `quantization_config` declares, or None (none, or a
    method not read here: compressed-tensors, GPTQ, AWQ ... are set by hand). Read:
    - `quant_method: mxfp4` (openai/gpt-oss): the routed experts only (`modules_to_not_convert` lists self_attn,
      the router, embed_tokens and lm_head), weight-only MXFP4: `{experts: {weights: fp4}}`.
    - `quant_method: fp8` (DeepSeek-V3/R1, Qwen3-*-FP8 block FP8 with dynamic activation scales): W8A8.
    - `quant_method: modelopt` with `quant_algo` NVFP4 / FP8 (NVIDIA ModelOpt exports), `kv_cache_quant_algo: FP8`
      an FP8 KV cache.
    A skipped-module list (`modules_to_not_convert`, `exclude_modules`, `ignore`, `ignored_layers`) naming attention
    modules keeps attention in the model's dtype: `attention: {weights: bf16, activations: bf16}` (ModelOpt's
    DeepSeek recipe disables `*attn*`, examples/deepseek/ptq.py). The LM head and router are BF16 regardless."""
    q = cfg.get("quantization_config")
    if not isinstance(q, dict):
        return None
    method = str(q.get("quant_method") or "").lower()
    if method == "mxfp4":
        return {"experts": {"weights": "fp4"}}
    algo = str(q.get("quant_algo") or "").upper() if method == "modelopt" else ""
    if method == "fp8" or algo.startswith("FP8"):
        w = "fp8"
    elif algo == "NVFP4":
        w = "fp4"
    else:
        return None
    out: dict[str, Any] = {"weights": w, "activations": w}
    if str(q.get("kv_cache_quant_algo") or "").upper() == "FP8":
        out["kv_cache"] = "fp8"
    lists = [q.get(k) or [] for k in ("modules_to_not_convert", "exclude_modules", "ignore", "ignored_layers")]
    skipped = [m for v in lists for m in ([v] if isinstance(v, str) else v)]  # one pattern may stand alone
    if any("attn" in str(m) for m in skipped):
        out["attention"] = {"weights": "bf16", "activations": "bf16"}
    return out


def checkpoint_quantization(path: str | Path) -> dict[str, Any] | None:
    """`quantization_from_config` of a config.json file; a ModelOpt export whose config.json carries no
    `quantization_config` is read from the `hf_quant_config.json` beside it (`{"quantization": {"quant_algo": ...,
    "kv_cache_quant_algo": ..., "exclude_modules": [...]}}`). None when neither declares a precision read here."""
    p = Path(path)
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
        side = p.with_name("hf_quant_config.json")
        if isinstance(cfg, dict) and "quantization_config" not in cfg and side.is_file():
            mo = json.loads(side.read_text(encoding="utf-8")).get("quantization")
            cfg = {"quantization_config": {"quant_method": "modelopt", **mo}} if isinstance(mo, dict) else cfg
    except (OSError, json.JSONDecodeError, AttributeError):
        return None  # the model loader names an unreadable config.json; a damaged sidecar leaves the default
    return quantization_from_config(cfg) if isinstance(cfg, dict) else None


def weight_only_on(quant: dict[str, Any], gpu: GPUSpec) -> dict[str, Any]:
    """A checkpoint's precision as `gpu` runs it: activations of a width its tensor cores lack are BF16, the weights
    dequantised on the fly (vLLM's Marlin W8A16 / W4A16 kernels serve FP8 and FP4 checkpoints on GPUs without FP8 /
    FP4 cores), so a checkpoint read by itself never turns a scenario that ran into an error the user did not write."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in quant.items()}
    for part in (out, *(v for k, v in out.items() if k in ("attention", "experts") and isinstance(v, dict))):
        a = part.get("activations")
        if a is not None and a != "bf16" and gpu.peak_flops(str(a)) is None:
            part["activations"] = "bf16"
    return out
