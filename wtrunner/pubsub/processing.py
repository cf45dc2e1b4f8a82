"""What both Pub/Sub front doors do with a message: run it once, and say whether to ack it.

A message is *processed* (the run finished, or a non-waitable back end took it), an *error*
(it can never succeed: acked, with the error written as result.json when the results URL is
known), to *retry* (a channel or results store out of reach, run slots full: Pub/Sub redelivers
it), or a *duplicate* of a run that succeeded before. A copy of a run in flight (anywhere the
run store reaches) waits for it and shares its verdict. Runs are named by ``workflow_run_id``,
else by the Pub/Sub message id; a run that ended otherwise (failed, lost, ...) runs again as
its next attempt when its message comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..errors import Location, RequestValidationError, SchemaValidationError, WtrunnerError
from ..results import ResultsStore, normalize_results_url, public_url
from ..run_request import OutcomeKind, RunInput, RunOutcome, RunRequest, build_run_request
from ..runs import RunConflict, RunService
from ..runstore import FrontDoor
from ..settings import Settings
from .messages import CommandError, RunWorkflow, parse_command

log = logging.getLogger(__name__)


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


class PubSubRunner:
    """Turns RunWorkflow messages into runs on the one run path, capped in time."""

    def __init__(self, settings: Settings, runs: RunService, results: ResultsStore) -> None:
        self.settings = settings
        self.runs = runs
        self.results = results

    def to_run_request(self, command: RunWorkflow, delivery_id: str = "") -> RunRequest:
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
            idempotency_key=f"pubsub-message:{delivery_id or command.message_id}",
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
        with it); a copy of one that succeeded is not run again.
        """
        try:
            command = parse_command(data() if callable(data) else data)
        except CommandError as exc:
            log.warning("Pub/Sub message %s can never run: %s", delivery_id, exc)
            if exc.results_url is not None:
                await self._write_error(exc.results_url, str(exc), None)
            return Disposition("error", error=str(exc))
        return await self._run(command, delivery_id, front_door)

    async def _run(
        self, command: RunWorkflow, delivery_id: str, front_door: FrontDoor
    ) -> Disposition:
        try:
            request = self.to_run_request(command, delivery_id)
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
            if not isinstance(exc, RunConflict):  # (those results belong to the other request)
                await self._write_error(command.payload.invoker_kwargs.results_url, error, None)
            return Disposition("error", error=error)
        return await self._dispose(command, outcome)

    async def _dispose(self, command: RunWorkflow, outcome: RunOutcome) -> Disposition:
        if outcome.duplicate == "finished":
            log.info("Pub/Sub run %s succeeded before: not run again", outcome.run_id)
            return Disposition("duplicate")
        repeated = outcome.duplicate is not None
        if outcome.succeeded:
            return Disposition("processed", duplicate=repeated)
        if repeated:  # the run it repeated has written its error already
            return Disposition("error", error=outcome.error, trace=outcome.trace, duplicate=True)
        if outcome.kind is not OutcomeKind.WORKFLOW_ERROR:  # it wrote no result.json of its own
            url = command.payload.invoker_kwargs.results_url
            await self._write_error(url, outcome.error, outcome.trace)
        return Disposition("error", error=outcome.error, trace=outcome.trace)

    async def _write_error(self, results_url: str, error: str | None, trace: str | None) -> None:
        """Write ``{"result": null, "error", "trace"}`` where the results were to go."""
        try:
            url = normalize_results_url(results_url, self.settings.effective_results_roots)
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
