"""What both Pub/Sub front doors do with a message: run it once, and say whether to ack it.

A message is *processed* (the run finished, or a non-waitable back end took it), an *error*
(it can never succeed: acked, with the error written as result.json when the results URL is
known), to *retry* (a channel or results store out of reach, run slots full: Pub/Sub redelivers
it), or a *duplicate* of a run in flight or finished here within the last hour.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..errors import Location, RequestValidationError, SchemaValidationError, WtrunnerError
from ..results import ResultsStore, normalize_results_url, public_url
from ..run_request import OutcomeKind, RunInput, RunOutcome, RunRequest, build_run_request
from ..runs import RunService
from ..runstore import FrontDoor
from ..settings import Settings
from .messages import CommandError, RunWorkflow, parse_command

log = logging.getLogger(__name__)

FINISHED_MEMORY_SECONDS = 3600.0

Status = Literal["processed", "error", "retry", "duplicate"]


@dataclass(frozen=True)
class Disposition:
    """The verdict on one message; ``duplicate`` when it repeated a run already in flight."""

    status: Status
    error: str | None = None
    trace: str | None = None
    duplicate: bool = False

    @property
    def ack(self) -> bool:
        """Whether the message is done with (every status but ``retry``)."""
        return self.status != "retry"


class RunLedger:
    """Runs in flight and runs finished recently in this process, by duplicate key."""

    def __init__(self) -> None:
        self._in_flight: dict[str, asyncio.Future[Disposition]] = {}
        self._finished: dict[str, float] = {}

    def finished_recently(self, key: str) -> bool:
        """Whether a run with this key finished here within the last hour."""
        self._forget_old()
        return key in self._finished

    def in_flight(self, key: str) -> asyncio.Future[Disposition] | None:
        """The outcome-to-be of the run with this key, if it is running here now."""
        return self._in_flight.get(key)

    def start(self, key: str) -> asyncio.Future[Disposition]:
        """Record that the run with this key starts now."""
        future: asyncio.Future[Disposition] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        return future

    def finish(self, key: str, disposition: Disposition) -> None:
        """Record the verdict; a run to retry is not remembered as finished."""
        future = self._in_flight.pop(key, None)
        if future is not None and not future.done():
            future.set_result(disposition)
        if disposition.status in ("processed", "error"):
            self._finished[key] = time.monotonic()

    def _forget_old(self) -> None:
        horizon = time.monotonic() - FINISHED_MEMORY_SECONDS
        for key in [key for key, when in self._finished.items() if when < horizon]:
            del self._finished[key]


def duplicate_key(command: RunWorkflow, delivery_id: str) -> str:
    """``workflow_run_id``, or the Pub/Sub message id when that is empty."""
    run_id = command.payload.invoker_kwargs.workflow_run_id
    return f"run:{run_id}" if run_id else f"message:{delivery_id or command.message_id}"


class PubSubRunner:
    """Turns RunWorkflow messages into runs on the one run path, capped in time."""

    def __init__(self, settings: Settings, runs: RunService, results: ResultsStore) -> None:
        self.settings = settings
        self.runs = runs
        self.results = results
        self.ledger = RunLedger()

    def to_run_request(self, command: RunWorkflow) -> RunRequest:
        """The RunRequest of a command (422 items located in the message)."""
        payload = command.payload
        kwargs = payload.invoker_kwargs
        trace = kwargs.trace_context
        given = RunInput(
            matchspec=payload.match_spec,
            invoker_type=payload.invoker_type,
            workflow_run_id=kwargs.workflow_run_id,
            params=kwargs.params,
            execution_mode=kwargs.execution_mode,
            mock_io=kwargs.mock_io,
            results_url=kwargs.results_url,
            data_connections_env_vars=kwargs.data_connections_env_vars or {},
            lithops_config=kwargs.lithops_config,
            timeout=kwargs.timeout,
            traceparent=trace.traceparent if trace else None,
            tracestate=trace.tracestate if trace else None,
            invoker_options=kwargs.invoker_options(),
        )
        try:
            return build_run_request(self.settings, given)
        except RequestValidationError as exc:
            raise exc.placed(place_in_message) from None

    async def process(
        self,
        data: bytes | Callable[[], bytes],
        delivery_id: str,
        front_door: FrontDoor = "pubsub-push",
    ) -> Disposition:
        """Run the command in ``data`` once and return the verdict.

        ``data`` may be a callable that decodes it (its CommandError is an ``error``).
        A copy of a run in flight waits for that run and shares its verdict (so it is acked
        with it); a copy of one finished here within the last hour is not run again.
        """
        try:
            command = parse_command(data() if callable(data) else data)
        except CommandError as exc:
            log.warning("Pub/Sub message %s can never run: %s", delivery_id, exc)
            if exc.results_url is not None:
                await self._write_error(exc.results_url, str(exc), None)
            return Disposition("error", error=str(exc))
        key = duplicate_key(command, delivery_id)
        if self.ledger.finished_recently(key):
            log.info("Pub/Sub message %s repeats finished run %s: not run again", delivery_id, key)
            return Disposition("duplicate")
        running = self.ledger.in_flight(key)
        if running is not None:
            log.info("Pub/Sub message %s repeats run %s in flight", delivery_id, key)
            return dataclasses.replace(await asyncio.shield(running), duplicate=True)

        self.ledger.start(key)
        disposition = Disposition("retry", error="the run was interrupted")
        try:
            disposition = await self._run(command, front_door)
        finally:
            self.ledger.finish(key, disposition)
        return disposition

    async def _run(self, command: RunWorkflow, front_door: FrontDoor) -> Disposition:
        try:
            request = self.to_run_request(command)
            # a run waited for here never outlives WTRUNNER_PUBSUB_MAX_RUN_SECONDS
            cap = self.settings.pubsub_max_run_seconds
            try:
                outcome = await self.runs.run(
                    request, "run-from-pubsub-endpoint", max_wait=cap, front_door=front_door
                )
            except RequestValidationError as exc:
                raise exc.placed(place_in_message) from None
        except WtrunnerError as exc:
            if exc.transient:
                log.warning("run %s will be retried: %s", _run_id(command), exc)
                return Disposition("retry", error=str(exc))
            error = _describe(exc)
            await self._write_error(command.payload.invoker_kwargs.results_url, error, None)
            return Disposition("error", error=error)
        return await self._dispose(command, outcome)

    async def _dispose(self, command: RunWorkflow, outcome: RunOutcome) -> Disposition:
        if outcome.succeeded:
            return Disposition("processed")
        if outcome.kind is not OutcomeKind.WORKFLOW_ERROR:  # it wrote no result.json of its own
            url = command.payload.invoker_kwargs.results_url
            await self._write_error(url, outcome.error, outcome.trace)
        return Disposition("error", error=outcome.error, trace=outcome.trace)

    async def _write_error(self, results_url: str, error: str | None, trace: str | None) -> None:
        """Write ``{"result": null, "error", "trace"}`` where the results were to go."""
        try:
            url = normalize_results_url(results_url, self.settings.results_roots)
            await self.results.write(url, {"result": None, "error": error, "trace": trace})
        except WtrunnerError as exc:
            log.error("could not write an error result to %s: %s", public_url(results_url), exc)


def place_in_message(loc: Location) -> Location:
    """Where a RunWorkflow command holds a field the run core names plainly."""
    name = loc[0] if loc else ""
    if name == "matchspec":
        return ["payload", "match_spec", *loc[1:]]
    if name == "invoker_type":
        return ["payload", *loc]
    return ["payload", "invoker_kwargs", *loc]


def _describe(exc: WtrunnerError) -> str:
    if isinstance(exc, RequestValidationError):
        return f"invalid run request: {exc}"
    if isinstance(exc, SchemaValidationError):
        return f"the params fail the workflow's schema: {exc}"
    return str(exc.detail)


def _run_id(command: RunWorkflow) -> str:
    return command.payload.invoker_kwargs.workflow_run_id or command.message_id
