"""`BatchPlan` writes its dataclass `__init__` out by hand (for speed); these tests fail when a field is added,
renamed, reordered or given a new default without the hand-written `__init__` following."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import sys
from pathlib import Path

from sim.core.batch import BatchPlan
from sim.core.native import compiled


def _source_class() -> type[BatchPlan]:
    """`BatchPlan` as its source defines it: a compiled class does not show its `__init__`'s signature, so in the
    compiled core (`sim.core.native`, CI's default) the checks below read a private copy loaded from batch.py."""
    if not compiled():
        return BatchPlan
    import sim.core.batch

    name = "_batch_source_for_tests"
    spec = importlib.util.spec_from_file_location(name, Path(sim.core.batch.__file__).with_name("batch.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses looks the module up while it builds the class)
    spec.loader.exec_module(module)
    source: type[BatchPlan] = module.BatchPlan
    return source


SourcePlan = _source_class()


def _field_default(f: dataclasses.Field[object]) -> object:
    """What the generated `__init__` would give when the argument is left out."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def test_init_parameters_are_the_dataclass_fields_in_order() -> None:
    params = list(inspect.signature(SourcePlan.__init__).parameters.values())[1:]  # drop self
    fields = dataclasses.fields(SourcePlan)
    assert [p.name for p in params] == [f.name for f in fields]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
    assert all(f.init for f in fields)


def test_defaults_equal_the_dataclass_defaults() -> None:
    plan = SourcePlan()
    for f in dataclasses.fields(SourcePlan):
        expected = _field_default(f)
        assert getattr(plan, f.name) == expected and type(getattr(plan, f.name)) is type(expected), f.name
        if f.default_factory is dataclasses.MISSING:  # a plain default: the signature shows it too
            assert inspect.signature(SourcePlan.__init__).parameters[f.name].default == f.default, f.name


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
