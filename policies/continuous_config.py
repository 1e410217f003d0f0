"""The YAML configs of `fcfs` and `sarathi` (`policies.continuous`). Kept apart because the compiled core
(`sim.core.native`) compiles `policies.continuous`, and mypyc cannot compile a pydantic model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FCFSConfig(_Strict):
    """vLLM continuous batching: prefill-first, whole prompts, no mixing of prefill and decode."""

    kind: Literal["fcfs"] = "fcfs"
    max_num_seqs: int = Field(default=256, ge=1, description="most requests running at once")
    max_num_batched_tokens: int = Field(default=8192, ge=1, description="prefill tokens per iteration")


class SarathiConfig(_Strict):
    """Sarathi-Serve chunked prefill: decodes first, then prefill chunks up to a token budget."""

    kind: Literal["sarathi"] = "sarathi"
    max_num_seqs: int = Field(default=256, ge=1)
    token_budget: int = Field(default=512, ge=1, description="tokens per iteration (decodes + prefill chunks)")
