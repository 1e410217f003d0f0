"""`BatchPlan` writes its dataclass `__init__` out by hand (for speed); these tests fail when a field is added,
renamed, reordered or given a new default without the hand-written `__init__` following."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from sim.core.batch import BatchPlan
from sim.core.native import compiled

# the source-level checks read the Python `__init__`'s signature, which a compiled class does not show (the
# pure-Python run, which CI takes, checks them)
source_only = pytest.mark.skipif(compiled(), reason="the compiled core (sim.core.native) hides the signature")


def _field_default(f: dataclasses.Field[object]) -> object:
    """What the generated `__init__` would give when the argument is left out."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


@source_only
def test_init_parameters_are_the_dataclass_fields_in_order() -> None:
    params = list(inspect.signature(BatchPlan.__init__).parameters.values())[1:]  # drop self
    fields = dataclasses.fields(BatchPlan)
    assert [p.name for p in params] == [f.name for f in fields]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
    assert all(f.init for f in fields)


@source_only
def test_defaults_equal_the_dataclass_defaults() -> None:
    plan = BatchPlan()
    for f in dataclasses.fields(BatchPlan):
        expected = _field_default(f)
        assert getattr(plan, f.name) == expected and type(getattr(plan, f.name)) is type(expected), f.name
        if f.default_factory is dataclasses.MISSING:  # a plain default: the signature shows it too
            assert inspect.signature(BatchPlan.__init__).parameters[f.name].default == f.default, f.name


def test_list_fields_are_fresh_per_plan_not_shared() -> None:
    a, b = BatchPlan(), BatchPlan()
    factory_fields = [f.name for f in dataclasses.fields(BatchPlan) if f.default_factory is not dataclasses.MISSING]
    assert factory_fields == ["prefill", "decode"]
    for name in factory_fields:
        assert getattr(a, name) is not getattr(b, name)
    a.decode.append(object())  # type: ignore[arg-type]  # any object: only sharing is under test
    assert b.decode == []


def test_arguments_are_stored_as_given() -> None:
    prefill: list[tuple[object, int]] = [(object(), 5)]
    decode: list[object] = [object()]
    values = dict(prefill=prefill, decode=decode, preempted=2, cohort=True, cohort_n=7, wait_until=1.5)
    by_keyword = BatchPlan(**values)  # type: ignore[arg-type]  # stand-in requests: the plan only stores them
    by_position = BatchPlan(*values.values())  # type: ignore[arg-type]  # the same, positionally
    for plan in (by_keyword, by_position):
        assert {f.name: getattr(plan, f.name) for f in dataclasses.fields(BatchPlan)} == values
        assert plan.prefill is prefill and plan.decode is decode
