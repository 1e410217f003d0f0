"""One registry type, and the one place every family of `kind`s lives.

Everything chosen by a `kind` string in the scenario YAML — schedulers, routers, migration policies, length
predictors, cost models, arrival processes, length distributions and serving engines — is an `Entry` here:
the string is the YAML tag, the JSON-schema branch and the key that finds the factory, so a new policy is one
config class and one function registered together, plus the capabilities it declares.

Registration is open to packages outside the repository: on the first lookup (or scenario validation), the
built-in modules and then every entry point of the group `servesim.plugins` are loaded, once, whatever was
imported before. A plugin entry point names a module (importing it registers its kinds) or a callable taking
no arguments (calling it registers them).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field

from sim.errors import ServesimError, UnknownNameError

if TYPE_CHECKING:
    from sim.core.batch import BatchScheduler
    from sim.core.router import Router

T = TypeVar("T")

PLUGIN_GROUP = "servesim.plugins"
BUILTINS: list[str] = [
    "policies",
    "sim.costmodel.models",
    "sim.costmodel.build",
    "sim.costmodel.engine",
    "sim.workload.arrivals",
    "sim.workload.lengths",
]
"""Modules that register the built-in kinds (loaded before any plugin). A new built-in family adds its module."""


# -- capabilities ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Capabilities:
    """What a kind declares about itself, so callers ask the kind instead of keeping lists of names."""


@dataclass(frozen=True)
class SchedulerCaps(Capabilities):
    stateful: bool = False
    """Keeps per-request state that cannot cross a prefill → decode hand-off to a scheduler of another kind."""
    mixes_prefill_decode: bool = True
    """May put prefill and decode work in one iteration (the planner's bounds assume it unless told not)."""
    whole_prompts: bool = False
    """Prefills every prompt in one iteration (a prompt above the token budget runs alone)."""
    prefill_chunk: str | None = None
    """Config field bounding every prefill chunk and iteration (Sarathi's `token_budget`); None: no chunking."""
    admission_reserve: bool = False
    """Obeys `serving_engine.admission_reserve` on colocated instances (policies/reserve.py)."""


@dataclass(frozen=True)
class ArrivalCaps(Capabilities):
    replays_trace: bool = False
    """Replays a file's timestamps: it brings its own lengths (`workload.lengths` optional), ends by itself, and
    is sped up by `time_scale` rather than by a `rate`."""
    follows_completions: bool = False
    """Closed loop: clients send each request when their previous one ends, so the engine sets the arrival times
    as the run goes (the factory hands back NaN times; `sim.workload.clients` drives the sends)."""


@dataclass(frozen=True)
class CostModelCaps(Capabilities):
    fits_profile: bool = False
    """`servesim calibrate fit` can fit a profile (overheads, efficiency scales) on top of this kind."""


# -- the registry type -----------------------------------------------------------------------------------------
@dataclass
class Entry(Generic[T]):
    kind: str
    config: type[BaseModel]
    factory: Callable[..., T]
    doc: str
    caps: Capabilities
    origin: str = "servesim"  # the module that registered it (plugins show their own)


@dataclass(eq=False)  # a registry is itself (hashable by identity: it keys pydantic annotations)
class Registry(Generic[T]):
    """Kind -> (config model, factory, capabilities). `what` names the family in error messages."""

    what: str
    caps_type: type[Capabilities] = Capabilities
    _entries: dict[str, Entry[T]] = field(default_factory=dict)

    def register(
        self, kind: str, config: type[BaseModel], description: str | None = None, **caps: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: `@REG.register("fcfs", FCFSConfig, whole_prompts=True)` over the factory `f(config, **ctx)`.

        Keyword arguments are the family's capabilities (`caps_type`); an unknown one is a TypeError.
        `description` (the `list` line) defaults to the factory's docstring, so one factory can serve two kinds."""
        declared = self.caps_type(**caps)

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if kind in self._entries:
                raise ValueError(f"{self.what} kind {kind!r} registered twice")
            doc = (description or factory.__doc__ or config.__doc__ or "").strip().splitlines()
            origin = getattr(factory, "__module__", "") or ""
            self._entries[kind] = Entry(kind, config, factory, doc[0] if doc else "", declared, origin)
            return factory

        return deco

    def unregister(self, kind: str) -> None:
        """Remove a kind (tests and notebooks that register a throw-away policy clean up with this)."""
        self._entries.pop(kind, None)

    def _all(self) -> dict[str, Entry[T]]:
        load_plugins()
        return self._entries

    def get(self, kind: str) -> Entry[T]:
        entries = self._all()
        try:
            return entries[kind]
        except KeyError:
            raise UnknownNameError(f"{self.what} kind", kind, list(entries)) from None

    def caps(self, kind: str) -> Any:
        """The capabilities `kind` declared (an instance of `caps_type`)."""
        return self.get(kind).caps

    def build(self, config: BaseModel, **context: Any) -> T:
        return self.get(config.kind).factory(config, **context)  # type: ignore[attr-defined]  # every config has `kind`

    def kinds(self) -> list[str]:
        return list(self._all())

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(list(self._all().values()))

    def __contains__(self, kind: object) -> bool:
        return kind in self._all()

    def configs(self) -> tuple[type[BaseModel], ...]:
        return tuple(e.config for e in self._all().values())

    def union(self) -> Any:
        """The discriminated union of the registered config models (for a JSON schema or a TypeAdapter)."""
        configs = self.configs()
        if len(configs) == 1:
            return configs[0]
        return Annotated[functools.reduce(operator.or_, configs), Field(discriminator="kind")]


# -- the families ----------------------------------------------------------------------------------------------
SCHEDULERS: Registry[BatchScheduler] = Registry("scheduler", SchedulerCaps)
ROUTERS: Registry[Router] = Registry("router")
MIGRATIONS: Registry[Any] = Registry("migration policy")  # policies.migration.MigrationPolicy
PREDICTORS: Registry[Any] = Registry("length predictor")  # policies.predictors.LengthPredictor
COST_MODELS: Registry[Any] = Registry("cost model", CostModelCaps)  # sim.costmodel.models.CostModel
ARRIVALS: Registry[Any] = Registry("arrival", ArrivalCaps)  # sim.workload.arrivals.Arrivals
LENGTHS: Registry[Any] = Registry("lengths")  # (prompt, output) arrays
ENGINES: Registry[Any] = Registry("engine")  # serving engines (filled by the engine family's module)

FAMILIES: dict[str, Registry[Any]] = {
    "scheduler": SCHEDULERS,
    "router": ROUTERS,
    "migration": MIGRATIONS,
    "predictor": PREDICTORS,
    "cost_model": COST_MODELS,
    "arrival": ARRIVALS,
    "lengths": LENGTHS,
    "engine": ENGINES,
}
"""Every family, by the name `servesim list policies` shows."""


def describe_caps(caps: Capabilities) -> str:
    """The capabilities that differ from the family's defaults, e.g. `stateful, prefill_chunk=token_budget`."""
    default = type(caps)()
    out = []
    for f in fields(caps):
        v = getattr(caps, f.name)
        if v != getattr(default, f.name):
            out.append(f.name if v is True else f"{f.name}={v}")
    return ", ".join(out)


# -- loading built-ins and plugins, once -------------------------------------------------------------------------
_state: dict[str, Any] = {"loaded": False, "loading": False, "error": None}


def load_plugins() -> None:
    """Import the built-in kinds, then every `servesim.plugins` entry point; once per process.

    Re-entrant calls while loading (a plugin's own lookups) see what is registered so far. A plugin that fails
    to load is a user-facing error naming it, raised again on every later lookup."""
    if _state["error"] is not None:
        raise ServesimError(_state["error"])
    if _state["loaded"] or _state["loading"]:
        return
    _state["loading"] = True
    try:
        for name in BUILTINS:
            importlib.import_module(name)
        seen: set[str] = set()
        for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: (e.name, e.value)):
            if ep.value in seen:  # the same distribution found twice on the path
                continue
            seen.add(ep.value)
            try:
                _load_one(ep.name, ep.value, ep.load)
            except ServesimError as e:
                _state["error"] = str(e)
                raise
        _state["loaded"] = True
    finally:
        _state["loading"] = False


def _load_one(name: str, value: str, load: Callable[[], Any]) -> None:
    try:
        obj = load()
        if callable(obj) and not inspect.ismodule(obj):
            obj()
    except Exception as e:  # a third party's bug: one line naming the plugin, not a traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ServesimError(
            f"plugin {name!r} ({PLUGIN_GROUP} entry point {value!r}) failed to load: {type(e).__name__}: {first}"
        ) from e
