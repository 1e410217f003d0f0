"""Field helpers every scenario section shares: strict models (unknown keys and inf/nan rejected), counts
that refuse YAML booleans, `kind` sections, and the catalogue-name checks pydantic reports at the key's
file:line:col."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from hwprofiles import catalog
from sim.config.kinds import KindOf
from sim.core.registry import ARRIVALS, COST_MODELS, LENGTHS, MIGRATIONS, PREDICTORS, ROUTERS, SCHEDULERS
from sim.errors import UnknownNameError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def no_bool(v: Any) -> Any:
    if isinstance(v, bool):  # YAML `true` is not a count
        raise ValueError("expected an integer, not a boolean")
    return v


Int = Annotated[int, BeforeValidator(no_bool)]


def known_gpu_name(v: Any) -> Any:
    """A GPU given by name must be in the catalogue (pydantic reports the ValueError at the key's position)."""
    if isinstance(v, str):
        try:
            catalog.gpu(v)
        except UnknownNameError as e:
            raise ValueError(str(e)) from None
    return v


def known_model_name(v: Any) -> Any:
    """A model given by name (or Hugging Face id / config.json path) must be one the catalogue can load; an
    inline spec gets `head_dim` = hidden_size / num_heads when it leaves it out."""
    if isinstance(v, str):
        try:
            catalog.model(v)
        except UnknownNameError as e:
            raise ValueError(str(e)) from None
    if isinstance(v, dict) and "head_dim" not in v:
        h, n = _count(v.get("hidden_size")), _count(v.get("num_heads"))
        if h and n and h % n == 0:
            v = {**v, "head_dim": h // n}
    return v


def _count(x: Any) -> int:
    """A positive integer field, else 0 (booleans and other types are the schema's to report)."""
    return x if isinstance(x, int) and not isinstance(x, bool) and x > 0 else 0


# A `kind` section is validated through its family's registry when the scenario is validated, so kinds
# registered after this module was imported (plugins, tests) are accepted (see sim.config.kinds).
Arrival = Annotated[Any, KindOf(ARRIVALS)]
Lengths = Annotated[Any, KindOf(LENGTHS)]
SchedulerConfig = Annotated[Any, KindOf(SCHEDULERS)]
PredictorConfig = Annotated[Any, KindOf(PREDICTORS)]
RouterConfig = Annotated[Any, KindOf(ROUTERS)]
CostModelConfig = Annotated[Any, KindOf(COST_MODELS)]
MigrationConfig = Annotated[Any, KindOf(MIGRATIONS)]
