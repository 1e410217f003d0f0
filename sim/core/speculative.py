"""Speculative decoding: a draft proposes k tokens per sequence, the target verifies them in one wider step.

Per decode step and sequence the number of accepted draft tokens is drawn from the scenario's
`speculative` stream: draft token i is accepted with probability a_i given that tokens 1..i−1 were, and the
first rejection ends the run; the verifier always adds one token of its own (the correction, or the bonus
when all k are accepted). So a sequence gains 1 + accepted tokens, in expectation 1 + Σ_i Π_{j≤i} a_j
(`expected_tokens`), never more than it has left to generate.

A step costs the draft plus the verification: `draft_model` runs k sequential decode steps of the draft
model over the batch; `eagle` / `mtp` run k steps of a one-layer head (the target's layer shape, one layer);
the verifier prices k + 1 query tokens per sequence over its cached context in the target's cost model
(an iteration of n chunks of k + 1 tokens; MLA models attend such short chunks in the absorbed form, as their
decode step does: `StructuredCost._absorbed`). The LM head is priced per sequence, not per verified position
(a verifier computes logits at all k + 1 positions: a known underestimate of k LM-head rows per sequence).

The engine runs speculative decoding per request, one step at a time: the aggregated lockstep cohort and
fast-forward are off for speculative runs (a sequence's progress per step is random, so a run of k steps
cannot be priced ahead). Each sequence reserves blocks for k + 1 new tokens before the step and gives
back what the rejected tokens did not use. Tokens reach the client in bursts: the step's time is spread
evenly over the tokens it emitted (each inter-token latency = step / tokens), TPOT is first to last token.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.core.late import Waitable, sleep_until
from sim.core.request import Request

if TYPE_CHECKING:
    from sim.core.batch import BatchPlan
    from sim.core.instance import Instance

DraftCost = Callable[[int, int], float]  # (sequences, Σ context) -> seconds of drafting k tokens for them


class VerifyChunk(tuple[int, int]):
    """A verifier's (k + 1, cached) chunk: a chunk to price, but no prompt (cost models graph it as decode)."""

    __slots__ = ()


def expected_tokens(rates: Sequence[float]) -> float:
    """Tokens a sequence gains per step in expectation: 1 + Σ_i Π_{j≤i} a_j."""
    total, run = 1.0, 1.0
    for a in rates:
        run *= a
        total += run
    return total


class Speculation:
    """One instance's speculative decoding: draws, draft cost, and the decode step."""

    def __init__(self, rates: Sequence[float], rng: np.random.Generator, draft: DraftCost) -> None:
        self.k = len(rates)
        self.rates = np.asarray(rates, dtype=np.float64)
        self.rng = rng
        self.draft = draft
        self.steps = 0  # sequence-steps verified
        self.tokens = 0  # tokens those steps emitted

    @property
    def lookahead(self) -> int:
        """New KV slots a decoding sequence needs before a step: its k drafts and the verifier's token."""
        return self.k + 1

    def draw(self, n: int) -> np.ndarray:
        """Accepted draft tokens of n sequences for one step (leading accepted positions)."""
        ok = self.rng.random((n, self.k)) < self.rates
        accepted: np.ndarray = np.cumprod(ok, axis=1).sum(axis=1)
        return accepted

    def verify_chunks(self, decoders: list[Request]) -> list[tuple[int, int]]:
        """The verifier's work: k + 1 query tokens per sequence over its cached context."""
        q = self.k + 1
        return [VerifyChunk((q, r.kv_tokens)) for r in decoders]

    def draft_s(self, decoders: list[Request]) -> float:
        return self.draft(len(decoders), sum(r.kv_tokens for r in decoders)) if decoders else 0.0

    def credit(self, inst: Instance, decoders: list[Request], t_end: float, finished: list[Request]) -> int:
        """Advance each decoder by its drawn tokens at `t_end`; free blocks the rejected drafts held.
        Returns the tokens emitted; those that generated their last token go to `finished`."""
        if not decoders:
            return 0
        accepted = self.draw(len(decoders)).tolist()
        itl, bs, freed, emitted = inst.log.itl, inst.block_size, 0, 0
        for req, acc in zip(decoders, accepted, strict=True):
            g = min(1 + int(acc), req.output - req.generated)
            itl.add_one((t_end - req.last_token) / g, g)
            req.generated += g
            req.kv_tokens += g
            req.last_token = t_end
            emitted += g
            keep = -(-req.kv_tokens // bs) - req.shared_blocks
            if req.blocks > keep:
                freed += req.blocks - keep
                req.blocks = keep
            if req.generated == req.output:
                finished.append(req)
        if freed:
            inst.allocator.give(freed)
        self.steps += len(decoders)
        self.tokens += emitted
        return emitted

    def step(self, inst: Instance, plan: BatchPlan) -> Generator[Waitable, Any, None]:
        """One decode-only step: draft, verify, credit (the scheduler reserved k + 1 slots per sequence)."""
        decoders = plan.decode
        dt = self.draft_s(decoders) + inst.cost.iteration(self.verify_chunks(decoders), 0, 0)
        if inst.host.pending:
            dt += inst.host.take()
        t0, t_end = inst.t, inst.t + dt
        yield sleep_until(inst.env, t_end)
        if inst.tracer is not None:
            inst.tracer.decode_run(inst.index, t0, t_end, 1, len(decoders))
        inst.t = t_end
        inst.iterations += 1
        inst.busy_s += dt
        finished: list[Request] = []
        inst.tokens_out += self.credit(inst, decoders, t_end, finished)
        inst.finish(finished)

    def summary(self) -> dict[str, float]:
        return {
            "num_tokens": self.k,
            "expected_tokens_per_step": expected_tokens(self.rates.tolist()),
            "sequence_steps": self.steps,
            "tokens": self.tokens,
        }


def reserve_lookahead(block_size: int, req: Request, need: int) -> int:
    """Blocks `req` still needs for `need` new tokens (0 when its blocks hold them)."""
    n = min(need, req.output - req.generated)
    return max(0, -(-(req.kv_tokens + n) // block_size) - req.blocks - req.shared_blocks)
