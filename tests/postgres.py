"""The PostgreSQL server the run store's tests use: a fresh schema per test in a database of the
session (cheap), a fresh database for the tests that need one, and a TCP relay that plays the
server going away and coming back.

The server is the one on 127.0.0.1:5432 (user ``postgres``, no password, trusted). When it cannot
be reached a test that needs it is skipped, or failed with ``WTRUNNER_REQUIRE_POSTGRES=1`` (CI).
Every database and role made here is named ``wtrunner_test_<hex>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import NoReturn

import asyncpg
import pytest

from tests.processes import free_port

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
ADMIN_DATABASE = "postgres"
CONNECT_TIMEOUT_SECONDS = 10


def url(database: str, port: int = PORT, *, user: str = USER) -> str:
    """The run store URL of ``database`` on the test server (or through a relay's ``port``),
    connecting as ``user``."""
    return f"postgresql://{user}@{HOST}:{port}/{database}"


def missing(reason: str) -> NoReturn:
    """Skip, unless PostgreSQL is required (CI): then fail."""
    if os.environ.get("WTRUNNER_REQUIRE_POSTGRES", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (WTRUNNER_REQUIRE_POSTGRES is set)")
    pytest.skip(reason)


def database_of(database_url: str) -> str:
    """The database name of a URL :func:`url` made."""
    return database_url.rsplit("/", 1)[1]


def user_of(database_url: str) -> str:
    """The user (role) a URL :func:`url` made connects as."""
    user = urllib.parse.urlsplit(database_url).username
    assert user is not None, database_url
    return user


def _new_name() -> str:
    return f"wtrunner_test_{secrets.token_hex(6)}"


async def connect(database: str = ADMIN_DATABASE, *, user: str = USER) -> asyncpg.Connection:
    """A connection of its own to ``database`` on the test server (by default the ``postgres``
    database, to create and drop others) as ``user``; skips or fails when the server is
    unreachable."""
    try:
        return await asyncpg.connect(
            host=HOST,
            port=PORT,
            user=user,
            database=database,
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        missing(f"no PostgreSQL server answers on {HOST}:{PORT}: {exc}")


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty database for one test (its URL); dropped afterwards, connections and all."""
    name = await _create_database()
    try:
        yield url(name)
    finally:
        await _drop_database(name)


async def _create_database() -> str:
    name = _new_name()
    admin = await connect()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def _drop_database(name: str) -> None:
    admin = await connect()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.contextmanager
def session_database() -> Iterator[str]:
    """A new database (its name) for many tests, each in a schema of its own (see
    :func:`fresh_schema`); dropped afterwards. Creating a database takes a few hundred
    milliseconds, a schema a few: this is what makes a fresh PostgreSQL store per test cheap."""
    name = asyncio.run(_create_database())
    try:
        yield name
    finally:
        asyncio.run(_drop_database(name))


@contextlib.asynccontextmanager
async def fresh_schema(database: str) -> AsyncIterator[str]:
    """A fresh, empty run store in ``database``, which other tests share: the URL of a new
    role whose search_path is only its own new, empty schema. A store opened on that URL
    creates and finds every table (``alembic_version`` too) in that schema, so it sees
    nothing of the other tests' stores and they nothing of its. Afterwards the role's
    connections are ended and the role, its schema and everything in it dropped.

    Unlike a fresh database, the database's advisory locks are shared (tests run one at a
    time, so no two migrate at once) and so is ``pg_stat_activity`` (filter on the role)."""
    role = _new_name()
    admin = await connect(database)
    try:
        async with admin.transaction():
            await admin.execute(f'CREATE ROLE "{role}" LOGIN')
            await admin.execute(f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"')
            await admin.execute(f'ALTER ROLE "{role}" SET search_path = "{role}"')
    finally:
        await admin.close()
    try:
        yield url(database, user=role)
    finally:
        admin = await connect(database)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
            async with admin.transaction():
                await admin.execute(f'DROP OWNED BY "{role}"')  # the schema and its tables
                await admin.execute(f'DROP ROLE "{role}"')
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
