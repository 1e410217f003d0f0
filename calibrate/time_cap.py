"""A CPU-time cap around one piece of work (a fit of one subgroup): a project rule is "never a hang", and a fit
replays simulations whose length the caller cannot bound in advance.

The cap counts the process's CPU time (`signal.ITIMER_PROF`), not wall time: on a shared machine the wall time of
the same fit varies with the other jobs, its CPU time does not. When the cap is reached, `Capped` is raised in the
main thread at the next Python bytecode; it derives from BaseException (as KeyboardInterrupt does) so that no
`except Exception` inside the simulator swallows it. POSIX only: where SIGPROF does not exist the work runs uncapped.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Capped(BaseException):
    """The work used its CPU-time cap (`cpu_cap`)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)  # args = (seconds,): the simulator re-raises a process's error as type(e)(*e.args)
        self.seconds = float(seconds)

    def __str__(self) -> str:
        return f"stopped after {self.seconds:g} CPU seconds (cap)"


@contextmanager
def cpu_cap(seconds: float | None) -> Iterator[None]:
    """Raise `Capped` inside the block once it has used `seconds` of the process's CPU time; None or <= 0: no
    cap. Only in the main thread (signals are delivered there); elsewhere the block runs uncapped."""
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "SIGPROF")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return
    assert seconds is not None

    def _raise(_sig: int, _frame: FrameType | None) -> None:
        raise Capped(seconds)

    old = signal.signal(signal.SIGPROF, _raise)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
