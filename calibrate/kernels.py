"""The operators of a Llama-style decoder in plain torch, shared by the harness and the CPU real run.

The harness times exactly these functions and `calibrate.realrun` serves a model built from them, so a
table measured here is a table of the kernels the real loop runs. Per layer: RMSNorm, fused QKV GEMM,
rotary embedding, attention (its KV-cache write included), output GEMM, residual add, RMSNorm, fused
gate+up GEMM, SiLU×gate, down GEMM, residual add; per iteration: embedding lookup, and the LM head
(final norm, GEMM, greedy argmax) over the sequences that produce a token. torch is imported lazily.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hwprofiles.specs import ModelSpec


def torch_mod() -> Any:
    """torch, or a one-line error telling how to install it (the `calibrate` extra)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        from sim.errors import ServesimError

        raise ServesimError("calibration needs torch: pip install 'servesim[calibrate]' (or torch>=2.3)") from None
    return torch


DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class Shapes:
    """Per-device widths of a model under tp-way sharding (heads split across devices)."""

    h: int
    nq: int
    nkv: int
    d: int
    inter: int
    vocab: int
    gated: bool

    @classmethod
    def of(cls, m: ModelSpec, tp: int = 1) -> Shapes:
        return cls(
            h=m.hidden_size,
            nq=max(1, m.num_heads // tp),
            nkv=max(1, m.num_kv_heads // tp),
            d=m.head_dim,
            inter=m.intermediate_size // tp,
            vocab=m.vocab_size // tp,
            gated=m.gated_mlp,
        )

    @property
    def qkv(self) -> int:
        return (self.nq + 2 * self.nkv) * self.d


class Weights:
    """Random weights of one model on one device, from an explicitly seeded torch generator."""

    def __init__(self, spec: ModelSpec, tp: int, device: str, dtype: str, seed: int, layers: int | None = None):
        torch = torch_mod()
        self.torch = torch
        self.s = s = Shapes.of(spec, tp)
        self.device, self.dtype = torch.device(device), getattr(torch, DTYPES[dtype])
        gen = torch.Generator(device="cpu").manual_seed(seed)
        up = (2 if s.gated else 1) * s.inter

        def mat(out: int, inp: int) -> Any:
            w = torch.randn(out, inp, generator=gen) / math.sqrt(inp)
            return w.to(self.device, self.dtype)

        def ones(n: int) -> Any:
            return torch.ones(n, dtype=self.dtype, device=self.device)

        self.layers = [
            {
                "ln1": ones(s.h),
                "wqkv": mat(s.qkv, s.h),
                "wo": mat(s.h, s.nq * s.d),
                "ln2": ones(s.h),
                "wup": mat(up, s.h),
                "wdown": mat(s.h, s.inter),
            }
            for _ in range(spec.num_layers if layers is None else layers)
        ]
        self.emb = mat(s.vocab, s.h)
        self.norm = ones(s.h)
        self.head = mat(s.vocab, s.h)
        half = s.d // 2
        inv = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float32) / half))
        pos = torch.arange(spec.max_context, dtype=torch.float32)
        ang = torch.outer(pos, inv)
        self.cos = ang.cos().to(self.device, self.dtype)
        self.sin = ang.sin().to(self.device, self.dtype)

    def new_cache(self, tokens: int) -> list[tuple[Any, Any]]:
        """One sequence's KV cache: per layer (K, V) of shape [kv heads, tokens, head dim]."""
        s, t = self.s, self.torch
        return [
            (
                t.empty(s.nkv, tokens, s.d, dtype=self.dtype, device=self.device),
                t.empty(s.nkv, tokens, s.d, dtype=self.dtype, device=self.device),
            )
            for _ in self.layers
        ]


# -- operators (each is what the harness times) ----------------------------------------------------------
def rmsnorm(torch: Any, x: Any, w: Any, eps: float = 1e-6) -> Any:
    var = x.float().pow(2).mean(-1, keepdim=True)
    return (x.float() * torch.rsqrt(var + eps)).to(x.dtype) * w


def linear(torch: Any, x: Any, w: Any) -> Any:
    return torch.nn.functional.linear(x, w)


def rope(torch: Any, q: Any, k: Any, cos: Any, sin: Any, pos: Any) -> tuple[Any, Any]:
    """Rotate-half rotary embedding of q [T, nq, d] and k [T, nkv, d] at positions `pos` [T]."""
    c, s = cos[pos].unsqueeze(1), sin[pos].unsqueeze(1)

    def rot(x: Any) -> Any:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * c - x2 * s, x2 * c + x1 * s), dim=-1)

    return rot(q), rot(k)


