"""JSON Schema validation with jsonschema-native error items (the spec's ValidationErrorItem)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
from pydantic import BaseModel, Field


class ValidationErrorItem(BaseModel):
    """One jsonschema-native validation error, as the conversion endpoints report it.

    ``input`` may be missing: older workflow packages print items without it.
    """

    message: str
    path: list[str | int]
    schema_path: list[str | int]
    validator: str
    input: Any = Field(None, description="the failing instance value")


class SchemaValidator:
    """A checked schema, ready to validate many instances (build once, use often)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        """Raises ``jsonschema.SchemaError`` when ``schema`` is not a valid JSON Schema."""
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(dict(schema))
        self._validator = validator_class(schema)

    def errors(self, instance: Any) -> list[dict[str, Any]]:
        """Every way ``instance`` fails: ``{message, path, schema_path, validator, input}``."""
        errors = sorted(
            self._validator.iter_errors(instance),
            key=lambda error: [str(part) for part in error.absolute_path],
        )
        return [
            {
                "message": error.message,
                "path": list(error.absolute_path),
                "schema_path": list(error.absolute_schema_path),
                "validator": str(error.validator),
                "input": error.instance,
            }
            for error in errors
        ]


def validation_errors(schema: Mapping[str, Any], instance: Any) -> list[dict[str, Any]]:
    """Every way ``instance`` fails ``schema`` (a one-off :class:`SchemaValidator`)."""
    return SchemaValidator(schema).errors(instance)
