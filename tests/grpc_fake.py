"""What the gRPC fakes of Google Cloud APIs share (``tests/batch/fake.py``,
``tests/cloudrun/fake.py``): an in-process ``grpc.aio`` server on 127.0.0.1, scripted failures,
held answers and the arrival of requests.

A fake subclasses :class:`GrpcFake`: it names the generic handlers of its services
(:meth:`GrpcFake.handlers`, built with :func:`unary`) and lets each method begin with
``failure = await self._enter(method, context)`` and end, once it has done its work, with
``await self._lose_answer(failure, context)``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import grpc
from google.longrunning import operations_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Fake = TypeVar("Fake", bound="GrpcFake")


@dataclass
class Failure:
    """How the fake answers one call: abort with ``code``, before or (``after_doing``) after
    doing what was asked (creating, starting, deleting, cancelling), or (``hang``) never answer,
    so that the client's deadline passes."""

    code: grpc.StatusCode
    message: str
    after_doing: bool = False
    hang: bool = False


def now() -> dt.datetime:
    """The current time, as Google stamps its resources and events."""
    return dt.datetime.now(dt.timezone.utc)


def unary(
    behaviour: Callable[..., Any], request: Any, serialize: Callable[[Any], bytes]
) -> grpc.RpcMethodHandler:
    """A unary method answered by ``behaviour``: its requests parsed as the library's message
    class ``request``, its answers written with ``serialize``."""
    return grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=request.deserialize, response_serializer=serialize
    )


def pending_operation(name: str, metadata: Message) -> operations_pb2.Operation:
    """A ``google.longrunning`` Operation called ``name`` that is not done, ``metadata`` (a
    protobuf message) packed in it."""
    packed = any_pb2.Any()
    packed.Pack(metadata)
    return operations_pb2.Operation(name=name, done=False, metadata=packed)


class GrpcFake:
    """A fake Google API on a free port of 127.0.0.1 (an async context manager: started and
    stopped around its block).

    Tests script failures with :meth:`fail_next`, hold every answer with :meth:`hold` until
    :meth:`release`, and wait for a request to arrive with :meth:`wait_for_request`.
    """

    # The method that fail_next scripts when it is not told one.
    default_method = ""

    def __init__(self) -> None:
        self.endpoint = ""  # http://127.0.0.1:PORT once started
        self._failures: dict[str, list[Failure]] = {}
        self._gate: asyncio.Event | None = None
        self._arrived: asyncio.Event | None = None
        self._server: grpc.aio.Server | None = None

    def handlers(self) -> Sequence[grpc.GenericRpcHandler]:
        """The generic handlers of the services this fake serves."""
        raise NotImplementedError

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1; ``endpoint`` is ``http://127.0.0.1:PORT``."""
        self._arrived = asyncio.Event()
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(tuple(self.handlers()))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        self.endpoint = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop at once; calls still held are cancelled."""
        if self._gate is not None:
            self._gate.set()
        if self._server is not None:
            await self._server.stop(None)

    async def __aenter__(self: Fake) -> Fake:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def fail_next(
        self,
        code: grpc.StatusCode,
        message: str = "scripted failure",
        *,
        times: int = 1,
        after_doing: bool = False,
        hang: bool = False,
        method: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (default: :attr:`default_method`) fail
        (see :class:`Failure`)."""
        failures = self._failures.setdefault(method or self.default_method, [])
        failures += [Failure(code, message, after_doing, hang) for _ in range(times)]

    def clear_failures(self) -> None:
        """Forget the failures still scripted: every method answers normally again."""
        self._failures.clear()

    def hold(self) -> None:
        """Hold every answer until :meth:`release`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Answer the held calls."""
        assert self._gate is not None
        self._gate.set()

    async def wait_for_request(self, timeout: float = 10.0) -> None:
        """Return once a request (of any method) has arrived (bounded)."""
        assert self._arrived is not None
        await asyncio.wait_for(self._arrived.wait(), timeout)

    async def _enter(self, method: str, context: Context) -> Failure | None:
        """What every call does first: note its arrival, wait while held, take its failure
        and abort now unless it fails only after doing its work (returned then)."""
        assert self._arrived is not None
        self._arrived.set()
        if self._gate is not None:
            await self._gate.wait()
        failures = self._failures.get(method)
        failure = failures.pop(0) if failures else None
        if failure is not None and failure.hang:
            await asyncio.Event().wait()  # until the client gives up and the call is cancelled
        if failure is not None and not failure.after_doing:
            await context.abort(failure.code, failure.message)
        return failure

    async def _lose_answer(self, failure: Failure | None, context: Context) -> None:
        """What a call that did its work does last: abort with the failure :meth:`_enter`
        returned, if any (the work is done, its answer lost)."""
        if failure is not None:
            await context.abort(failure.code, failure.message)