def act(torch: Any, gu: Any, gated: bool) -> Any:
    if not gated:
        return torch.nn.functional.gelu(gu)
    g, u = gu.chunk(2, dim=-1)
    return torch.nn.functional.silu(g) * u


def attn_prefill(torch: Any, q: Any, k: Any, v: Any, cache: tuple[Any, Any], c: int) -> Any:
    """One sequence: write its q new tokens' K/V after c cached ones, attend causally; q [q, nq, d]."""
    kc, vc = cache
    n = q.shape[0]
    kc[:, c : c + n].copy_(k.transpose(0, 1))
    vc[:, c : c + n].copy_(v.transpose(0, 1))
    qh = q.transpose(0, 1).unsqueeze(0)
    kh, vh = kc[:, : c + n].unsqueeze(0), vc[:, : c + n].unsqueeze(0)
    gqa = qh.shape[1] != kh.shape[1]
    if c == 0:
        out = torch.nn.functional.scaled_dot_product_attention(qh, kh, vh, is_causal=True, enable_gqa=gqa)
    else:  # new token i sees the c cached tokens and new tokens 0..i (bottom-right causal mask)
        mask = torch.ones(n, c + n, dtype=torch.bool, device=q.device).tril(diagonal=c)
        out = torch.nn.functional.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, enable_gqa=gqa)
    return out[0].transpose(0, 1).reshape(n, -1)


def attn_decode(torch: Any, q: Any, k: Any, v: Any, caches: list[tuple[Any, Any]], ctx: list[int]) -> Any:
    """n sequences, one new token each: write K/V at position ctx[i], attend over ctx[i] + 1 tokens."""
    outs = []
    for i, (kc, vc) in enumerate(caches):
        p = ctx[i]
        kc[:, p].copy_(k[i])
        vc[:, p].copy_(v[i])
        qh = q[i].unsqueeze(0).unsqueeze(2)  # [1, nq, 1, d]
        kh, vh = kc[:, : p + 1].unsqueeze(0), vc[:, : p + 1].unsqueeze(0)
        out = torch.nn.functional.scaled_dot_product_attention(qh, kh, vh, enable_gqa=qh.shape[1] != kh.shape[1])
        outs.append(out.reshape(1, -1))
    return torch.cat(outs, dim=0)


def lm_head(torch: Any, w: Weights, x: Any) -> Any:
    """Final norm, logits and greedy next tokens for the last position of each sequence: x [seqs, h]."""
    return linear(torch, rmsnorm(torch, x, w.norm), w.head).argmax(dim=-1)


def forward(
    w: Weights,
    ids: Any,
    pos: Any,
    prefill: list[tuple[int, int, list[tuple[Any, Any]]]],
    decode: list[list[tuple[Any, Any]]],
    decode_ctx: list[int],
) -> Any:
    """One iteration: tokens `ids` [T] at `pos`, the first Σq for prefill chunks (q, c, cache) in order,
    then one token per decoding sequence (cache, context). Returns the next token of every sequence."""
    torch, s = w.torch, w.s
    x = w.emb[ids]
    n_pre = sum(q for q, _, _ in prefill)
    for li, lw in enumerate(w.layers):
        hn = rmsnorm(torch, x, lw["ln1"])
        qkv = linear(torch, hn, lw["wqkv"])
        t = qkv.shape[0]
        q = qkv[:, : s.nq * s.d].view(t, s.nq, s.d)
        k = qkv[:, s.nq * s.d : (s.nq + s.nkv) * s.d].view(t, s.nkv, s.d)
        v = qkv[:, (s.nq + s.nkv) * s.d :].view(t, s.nkv, s.d)
        q, k = rope(torch, q, k, w.cos, w.sin, pos)
        outs, off = [], 0
        for n, c, cache in prefill:
            outs.append(attn_prefill(torch, q[off : off + n], k[off : off + n], v[off : off + n], cache[li], c))
            off += n
        if decode:
            outs.append(
                attn_decode(torch, q[n_pre:], k[n_pre:], v[n_pre:], [cache[li] for cache in decode], decode_ctx)
            )
        a = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
        x = x + linear(torch, a, lw["wo"])
        hn = rmsnorm(torch, x, lw["ln2"])
        x = x + linear(torch, act(torch, linear(torch, hn, lw["wup"]), s.gated), lw["wdown"])
    last = []
    off = 0
    for n, _, _ in prefill:
        off += n
        last.append(off - 1)
    last.extend(range(n_pre, n_pre + len(decode)))
    return lm_head(torch, w, x[torch.tensor(last, device=x.device)])
