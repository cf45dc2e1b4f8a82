"""The per-run options of a Cloud Batch job, whichever front door they came through.

``POST /`` takes them as query parameters (``RunQuery`` declares them with these types, so a bad
value is a 422 before anything else happens); Pub/Sub sends the same keys in ``invoker_kwargs``.
Either way they reach the invoker in ``RunRequest.invoker_options`` and are checked again by
:func:`parse_batch_options`. This module imports nothing from Google.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from ..errors import RequestValidationError

BATCH_OPTION_KEYS = (
    "docker_image_uri",
    "cpu_milli",
    "memory_mib",
    "machine_type",
    "gpu_type",
    "gpu_count",
)


def blank_is_unset(value: Any) -> Any:
    """A blank string (a field a publisher left empty) is no value."""
    if isinstance(value, str):
        return value.strip() or None
    return value


# Each type includes None (unset: the settings' default), so RunQuery and BatchOptions share it.
CpuMilli = Annotated[
    int | None,
    Field(gt=0, description="vCPU for the Cloud Batch task in thousandths (8000 = 8 vCPU)"),
]
MemoryMib = Annotated[
    int | None,
    Field(gt=0, description="memory for the Cloud Batch task in MiB"),
]
GpuCount = Annotated[
    int | None,
    Field(ge=1, description="number of GPUs of gpu_type on the Cloud Batch VM (default 1)"),
]
MachineType = Annotated[
    str | None,
    BeforeValidator(blank_is_unset),
    Field(description="Compute Engine machine type of the Cloud Batch VM"),
]
GpuType = Annotated[
    str | None,
    BeforeValidator(blank_is_unset),
    Field(description="accelerator type of the Cloud Batch VM, e.g. nvidia-tesla-t4"),
]
ImageUri = Annotated[
    str | None,
    BeforeValidator(blank_is_unset),
    Field(description="container image holding the workflow (Cloud Batch only, required there)"),
]


class BatchOptions(BaseModel):
    """What one run may choose about its Batch job; unset values take the settings' defaults."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    docker_image_uri: ImageUri = None
    cpu_milli: CpuMilli = None
    memory_mib: MemoryMib = None
    machine_type: MachineType = None
    gpu_type: GpuType = None
    gpu_count: GpuCount = None

    @field_validator("cpu_milli", "memory_mib", "gpu_count", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        # pydantic takes true for 1; a JSON boolean (Pub/Sub kwargs) is never a count.
        if isinstance(value, bool):
            raise ValueError("must be an integer, not a boolean")
        return value


def parse_batch_options(options: Mapping[str, Any]) -> BatchOptions:
    """Validate ``options`` for a Batch job, or raise a 422 naming every bad key.

    ``docker_image_uri`` is required, and ``gpu_count`` means nothing without ``gpu_type``.
    """
    problems: list[dict[str, Any]] = []
    try:
        parsed = BatchOptions.model_validate(dict(options))
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_context=False):
            problems.append(
                {
                    "type": error["type"],
                    "loc": [str(part) for part in error["loc"]],
                    "msg": error["msg"],
                    "input": error.get("input"),
                }
            )
        raise RequestValidationError(problems) from None
    if parsed.docker_image_uri is None:
        problems.append(
            {
                "type": "missing",
                "loc": ["docker_image_uri"],
                "msg": "required by CloudBatchInvoker: the container image holding the workflow",
                "input": options.get("docker_image_uri"),
            }
        )
    if parsed.gpu_count is not None and parsed.gpu_type is None:
        problems.append(
            {
                "type": "value_error",
                "loc": ["gpu_count"],
                "msg": "gpu_count needs gpu_type (the accelerator type to attach)",
                "input": options.get("gpu_count"),
            }
        )
    if problems:
        raise RequestValidationError(problems)
    return parsed
