"""TensorRT-LLM's context holds: a new prompt waits a number of iterations before it joins the running batch.

Two mechanisms of TensorRT-LLM's PyTorch executor (`PyExecutor._schedule`, read in `_balance_adp_requests`
and `_waiting_requests`), both off by default in TensorRT-LLM and switched on by serving recipes:

- **Attention-DP balance** (`attention_dp_config: {enable_balance, timeout_iters, batching_wait_iters}`, only
  with attention data parallelism). Every iteration each DP rank reports its scheduled context and generation
  requests. When not every rank has a context request, context requests are held and a counter advances;
  they go when it reaches `timeout_iters` (it then restarts from 0) or when some rank has no generation
  request. The counter advances on every iteration where not every rank has a context request, new prompts
  or not, so a prompt arriving on a busy instance waits for the rest of the counter's cycle: about
  `timeout_iters / 2` iterations on average. When every rank has one and every rank is also generating, they
  wait a further `batching_wait_iters` iterations to batch more.
- **Batch waiting** (`batch_wait_timeout_iters`, `batch_wait_max_tokens_ratio`; without attention DP): while
  generation requests run, context requests wait until the scheduled tokens reach `ratio × max_num_tokens`
  or they have waited `timeout_iters` iterations.

servesim's instance is the whole attention-DP group, so per-rank counts are read from the totals: every rank
has a context request when at least `dp` are pending, every rank generates when at least `dp` decode (TRT-LLM
hands new requests to the least-loaded rank, which keeps ranks even). Held iterations are decode-only; the
scheduler's `decision_horizon` ends a fast-forward decode run exactly where a hold ends.

SGLang's receive interval (`RecvSkipper`, `serving_engine.scheduler_recv_interval`) is the same kind of wait on
the other side of the queue: a prompt that arrives while the batch only decodes is not seen by the scheduler
until its poll counter comes round (`SchedulerRecvSkipper`), so it joins up to that many decode iterations late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.core.batch import UNBOUNDED, InstanceView

HOLD_KINDS = ("sarathi", "trtllm")  # the scheduler kinds that obey the holds (checked by the scenario)


@dataclass(frozen=True)
class HoldTerms:
    """The engine terms (`serving_engine.attention_dp_*`, `batch_wait_*`) an instance of `dp` ranks obeys."""

    dp: int = 1
    balance: bool = False
    timeout_iters: int = 50
    batching_wait_iters: int = 10
    wait_timeout_iters: int = 0
    wait_tokens_ratio: float = 0.0
    max_num_tokens: int = 8192
    recv_interval: int = 1

    @property
    def active(self) -> bool:
        """True when a hold can happen: balance with attention DP, or batch waiting without it."""
        if self.dp > 1:
            return self.balance
        return self.wait_timeout_iters > 0 or self.wait_tokens_ratio > 0


def hold_terms(engine: Any, dp: int, max_num_tokens: int) -> HoldTerms:
    """The hold terms of a `serving_engine` section (None: no engine, no hold)."""
    if engine is None:
        return HoldTerms(dp=dp, max_num_tokens=max_num_tokens)
    return HoldTerms(
        dp=dp,
        balance=bool(engine.attention_dp_balance),
        timeout_iters=int(engine.attention_dp_timeout_iters),
        batching_wait_iters=int(engine.attention_dp_batching_wait_iters),
        wait_timeout_iters=int(engine.batch_wait_timeout_iters),
        wait_tokens_ratio=float(engine.batch_wait_max_tokens_ratio),
        max_num_tokens=max_num_tokens,
        recv_interval=int(getattr(engine, "scheduler_recv_interval", 1)),
    )


class ContextHold:
    """The counters of one instance. `holds` is called once per planned iteration; the iterations a
    fast-forward run skipped are replayed in closed form under the state of the call that planned the run
    (nothing changed during it, or the run would have been cut)."""

    def __init__(self, terms: HoldTerms) -> None:
        self.t = terms
        self.wait = 0  # attention DP: iterations not every rank had a context request (cycles mod timeout)
        self.batching = 0  # attention DP: iterations every rank had one and waited to batch more
        self.waited = 0  # batch waiting: iterations context requests have waited
        self._last = -1  # inst.iterations at the previous call
        # (all_ctx, all_gen, held) at that call; batch waiting: (False, its counter cycles on, held)
        self._state: tuple[bool, bool, bool] = (False, False, False)
        self._horizon = UNBOUNDED

    def holds(self, inst: InstanceView, n_gen: int) -> bool:
        """Whether this iteration's context requests (pending prefills and waiting prompts) are held back."""
        t = self.t
        skipped = max(0, inst.iterations - self._last - 1) if self._last >= 0 else 0
        self._last = inst.iterations
        if skipped:
            self._replay(skipped)
        n_ctx = len(inst.prefilling) + len(inst.waiting)
        if t.dp > 1:
            held = self._balance(n_ctx >= t.dp, n_gen >= t.dp) and n_ctx > 0
        else:
            self._state = (False, False, False)
            held = n_ctx > 0 and n_gen > 0 and self._batch_wait(inst, n_gen)
        if not held:
            self._horizon = UNBOUNDED  # nothing pending is held: arrivals end fast-forward runs anyway
        return held

    def horizon(self) -> int:
        """Iterations until the current hold ends (UNBOUNDED when nothing is held)."""
        return self._horizon

    # -- one iteration ------------------------------------------------------------------------------
    def _balance(self, all_ctx: bool, all_gen: bool) -> bool:
        t = self.t
        held = False
        if all_ctx:
            self.wait = 0
            if all_gen:
                if self.batching < t.batching_wait_iters:
                    self.batching += 1
                    held = True
                    self._horizon = t.batching_wait_iters - self.batching + 1
                else:
                    self.batching = 0
        else:
            self.wait += 1
            if self.wait >= t.timeout_iters or not all_gen:
                self.wait = 0
            else:
                held = True  # the counter runs whether or not a prompt is pending
                self._horizon = t.timeout_iters - self.wait
        self._state = (all_ctx, all_gen, held)
        return held

    def _batch_wait(self, inst: InstanceView, n_gen: int) -> bool:
        t = self.t
        need = t.wait_tokens_ratio * t.max_num_tokens
        tokens = n_gen
        if t.wait_tokens_ratio > 0:
            for req in (*inst.prefilling, *inst.waiting):
                tokens += req.prefill_target - req.prefill_done
                if tokens >= need:
                    break
        enough = t.wait_tokens_ratio > 0 and min(tokens, t.max_num_tokens) >= need
        if self.waited >= t.wait_timeout_iters or enough:
            self.waited = 0
            # Let go by the timeout: a context request this plan cannot admit (no KV, the reservation, no seat)
            # stays pending, so the next iterations are held again from 0 (the counter cycles); a run replays it.
            self._state = (False, not enough, False)
            return False
        self.waited += 1
        self._horizon = t.wait_timeout_iters - self.waited + 1
        self._state = (False, False, True)
        return True

    def _replay(self, s: int) -> None:
        """s iterations under the previous call's state, in closed form."""
        all_ctx, all_gen, held = self._state
        t = self.t
        if t.dp > 1:
            if all_ctx and all_gen:
                self.batching = (self.batching + s) % (t.batching_wait_iters + 1)
            elif not all_ctx and all_gen:
                self.wait = (self.wait + s) % max(1, t.timeout_iters)
            else:
                self.wait = 0
        elif held or all_gen:  # (batch waiting keeps in its middle slot whether the counter cycles on)
            self.waited = (self.waited + s) % (t.wait_timeout_iters + 1)


