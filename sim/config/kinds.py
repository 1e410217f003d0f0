"""A scenario field whose value is one of a registry's kinds, resolved when it is validated.

A pydantic discriminated union is frozen when its model class is built, so a kind registered later (a plugin,
a test, a notebook) would be rejected. `KindOf(REGISTRY)` looks the `kind` up in the registry at validation
time instead and validates the section with that kind's config class; the JSON schema is the registry's
union at the moment the schema is asked for. Errors keep pydantic's types, messages and locations (the
nested config's errors are reported under the field, e.g. `scheduler.max_num_seqs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from sim.core.registry import Registry


@dataclass(frozen=True)
class KindOf:
    """Annotation marker: `Annotated[BaseModel, KindOf(SCHEDULERS)]`."""

    registry: Registry[Any]

    def validate(self, value: Any) -> BaseModel:
        entries = {e.kind: e for e in self.registry}
        if len(entries) == 1:  # a family of one: the config itself (its `kind` literal reports a wrong tag)
            (only,) = entries.values()
            return value if isinstance(value, only.config) else only.config.model_validate(value)
        if isinstance(value, BaseModel):
            kind = getattr(value, "kind", None)
            entry = entries.get(kind) if isinstance(kind, str) else None
            if entry is not None and isinstance(value, entry.config):
                return value
            value = value.model_dump()
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "model_attributes_type", "Input should be a valid dictionary or object to extract fields from"
            )
        if "kind" not in value:
            raise PydanticCustomError(
                "union_tag_not_found",
                "Unable to extract tag using discriminator {discriminator}",
                {"discriminator": "'kind'"},
            )
        tag = value["kind"]
        entry = entries.get(tag) if isinstance(tag, str) else None
        if entry is None:
            raise PydanticCustomError(
                "union_tag_invalid",
                "Input tag '{tag}' found using {discriminator} does not match any of the expected tags: "
                "{expected_tags}",
                {"tag": str(tag), "discriminator": "'kind'", "expected_tags": ", ".join(repr(k) for k in entries)},
            )
        return entry.config.model_validate(value)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # serialization is inferred from the value: each config model dumps itself (honouring mode/exclude...)
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        union = self.registry.union()
        if isinstance(union, type) and issubclass(union, BaseModel):  # a family of one: a $ref to its model
            model = union.__pydantic_core_schema__
            ref = core_schema.definition_reference_schema(model["ref"])  # a model schema has one
            return handler(core_schema.definitions_schema(ref, [model]))
        return handler(TypeAdapter(union).core_schema)
