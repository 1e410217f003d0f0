"""The driver of the engine's processes (an instance's loop, the arrivals): what `simpy.Process` does for a generator.

Every event a process waits for resumes it through `Process._resume`, SimPy's interpreted code, which also makes a
new bound method (`self._resume`) for each event it waits on. `Loop` resumes the same generator at the same moments
with the same values: it is woken through the same callback lists and schedules the same events of its own (SimPy's
`Initialize` at URGENT priority when built; when the generator ends or fails, one event at once carrying its value
or exception, which the run loop raises as SimPy's does), so event ids, event counts and the order of every event
stay as they were (`tests/test_simpy_internals.py`, the 29 scenarios' bytes). Its callback is one bound method for
the whole run (`resume`), compiled in the compiled core (`sim.core.native`).

What it leaves out, because nothing in the engine uses it: a `Loop` is not itself an event (nothing waits for the
end of the engine's processes or interrupts them: that end event fires unheeded), and `env.active_process` is not
set while it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy
from simpy.events import Initialize


class Loop:
    """Runs `generator` on `env` as `env.process(generator)` would (the differences: the module doc)."""

    def __init__(self, env: simpy.Environment, generator: Generator[Any, Any, None]) -> None:
        self.env = env
        self.generator = generator
        self.resume: Callable[[Any], None] = self._resume  # the one callback (`Instance._cut` removes it by identity)
        self._target: Any = Initialize(env, self)  # type: ignore[arg-type]  # duck-typed: it reads `_resume` only

    @property
    def target(self) -> Any:
        """The event the loop waits for (None once its generator ended), as `Process.target`."""
        return self._target

    def _resume(self, event: Any) -> None:
        """`Process._resume`: send the event's value (throw its exception) into the generator until it yields an
        event that has not fired yet, and wait for that one."""
        gen = self.generator
        while True:
            try:
                if event._ok:
                    event = gen.send(event._value)
                else:  # as SimPy: the loop handles the failed event (or fails), with its own copy of the exception
                    event._defused = True
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    event = gen.throw(exc)
            except StopIteration as stop:  # the generator ended: SimPy schedules the process, an event, now
                self._end(True, stop.value)
                return
            except BaseException as e:  # it failed: the same, with the exception (the run loop raises a copy)
                self._end(False, e)
                return
            callbacks = event.callbacks
            if callbacks is not None:
                callbacks.append(self.resume)
                break
        self._target = event

    def _end(self, ok: bool, value: Any) -> None:
        """What `Process._resume` does when its generator returns or raises: the process (here an event of its own)
        is scheduled now with the generator's value or exception; nobody waits for it."""
        self._target = None
        done = simpy.Event(self.env)
        done._ok = ok
        done._value = value
        self.env.schedule(done)
