"""The PostgreSQL server the run store's tests use: a fresh database per test, and a TCP relay
that plays the server going away and coming back.

The server is the one on 127.0.0.1:5432 (user ``postgres``, no password). When it cannot be
reached a test that needs it is skipped, or failed with ``WTRUNNER_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import NoReturn

import asyncpg
import pytest

from tests.processes import free_port

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
ADMIN_DATABASE = "postgres"
CONNECT_TIMEOUT_SECONDS = 10


def url(database: str, port: int = PORT) -> str:
    """The run store URL of ``database`` on the test server (or through a relay's ``port``)."""
    return f"postgresql://{USER}@{HOST}:{port}/{database}"


def missing(reason: str) -> NoReturn:
    """Skip, unless PostgreSQL is required (CI): then fail."""
    if os.environ.get("WTRUNNER_REQUIRE_POSTGRES", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (WTRUNNER_REQUIRE_POSTGRES is set)")
    pytest.skip(reason)


def database_of(database_url: str) -> str:
    """The database name of a URL :func:`url` made."""
    return database_url.rsplit("/", 1)[1]


async def connect(database: str = ADMIN_DATABASE) -> asyncpg.Connection:
    """A connection of its own to ``database`` on the test server (by default the ``postgres``
    database, to create and drop others); skips or fails when the server is unreachable."""
    try:
        return await asyncpg.connect(
            host=HOST,
            port=PORT,
            user=USER,
            database=database,
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        missing(f"no PostgreSQL server answers on {HOST}:{PORT}: {exc}")


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty database for one test (its URL); dropped afterwards, connections and all."""
    name = f"wtrunner_test_{secrets.token_hex(6)}"
    admin = await connect()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield url(name)
    finally:
        admin = await connect()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


class Relay:
    """A TCP relay from a free port on 127.0.0.1 to the PostgreSQL server.

    A store opened through it loses the server when it is stopped (the port is closed and every
    relayed connection cut, as when the server goes away) and finds it again when it is started
    once more on the same port.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._sockets: set[asyncio.StreamWriter] = set()  # both ends of each relayed connection
        self._relays: set[asyncio.Task[None]] = set()

    def url(self, database_url: str) -> str:
        """``database_url`` (a database on the test server) reached through this relay."""
        return database_url.replace(f"{HOST}:{PORT}/", f"{HOST}:{self.port}/", 1)

    async def start(self) -> None:
        """Listen (again) on the relay's port."""
        self._server = await asyncio.start_server(self._relay, HOST, self.port)

    async def stop(self) -> None:
        """Close the port and cut every relayed connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for socket in list(self._sockets):
            socket.transport.abort()
        # each relayed connection ends by itself once cut
        await asyncio.gather(*self._relays, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _relay(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        self._sockets.add(client)
        server: asyncio.StreamWriter | None = None
        try:
            server_reader, server = await asyncio.open_connection(HOST, PORT)
            self._sockets.add(server)
            copies = [
                asyncio.ensure_future(_copy(client_reader, server)),
                asyncio.ensure_future(_copy(server_reader, client)),
            ]
            try:
                # either side closing ends the relayed connection
                await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for copy in copies:
                    copy.cancel()
                await asyncio.gather(*copies, return_exceptions=True)
        finally:
            for socket in (client, server):
                if socket is not None:
                    socket.transport.abort()
                    self._sockets.discard(socket)
            self._relays.discard(task)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until end of stream or a broken connection."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