def received_at(inst: InstanceView, now: float) -> float:
    """When the loop turn that makes this plan ran `recv_requests`. An engine that plans one step ahead
    (`serving_engine.overlap_admission`, `Instance._lagged`) receives, schedules and launches batch N+1 before it
    processes batch N's result (SGLang `Scheduler.event_loop_overlap`: `recv_requests`, `get_next_batch_to_run`,
    `run_batch`, then `process_batch_result` of the last batch): while a batch runs, the plan the instance makes at
    step N's end was made at step N's start (`plan_t`, the previous plan; a fast-forward run sets it to its last
    step's start), so a poll there receives only what arrived by then. The lag hides nothing from an idle engine,
    nor does this."""
    if inst.overlap_admission and (inst.running or inst.prefilling):
        return min(now, inst.plan_t)
    return now


class RecvSkipper:
    """SGLang's `SchedulerRecvSkipper` (python/sglang/srt/managers/scheduler_recv_skipper.py): before each
    iteration the scheduler adds the previous iteration's weight to a counter (decode-only 1, anything else
    1000) and polls for new requests when it reaches `interval`, restarting from 0. Requests that arrived by the
    last poll are the ones it can schedule (`upto`). The weights (sglang/srt/environ.py, `..._RECV_SKIPPER_WEIGHT_*`):
    DECODE 1, TARGET_VERIFY 1, an idle iteration (no batch, mode None) 1, anything else 1000. An idle loop also
    counts 1, but with no batch to run it spins in microseconds, so it reaches `interval` at once on the scale of
    a decode step: modelled as a poll at once — `poll` when a plan would run nothing while unreceived requests
    wait (the engine drained its batch, or sat idle, since the last poll: `event_loop_normal` sets `last_batch =
    None` after an iteration with no batch), and `record` with an empty plan. A speculative verify step
    (TARGET_VERIFY) is a decode plan here (`sim.core.speculative`: per-request decode steps), so it counts 1 too.
    Attention DP: older SGLang asserted `not enable_dp_attention` with this option; newer releases add the weight
    of the *global* forward mode after the DP sync (`update_counter_dp`), so every rank polls together and one
    prefilling rank makes all poll. This scheduler plans all of an instance's DP ranks at once, which is that
    newer behaviour; a row that ran an older release with DP attention could not have set the interval.

    `observe` is called once per planned iteration, `record` with the plan made. Decode iterations a fast-forward
    run skipped are counted in closed form: an arrival cuts such a run at the step in flight, so the polls
    inside it saw nothing new and only move the counter's phase. (With `overlap_admission` the run goes one step
    further, but a poll receives at the previous plan, `received_at`: still before the arrival.)"""

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.counter = 0
        self.upto = -float("inf")  # arrival time up to which requests have been received
        self._last = 0  # inst.iterations at the previous call
        self._polls_next = True  # the previous plan ran a prefill (weight 1000) or nothing at all

    def observe(self, inst: InstanceView, now: float) -> float:
        """The arrival time up to which requests are visible to this iteration's plan."""
        d = inst.iterations - self._last
        self._last = inst.iterations
        if self._polls_next or d <= 0:
            self.counter = 0
            self.upto = received_at(inst, now)
        else:
            self.counter = (self.counter + d) % self.interval  # d decode iterations of weight 1
            if self.counter == 0:
                self.upto = received_at(inst, now)
        return self.upto

    def poll(self, now: float) -> None:
        """An idle engine's poll (no batch to run: its loop spins at weight 1 and polls at once): every request
        that arrived by `now` is received and the counter restarts."""
        self.counter = 0
        self.upto = now

    def record(self, prefill: bool, decodes: int) -> None:
        """The plan just made: a prefill (or an empty plan) makes the next iteration poll."""
        self._polls_next = prefill or decodes == 0

    def horizon(self, inst: InstanceView) -> int:
        """Decode iterations until the next poll when a waiting request has not been received (else UNBOUNDED)."""
        waiting = inst.waiting
        if waiting and waiting[-1].arrival > self.upto:
            return self.interval - self.counter
        return UNBOUNDED
