"""A workflow package's metadata, cached per resolved package, and what is checked against it.

``get rjsf``, ``get params`` and ``get data-connection-property-names`` are run once per package
(a package's metadata does not change). Params and form data are validated against them before
anything else is spawned; a package too old to have ``get params`` validates its own params.
Data-connection variable names are checked against the package too: its activation
environment's names are its own, and a name the pattern does not admit must be declared.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import jsonschema
from pydantic import TypeAdapter, ValidationError

from .contract import EXIT_BAD_INPUT, FormKind, convert_argv, get_argv
from .contract import MetadataDocument as Document
from .environments import Environment
from .errors import RequestValidationError, SchemaValidationError, UpstreamError
from .invokers import InvokerContext
from .schemas import SchemaValidator, ValidationErrorItem
from .singleflight import SingleFlight
from .workflow_commands import CommandFailed, check_output

log = logging.getLogger(__name__)

_ITEMS = TypeAdapter(list[ValidationErrorItem])


class Metadata:
    """Per-package metadata documents and the validators built from them."""

    def __init__(self, context: InvokerContext) -> None:
        self.context = context
        self._documents: dict[tuple[str, str, str], Any] = {}
        self._validators: dict[tuple[str, str, str], SchemaValidator | None] = {}
        self._flight = SingleFlight()

    @staticmethod
    def _key(environment: Environment, what: str) -> tuple[str, str, str]:
        return (environment.key, environment.name, what)

    async def document(self, environment: Environment, what: Document) -> Any:
        """The JSON a ``get <what>`` command prints (502 when it fails or is not JSON)."""
        key = self._key(environment, what)
        if key in self._documents:
            return self._documents[key]
        return await self._flight.run(key, lambda: self._fetch(environment, what, key))

    async def _check_output(
        self, environment: Environment, args: Sequence[str], stdin: bytes | None = None
    ) -> bytes:
        context = self.context
        return await check_output(context.settings, context.reaper, environment, args, stdin)

    async def _fetch(
        self, environment: Environment, what: Document, key: tuple[str, str, str]
    ) -> Any:
        output = await self._check_output(environment, get_argv(what))
        try:
            document = json.loads(output)
        except ValueError as exc:
            raise UpstreamError(f"`{key[1]} get {what}` printed invalid JSON: {exc}") from None
        self._documents[key] = document
        return document

    async def validator(self, environment: Environment, kind: FormKind) -> SchemaValidator | None:
        """The validator for params (``get params``) or form data (``get rjsf``).

        None when a package has no usable params schema: it validates its own params.
        """
        what: Document = "params" if kind == "params" else "rjsf"
        key = self._key(environment, what)
        if key in self._validators:
            return self._validators[key]
        try:
            document = await self.document(environment, what)
        except UpstreamError as exc:
            if kind != "params":
                raise
            log.warning("no params schema for %s (%s); it validates its own params", key[1], exc)
            if isinstance(exc, CommandFailed) and exc.exit_code != EXIT_BAD_INPUT:
                return None  # maybe a passing failure: ask again next time
            document = None  # `get params` is not a command it knows: it never will be
        validator = None
        if isinstance(document, dict):
            schema = {k: v for k, v in document.items() if k != "uiSchema"}
            try:
                validator = SchemaValidator(schema)
            except jsonschema.SchemaError as exc:
                if kind != "params":
                    raise UpstreamError(
                        f"`{key[1]} get {what}` is not a valid JSON Schema: {exc.message}"
                    ) from None
                log.warning("the params schema of %s is invalid: %s", key[1], exc.message)
        self._validators[key] = validator
        return validator

    async def validate_params(self, environment: Environment, params: dict[str, Any]) -> None:
        """Raise SchemaValidationError (422) when ``params`` fail the package's schema."""
        validator = await self.validator(environment, "params")
        if validator is not None:
            errors = validator.errors(params)
            if errors:
                raise SchemaValidationError(errors)

    async def validate_data_connections(
        self, environment: Environment | None, names: Iterable[str]
    ) -> None:
        """Raise RequestValidationError (422, one item per name) for data-connection variable
        names the workflow may not take: a name its activation environment sets, or one that
        neither matches ``WTRUNNER_DATA_CONNECTION_ENV_PATTERN`` nor is declared by the package
        (a key of ``get data-connection-property-names``, asked only for such a name, once per
        package). Without a local environment (Cloud Batch) only the pattern admits a name."""
        names = list(names)
        if not names:
            return
        pattern = self.context.settings.data_connection_env_pattern
        activated = {name.upper() for name in environment.activation_env} if environment else set()
        problems: list[tuple[str, str]] = []
        undeclared = []
        for name in names:
            if name.upper() in activated:
                problems.append((name, f"{name} is reserved and cannot be set by a request: "
                                       "the workflow's environment sets it"))  # fmt: skip
            elif not re.fullmatch(pattern, name):
                undeclared.append(name)
        if undeclared:
            declared = await self.data_connection_names(environment) if environment else set()
            problems += [
                (name, f"{name} is neither a data connection the workflow declares nor a name "
                       f"matching WTRUNNER_DATA_CONNECTION_ENV_PATTERN ({pattern})")
                for name in undeclared
                if name not in declared
            ]  # fmt: skip
        if problems:
            raise RequestValidationError(
                [
                    {
                        "type": "env_name",
                        "loc": ["data_connections_env_vars", name],
                        "msg": message,
                        "input": name,
                    }
                    for name, message in problems
                ]
            )

    async def data_connection_names(self, environment: Environment) -> set[str]:
        """The data connections the package declares: the keys of ``get
        data-connection-property-names``; none for a package without that command."""
        what: Document = "data-connection-property-names"
        try:
            document = await self.document(environment, what)
        except CommandFailed as exc:
            if exc.exit_code != EXIT_BAD_INPUT:
                raise
            # a package too old to have the command declares nothing, and never will
            self._documents[self._key(environment, what)] = document = {}
        if isinstance(document, (dict, list)):  # the names are the keys (a list: the items)
            return {name for name in document if isinstance(name, str)}
        return set()

    async def convert(
        self, environment: Environment, source: FormKind, data: dict[str, Any]
    ) -> Any:
        """Form data -> params or params -> form data, through the workflow's ``convert``."""
        validator = await self.validator(environment, source)
        if validator is not None:
            errors = validator.errors(data)
            if errors:
                raise SchemaValidationError(errors)
        args = convert_argv(source)
        output = await self._check_output(environment, args, json.dumps(data).encode())
        command = f"`{self._key(environment, source)[1]} {' '.join(args)}`"
        try:
            answer = json.loads(output)
        except ValueError as exc:
            raise UpstreamError(f"{command} printed invalid JSON: {exc}") from None
        if isinstance(answer, dict) and "validation_errors" in answer:
            try:
                items = _ITEMS.validate_python(answer["validation_errors"])
            except ValidationError:
                raise UpstreamError(f"{command} printed malformed validation errors") from None
            raise SchemaValidationError([item.model_dump() for item in items])
        if not isinstance(answer, dict) or "result" not in answer:
            raise UpstreamError(f'{command} printed neither "result" nor "validation_errors"')
        return answer["result"]
