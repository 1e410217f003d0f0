"""A servesim plugin: the `lifo` batch scheduler (newest waiting request first, whole prompts, prefill-first).

servesim calls `register()` once, through the `servesim.plugins` entry point in pyproject.toml, before it
first looks up a kind or validates a scenario; nothing here needs to be imported by hand.
"""

from __future__ import annotations

from servesim_lifo.scheduler import LIFO, LIFOConfig, build_lifo

__all__ = ["LIFO", "LIFOConfig", "build_lifo", "register"]


def register() -> None:
    """Add `lifo` to servesim's scheduler family, with what it declares about itself."""
    from sim.core.registry import SCHEDULERS

    # capabilities: it prefills each prompt in one iteration and never mixes prefill with decode
    SCHEDULERS.register("lifo", LIFOConfig, whole_prompts=True, mixes_prefill_decode=False)(build_lifo)
