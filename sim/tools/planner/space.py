"""The planner's search space: GPU type × tp × cluster shape × scheduler knobs, and sizes per shape.

A `Config` is everything but the instance counts; a shape turns a config and a size (a tuple of
instance counts: `(n,)` colocated, `(prefill, decode)` disaggregated) into a scenario and says which
sizes are next larger. Adding a shape is one class registered in `SHAPES`; the search never looks
inside a size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol

from hwprofiles import catalog
from sim.config.scenario import Cluster
from sim.core.registry import SCHEDULERS
from sim.errors import ServesimError, UnknownNameError

Size = tuple[int, ...]
_BUDGET_FIELDS = ("token_budget", "max_num_batched_tokens")  # the "chunk size / token budget" knob


@dataclass(frozen=True)
class Config:
    """One point of the space before choosing instance counts."""

    gpu: str
    tp: int
    shape: str
    scheduler: tuple[tuple[str, Any], ...]  # sorted (key, value) pairs of the scheduler section

    @property
    def scheduler_dict(self) -> dict[str, Any]:
        return dict(self.scheduler)

    @property
    def price_per_instance(self) -> float:
        return catalog.gpu(self.gpu).price_per_hour * self.tp

    @property
    def label(self) -> str:
        s = self.scheduler_dict
        knob = next((f"/{s[k]}" for k in _BUDGET_FIELDS if k in s), "")
        shape = "" if self.shape == "colocated" else f" {self.shape}"
        return f"{self.gpu} tp{self.tp}{shape} {s['kind']}{knob} b{s.get('max_num_seqs', '-')}"


def parse_schedulers(text: str, max_batch: list[int]) -> list[dict[str, Any]]:
    """`fcfs,sarathi:512,sarathi:2048` × max batch sizes into scheduler sections (any registered kind)."""
    out = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        kind, _, knob = item.partition(":")
        try:
            cfg_cls = SCHEDULERS.get(kind).config
        except UnknownNameError as e:
            raise ServesimError(f"--schedulers {item!r}: {e}") from None
        fields = cfg_cls.model_fields
        for b in max_batch:
            sec: dict[str, Any] = {"kind": kind}
            if "max_num_seqs" in fields:
                sec["max_num_seqs"] = b
            if knob:
                name = next((f for f in _BUDGET_FIELDS if f in fields), None)
                if name is None or not knob.isdigit() or int(knob) < 1:
                    raise ServesimError(f"--schedulers {item!r}: {kind} has no token budget to set to {knob!r}")
                sec[name] = int(knob)
            try:
                cfg_cls.model_validate(sec)
            except ValueError as e:
                raise ServesimError(f"--schedulers {item!r}: {e}") from None
            out.append(sec)
    if not out:
        raise ServesimError("--schedulers: give at least one, e.g. fcfs,sarathi:512")
    return out


class Shape(Protocol):
    @property
    def name(self) -> str: ...

    def unavailable(self) -> str | None:
        """Why this shape cannot be planned with this build of servesim, or None."""
        ...

    def start(self, n_min: dict[str, int]) -> Size:
        """The smallest size allowed by the lower bounds (`n_min` has 'total', 'prefill', 'decode')."""
        ...

    def successors(self, size: Size) -> list[Size]: ...

    def instances(self, size: Size) -> int: ...

    def scenario(self, cfg: Config, size: Size, base: dict[str, Any]) -> dict[str, Any]: ...

    def describe(self, size: Size) -> str: ...


@dataclass(frozen=True)
class Colocated:
    """Every instance does prefill and decode; size = (instances,)."""

    name: str = "colocated"

    def unavailable(self) -> str | None:
        return None

    def start(self, n_min: dict[str, int]) -> Size:
        return (max(1, n_min["total"]),)

    def successors(self, size: Size) -> list[Size]:
        return [(size[0] + 1,)]

    def instances(self, size: Size) -> int:
        return size[0]

    def scenario(self, cfg: Config, size: Size, base: dict[str, Any]) -> dict[str, Any]:
        sc = copy.deepcopy(base)
        sc["hardware"] = cfg.gpu
        cluster = sc.setdefault("cluster", {})
        cluster.update({"instances": size[0], "tp": cfg.tp})
        sc["scheduler"] = cfg.scheduler_dict
        return sc

    def describe(self, size: Size) -> str:
        return f"{size[0]} inst"


@dataclass(frozen=True)
class Disaggregated:
    """A prefill pool and a decode pool (Splitwise, DistServe); size = (prefill, decode) instances.

    The search grows either pool, bounds start each pool at its own roofline minimum; both pools use the
    configuration's GPU, tp and scheduler, and the base scenario's link and transfer mode.
    """

    name: str = "disaggregated"

    def unavailable(self) -> str | None:
        if not {"prefill", "decode"} <= set(Cluster.model_fields):
            return "cluster.prefill/cluster.decode pools are not in the scenario schema"
        return None

    def start(self, n_min: dict[str, int]) -> Size:
        return (max(1, n_min["prefill"]), max(1, n_min["decode"]))

    def successors(self, size: Size) -> list[Size]:
        return [(size[0] + 1, size[1]), (size[0], size[1] + 1)]

    def instances(self, size: Size) -> int:
        return size[0] + size[1]

    def scenario(self, cfg: Config, size: Size, base: dict[str, Any]) -> dict[str, Any]:
        sc = copy.deepcopy(base)
        sc["hardware"] = cfg.gpu
        cluster = sc.setdefault("cluster", {})
        for key in ("instances", "tp"):  # per pool now
            cluster.pop(key, None)
        cluster["prefill"] = {**cluster.get("prefill", {}), "instances": size[0], "tp": cfg.tp}
        cluster["decode"] = {**cluster.get("decode", {}), "instances": size[1], "tp": cfg.tp}
        sc["scheduler"] = cfg.scheduler_dict
        return sc

    def describe(self, size: Size) -> str:
        return f"{size[0]}P:{size[1]}D"


SHAPES: dict[str, Shape] = {s.name: s for s in (Colocated(), Disaggregated())}


def parse_list(text: str, what: str, known: list[str] | None = None) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ServesimError(f"--{what}: give at least one value")
    if known is not None:
        bad = [x for x in items if x not in known]
        if bad:
            raise ServesimError(f"--{what} {bad[0]!r}: unknown; known: {', '.join(known)}")
    return items


def parse_ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(x) for x in parse_list(text, what)]
    except ValueError:
        raise ServesimError(f"--{what} {text!r}: expected comma-separated integers") from None
    if any(v < 1 for v in vals):
        raise ServesimError(f"--{what} {text!r}: values must be >= 1")
    return vals


@dataclass
class Space:
    """The configurations to search, in a fixed order (so ties break the same way every run)."""

    configs: list[Config] = field(default_factory=list)

    @classmethod
    def build(cls, hardware: list[str], tps: list[int], shapes: list[str], schedulers: list[dict[str, Any]]) -> Space:
        gpus = []
        for h in hardware:
            try:
                gpus.append(catalog.gpu(h).name)
            except UnknownNameError as e:
                raise ServesimError(f"--hardware: {e}") from None
        unknown = [s for s in shapes if s not in SHAPES]
        if unknown:
            raise ServesimError(f"--shapes {unknown[0]!r}: unknown; known: {', '.join(SHAPES)}")
        configs = [
            Config(g, tp, shape, tuple(sorted(sched.items())))
            for shape in shapes
            for g in gpus
            for tp in tps
            for sched in schedulers
        ]
        return cls(configs)
