"""One registry type for everything chosen by a `kind` string in the scenario YAML.

The same string is the pydantic discriminator (config model), the JSON-schema tag and the key that finds
the factory, so a new policy is one config class and one function registered together.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field

from sim.errors import UnknownNameError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    kind: str
    config: type[BaseModel]
    factory: Callable[..., T]
    doc: str


@dataclass
class Registry(Generic[T]):
    """Kind -> (config model, factory). `what` names the family in error messages."""

    what: str
    entries: dict[str, Entry[T]] = field(default_factory=dict)

    def register(self, kind: str, config: type[BaseModel]) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: `@REG.register("fcfs", FCFSConfig)` over the factory `f(config, **context)`."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if kind in self.entries:
                raise ValueError(f"{self.what} kind {kind!r} registered twice")
            doc = (factory.__doc__ or config.__doc__ or "").strip().splitlines()
            self.entries[kind] = Entry(kind, config, factory, doc[0] if doc else "")
            return factory

        return deco

    def get(self, kind: str) -> Entry[T]:
        try:
            return self.entries[kind]
        except KeyError:
            raise UnknownNameError(f"{self.what} kind", kind, list(self.entries)) from None

    def build(self, config: BaseModel, **context: Any) -> T:
        return self.get(config.kind).factory(config, **context)  # type: ignore[attr-defined]

    def kinds(self) -> list[str]:
        return list(self.entries)

    def configs(self) -> tuple[type[BaseModel], ...]:
        return tuple(e.config for e in self.entries.values())

    def union(self) -> Any:
        """The discriminated union of the registered config models, for a pydantic field annotation."""
        configs = self.configs()
        if len(configs) == 1:
            return configs[0]
        return Annotated[functools.reduce(operator.or_, configs), Field(discriminator="kind")]


# Serving-engine presets (`serving_engine.kind`): each entry's factory returns its resolved terms
# (`sim.costmodel.engine.ServingEngineConfig`); registered by `sim.costmodel.engine`.
ENGINES: Registry[Any] = Registry("serving engine")
