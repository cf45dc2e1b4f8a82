"""The durable run store: run records in a SQL database through SQLAlchemy 2.

The embedded default is a SQLite file (WAL journal, a busy timeout on every connection);
PostgreSQL (asyncpg, SQLAlchemy's asyncio extension) serves several replicas from one
database. Every store call is one unit of work on a connection (:class:`Database`): on
PostgreSQL its statements are awaited on the event loop; on SQLite, whose driver blocks, the
whole call runs in the store's worker thread, so a call costs the event loop one hand-off (an
async SQLite driver hands every cursor operation over: about forty per run). Either way the
pool is bounded (``pool_size`` connections, no overflow): a request that gets no connection
within the pool timeout, like one that cannot reach the database, is a 503. On PostgreSQL each
connection is pinged before use, so the pool recovers by itself once the server is back.

:meth:`RunStore.open` brings the schema to the newest Alembic revision before anything else
touches it (an empty database gets the newest tables at once, without Alembic); on PostgreSQL
the migration transaction first takes an advisory lock, so replicas starting together migrate
one after the other.

On SQLite every transaction that writes begins with ``BEGIN IMMEDIATE``: it takes the write
lock first (waiting up to the busy timeout), so a read followed by a write in one transaction
never fails on a snapshot another writer made stale. A run's own writes need no transaction:
its record is one insert, and a state change one conditional update (``WHERE id = ? AND state
IN <the states it may come from>``), each committed by itself, race-safe on both databases;
statements that take several runs at once (leases, runs of dead replicas) lock them with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent callers never take the same run.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import contextlib
import datetime as dt
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    Update,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, Row, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import QueuePool

from ..errors import ServiceUnavailableError, WtrunnerError
from ..handoff import Workers
from ..run_states import FINAL_STATES, TRANSITIONS, InvalidTransition, RunState, check_transition
from ..text import first_line
from .records import NewRun, ReplicaRecord, RunChanges, RunOutcomeRecord, RunPage, RunRecord
from .schema import UTCDateTime, add_postgresql_options, metadata, replicas, runs, version_table

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0003"
"""The newest migration (``migrations/versions``): a database there needs no migrating."""
MAX_LIST_LIMIT = 500
SQLITE_BUSY_TIMEOUT_MS = 10_000
POOL_TIMEOUT_SECONDS = 10.0
"""How long a query waits for a free pooled connection before it is a 503."""
RETRY_AFTER = {"Retry-After": "5"}
"""What a 503 of an unusable run store tells clients: try again in a few seconds."""
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10.0
"""How long asyncpg tries to open one connection (its own default is a minute)."""
MIGRATION_LOCK_KEY = int.from_bytes(b"wtrunner", "big")
"""The PostgreSQL advisory lock (a fixed 64-bit key) held while one replica migrates."""
# the execution option that makes a SQLite transaction begin with BEGIN IMMEDIATE (None: no
# BEGIN at all, each statement committed by itself)
_SQLITE_BEGIN = "wtrunner_sqlite_begin"
_UPDATABLE = frozenset(RunChanges.model_fields)
_UNFINISHED = [state.value for state in RunState if not state.final]
_FINAL = [state.value for state in FINAL_STATES]
_PRUNE_CHUNK = 500
_ORDER = (runs.c.created_at.desc(), runs.c.id.desc())
_OLDEST_FIRST = (runs.c.created_at, runs.c.id)
# for each state, the states a run may enter it from (the conditional update's IN list)
_SOURCES = {
    new: [old.value for old, targets in TRANSITIONS.items() if new in targets] for new in RunState
}
# a run of a dead replica in one of these is lost; a submitted one goes on in Cloud Batch
_LOST_WITH_REPLICA = [
    state for state in _SOURCES[RunState.LOST] if state != RunState.SUBMITTED.value
]
_LEASABLE = [RunState.SUBMITTED.value, RunState.RUNNING.value]
# SQLSTATE prefixes of a database that cannot be used right now: a connection exception (08),
# insufficient resources such as too many connections (53), a server shutting down or starting
# up (57P01 to 57P03)
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


class RunNotFound(WtrunnerError):
    """No run has that id (404)."""

    status = 404


class DuplicateRun(WtrunnerError):
    """A run with that id, or that idempotency key and attempt, is recorded already (409)."""

    status = 409


def database_url(url: str) -> URL:
    """The SQLAlchemy URL of ``url``: ``sqlite:///path`` (any SQLite driver) becomes
    ``sqlite+pysqlite``, ``postgresql://`` (or ``postgres://``) becomes ``postgresql+asyncpg``;
    another driver named is kept. A malformed URL or an in-memory SQLite database is a
    ValueError."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # the URL may hold a password: it is not repeated
        raise ValueError(
            "not a database URL (sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(drivername="sqlite+pysqlite")
    elif parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            raise ValueError("the run store needs a SQLite file, not an in-memory database")
    return parsed


class Database:
    """How the store reaches its database: units of work on a connection, in a transaction
    (``write``) or not (``read``). Concrete kinds: :class:`SQLiteDatabase`,
    :class:`ServerDatabase`."""

    dialect: str

    async def write(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` in a transaction that is committed when it returns."""
        raise NotImplementedError

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` outside a write transaction."""
        raise NotImplementedError

    async def autocommit(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` with each statement committed as it runs, without a
        transaction around them (a BEGIN and a COMMIT fewer): for work that is one statement,
        or whose statements hold whatever other writers do between them."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close every pooled connection."""
        raise NotImplementedError


class SQLiteDatabase(Database):
    """A SQLite file through the standard library's driver: each unit of work runs whole in
    the store's worker thread, one after the other. SQLite lets one writer in at a time
    anyway, and each further thread made it and the event loop hand the GIL to each other
    more often: a stream of runs cost the server 0.3-0.7 ms more CPU time per run with five
    threads than with one. Write transactions begin IMMEDIATE; a unit of work whose caller is
    cancelled still runs to its end."""

    dialect = "sqlite"

    def __init__(self, url: URL, pool_size: int, pool_timeout: float) -> None:
        """Connect lazily to the file ``url`` names."""
        self.engine: Engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_timeout,
            connect_args={"check_same_thread": False},  # (closed from the event loop's thread)
        )
        _configure_sqlite(self.engine)
        self._writer = self.engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        self._autocommitting = self.engine.execution_options(**{_SQLITE_BEGIN: None})
        self._threads = Workers(1, "wtrunner-runstore")

    async def write(self, work: Callable[[Connection], T]) -> T:
        """``work`` in a BEGIN IMMEDIATE transaction, in a worker thread."""
        return await self._in_thread(self._writer.begin, work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work`` on a connection in a worker thread."""
        return await self._in_thread(self.engine.connect, work)

    async def autocommit(self, work: Callable[[Connection], T]) -> T:
        """``work`` with no BEGIN (the driver commits each statement), in a worker thread."""
        return await self._in_thread(self._autocommitting.connect, work)

    async def _in_thread(self, connect: Callable[[], Any], work: Callable[[Connection], T]) -> T:
        def call() -> T:
            with connect() as conn:
                return work(conn)

        return await self._threads.run(call)

    async def close(self) -> None:
        """Wait for the work in progress, then close the connections."""
        await asyncio.to_thread(self._threads.shutdown)
        self.engine.dispose()


class ServerDatabase(Database):
    """A database server (PostgreSQL) through an asyncio driver: each unit of work's
    statements are awaited on the event loop (SQLAlchemy's ``run_sync``). Connections are
    pinged before use, so the pool recovers by itself once the server is back."""

    def __init__(self, url: URL, pool_size: int, pool_timeout: float) -> None:
        """Connect lazily to the database ``url`` names."""
        # imported here: a server on SQLite never loads SQLAlchemy's asyncio layer (~8 MB)
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import AsyncAdaptedQueuePool

        add_postgresql_options()
        connect_args: dict[str, Any] = {}
        if url.get_driver_name() == "asyncpg":
            connect_args["timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
        self.engine: AsyncEngine = create_async_engine(
            url,
            poolclass=AsyncAdaptedQueuePool,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_timeout,
            # a connection the server dropped is replaced at checkout instead of failing a query
            pool_pre_ping=True,
            connect_args=connect_args,
        )
        self._autocommitting = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.dialect = self.engine.dialect.name

    async def write(self, work: Callable[[Connection], T]) -> T:
        """``work`` in a transaction."""
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work`` on a connection."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(work)

    async def autocommit(self, work: Callable[[Connection], T]) -> T:
        """``work`` on a connection in autocommit mode."""
        async with self._autocommitting.connect() as conn:
            return await conn.run_sync(work)

    async def close(self) -> None:
        """Close the connections."""
        await self.engine.dispose()


class RunStore:
    """Run records: created by the run path, changed only through checked state transitions,
    listed newest first a page at a time, pruned after their retention."""

    def __init__(self, database: Database) -> None:
        """Wrap a database that is migrated already; use :meth:`open` instead."""
        self._database = database

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int = 5, pool_timeout: float = POOL_TIMEOUT_SECONDS
    ) -> RunStore:
        """Open the store at ``url`` (see :func:`database_url`) with at most ``pool_size``
        connections and migrate it to the newest revision; a SQLite file's directory is
        created. Opening an up-to-date store again changes nothing, and so does opening one
        PostgreSQL database from several replicas at once (they migrate one at a time).

        A query that gets no connection within ``pool_timeout`` seconds is a 503."""
        parsed = database_url(url)
        database: Database
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and not parsed.database.startswith("file:"):
                await asyncio.to_thread(_make_parent, parsed.database)
            database = SQLiteDatabase(parsed, pool_size, pool_timeout)
        else:
            database = ServerDatabase(parsed, pool_size, pool_timeout)
        try:
            await database.write(_upgrade_to_head)  # (migrations: errors as they are)
        except BaseException:
            await database.close()
            raise
        return cls(database)

    async def close(self) -> None:
        """Close every pooled connection (call it once, at shutdown)."""
        await self._database.close()

    async def __aenter__(self) -> RunStore:
        """The store itself; it is closed at the end of the ``async with`` block."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the store."""
        await self.close()

    async def _write(self, work: Callable[[Connection], T]) -> T:
        """``work`` in a write transaction; a database that cannot be reached or written is a
        503."""
        with _unavailable_as_503():
            return await self._database.write(work)

    async def _autocommit(self, work: Callable[[Connection], T]) -> T:
        """``work`` that is one statement, or holds whatever other writers do between its
        statements, each committed as it runs; a database that cannot be reached or written
        is a 503."""
        with _unavailable_as_503():
            return await self._database.autocommit(work)

    async def _read(self, work: Callable[[Connection], T]) -> T:
        """``work`` on a connection for reading; a database that cannot be reached is a 503."""
        with _unavailable_as_503():
            return await self._database.read(work)

    async def run_sync(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` in a transaction of the store's database, as the store runs its
        own statements (for tests, benchmarks and maintenance scripts)."""
        return await self._database.write(work)

    @property
    def database(self) -> Database:
        """How the store reaches its database (its engine: for tests and benchmarks)."""
        return self._database

    async def create(self, new: NewRun) -> RunRecord:
        """Record a new run, created now; DuplicateRun if its id (or its idempotency key and
        attempt) is recorded already."""
        now = _now()
        state = RunState(new.state)
        values: dict[str, Any] = {
            **new.model_dump(mode="json"),
            "created_at": now,
            "started_at": now if state is RunState.RUNNING else None,
            "finished_at": now if state.final else None,
            "outcome": None,
            "job_name": None,
            "cancel_requested": False,
        }
        try:
            await self._autocommit(lambda conn: conn.execute(_INSERT_RUN, values))
        except IntegrityError:
            key = f" or idempotency key {new.idempotency_key!r}" if new.idempotency_key else ""
            raise DuplicateRun(
                f"a run with id {new.id!r}{key} (attempt {new.attempt}) is recorded already"
            ) from None
        return RunRecord.model_validate(values)

    async def get(self, run_id: str) -> RunRecord:
        """The run's record; RunNotFound if there is none."""
        return await self._read(lambda conn: _get(conn, run_id))

    async def transition(self, run_id: str, state: RunState, **fields: Any) -> RunRecord:
        """Move the run to ``state`` and set ``fields`` (those :class:`RunChanges` names) in one
        change; its record afterwards.

        A change the run's current state does not allow raises InvalidTransition (the state is
        read and checked in the transaction that changes it, and the change only applies if
        the state is still the one checked). Entering ``running`` sets ``started_at`` and
        entering a final state sets ``finished_at`` to now unless given.
        """
        new_state = RunState(state)
        values = {**_changes(fields), "state": new_state.value}
        now = _now()
        if new_state is RunState.RUNNING and values.get("started_at") is None:
            values["started_at"] = now
        if new_state.final and values.get("finished_at") is None:
            values["finished_at"] = now
        changing = _changing(new_state, tuple(sorted(values)))
        parameters = {**values, _RUN_ID: run_id}
        # One statement changes the run if its state allows it. Only when it changed nothing
        # is the state read, to say why. That read may see a state another writer set after
        # the update looked: if it allows the change, the update is tried again. States only
        # move forward, so a run reaches a final state (where check_transition refuses) within
        # len(RunState) tries. So no transaction is needed around the statements.

        def work(conn: Connection) -> RunRecord:
            for _ in range(len(RunState) + 1):
                row = conn.execute(changing, parameters).first()
                if row is not None:
                    return _record(row)
                check_transition(run_id, _state_of(conn, run_id), new_state)
            raise InvalidTransition(
                f"run {run_id} kept changing; it did not become {new_state.value}"
            )

        return await self._autocommit(work)

    async def update(self, run_id: str, **fields: Any) -> RunRecord:
        """Set ``fields`` (those :class:`RunChanges` names) without changing the state; the
        record afterwards. RunNotFound if there is no such run."""
        changes = _changes(fields)
        if not changes:
            return await self.get(run_id)
        changing = _changing(None, tuple(sorted(changes)))
        parameters = {**changes, _RUN_ID: run_id}
        row = await self._autocommit(lambda conn: conn.execute(changing, parameters).first())
        if row is None:
            raise RunNotFound(f"no run {run_id}")
        return _record(row)

    async def list(
        self,
        *,
        state: RunState | None = None,
        package: str | None = None,
        workflow_run_id: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
        client: str | None = None,
    ) -> RunPage:
        """A page of at most ``limit`` (1 to 500) runs, newest first, that match every filter
        given (``since``: created then or later; ``client``: recorded for that caller);
        ``cursor`` is the previous page's ``next_cursor``. Runs recorded meanwhile never shift
        later pages. A bad limit, cursor or naive ``since`` is a ValueError."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit must be from 1 to {MAX_LIST_LIMIT}, not {limit}")
        conditions: builtins.list[ColumnElement[bool]] = []
        if state is not None:
            conditions.append(runs.c.state == RunState(state).value)
        if package is not None:
            conditions.append(runs.c.package == package)
        if workflow_run_id is not None:
            conditions.append(runs.c.workflow_run_id == workflow_run_id)
        if since is not None:
            conditions.append(runs.c.created_at >= _aware(since, "since"))
        if client is not None:
            conditions.append(runs.c.client == client)
        if cursor is not None:
            created_at, last_id = decode_cursor(cursor)
            # written so that the index on (..., created_at, id) bounds the scan
            conditions.append(runs.c.created_at <= created_at)
            conditions.append(or_(runs.c.created_at < created_at, runs.c.id < last_id))
        query = select(runs).where(*conditions).order_by(*_ORDER).limit(limit + 1)
        records = await self._select(query)
        next_cursor = None
        if len(records) > limit:
            records = records[:limit]
            next_cursor = encode_cursor(records[-1].created_at, records[-1].id)
        return RunPage(runs=records, next_cursor=next_cursor)

    async def find_latest(
        self, *, workflow_run_id: str | None = None, idempotency_key: str | None = None
    ) -> RunRecord | None:
        """The newest attempt of the run that key (or both keys) names; None if there is none.

        An empty key names no run. Giving neither key is a ValueError."""
        if workflow_run_id is None and idempotency_key is None:
            raise ValueError("find_latest needs a workflow_run_id or an idempotency_key")
        if workflow_run_id == "" or idempotency_key == "":
            return None
        conditions: builtins.list[ColumnElement[bool]] = []
        if workflow_run_id is not None:
            conditions.append(runs.c.workflow_run_id == workflow_run_id)
        if idempotency_key is not None:
            conditions.append(runs.c.idempotency_key == idempotency_key)
        query = select(runs).where(*conditions).order_by(runs.c.attempt.desc(), *_ORDER).limit(1)
        records = await self._select(query)
        return records[0] if records else None

    async def delete(self, run_id: str) -> None:
        """Forget the run; RunNotFound if there is none."""
        deleting = delete(runs).where(runs.c.id == run_id)
        deleted = await self._write(lambda conn: conn.execute(deleting).rowcount)
        if deleted != 1:
            raise RunNotFound(f"no run {run_id}")

    async def unfinished(self, replica: str) -> builtins.list[RunRecord]:
        """The runs ``replica`` owns that have not ended, oldest first."""
        query = (
            select(runs)
            .where(runs.c.replica == replica, runs.c.state.in_(_UNFINISHED))
            .order_by(runs.c.created_at, runs.c.id)
        )
        return await self._select(query)

    async def lost_with_processes(self, replica: str) -> builtins.list[RunRecord]:
        """The runs of ``replica`` that ended ``lost`` after their workflow had started: its
        processes may have outlived their server. Oldest first."""
        query = (
            select(runs)
            .where(
                runs.c.replica == replica,
                runs.c.state == RunState.LOST.value,
                runs.c.started_at.is_not(None),
            )
            .order_by(*_OLDEST_FIRST)
        )
        return await self._select(query)

    async def mark_lost(self, replica: str, error: str) -> builtins.list[RunRecord]:
        """End every unfinished run of ``replica`` as ``lost`` with outcome kind ``lost`` and
        ``error``; their records, oldest first (a run that ended meanwhile keeps its state).

        A ``submitted`` run goes on elsewhere (a Cloud Batch job): it is not lost with the
        replica that submitted it.
        """
        return await self._write(lambda conn: _lose(conn, runs.c.replica == replica, error))

    async def prune(self, finished_before: dt.datetime) -> builtins.list[str]:
        """Delete the runs that ended before ``finished_before``; their ids."""
        before = _aware(finished_before, "finished_before")
        finished = select(runs.c.id).where(runs.c.state.in_(_FINAL), runs.c.finished_at < before)

        def work(conn: Connection) -> builtins.list[str]:
            ids = list(conn.execute(finished).scalars())
            for start in range(0, len(ids), _PRUNE_CHUNK):
                chunk = ids[start : start + _PRUNE_CHUNK]
                conn.execute(delete(runs).where(runs.c.id.in_(chunk)))
            return ids

        return await self._write(work)

    async def counts_by_state(self) -> dict[RunState, int]:
        """How many runs are in each state (every state, 0 for those with none)."""
        counts = dict.fromkeys(RunState, 0)
        known = {state.value: state for state in RunState}
        counting = select(runs.c.state, func.count()).group_by(runs.c.state)
        for value, count in await self._read(lambda conn: conn.execute(counting).all()):
            if value in known:
                counts[known[value]] = count
        return counts

    # ---- replicas: heartbeats, runs of dead replicas, cancellations, Batch leases ----------

    async def heartbeat(self, replica: str, advertise_url: str | None) -> None:
        """Record that ``replica`` is alive now (and where other replicas reach it): its row is
        created on its first heartbeat (``started_at``) and updated on the next ones. The time
        is taken when the statement runs, not before a connection was free."""
        dialect = self._database.dialect
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            upsert: Any = postgresql.insert(replicas)
        elif dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            upsert = sqlite.insert(replicas)
        else:
            raise NotImplementedError(f"heartbeats need SQLite or PostgreSQL, not {dialect}")
        upsert = upsert.values(
            id=replica,
            advertise_url=advertise_url,
            started_at=bindparam("now", type_=UTCDateTime()),
            heartbeat_at=bindparam("now", type_=UTCDateTime()),
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=[replicas.c.id],
            set_={
                "advertise_url": upsert.excluded.advertise_url,
                "heartbeat_at": upsert.excluded.heartbeat_at,
            },
        )
        await self._write(lambda conn: conn.execute(upsert, {"now": _now()}))

    async def replica(self, replica_id: str) -> ReplicaRecord | None:
        """The replica's last heartbeat; None if it has none (never, or forgotten)."""
        query = select(replicas).where(replicas.c.id == replica_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return None if row is None else ReplicaRecord.model_validate(row._asdict())

    async def mark_lost_of_dead_replicas(
        self, timeout: dt.timedelta, error: str, *, alive: str | None = None
    ) -> builtins.list[RunRecord]:
        """End as ``lost`` (outcome kind ``lost`` with ``error``) every unfinished run whose
        replica is dead: its last heartbeat is older than ``timeout``, or it has no heartbeat
        at all and the run was created more than ``timeout`` ago. Their records, oldest first.

        ``alive`` (the calling replica) is never taken for dead, however late its own last
        heartbeat was written. A ``submitted`` run goes on in Cloud Batch without its replica:
        it is not lost. Replicas may call this at once: each run is ended by one of them, and
        a run that ends meanwhile keeps its state. The time is taken when the statements run.
        """

        def work(conn: Connection) -> builtins.list[RunRecord]:
            cutoff = _now() - timeout
            heartbeat = select(replicas.c.id).where(replicas.c.id == runs.c.replica)
            dead = or_(
                heartbeat.where(replicas.c.heartbeat_at < cutoff).exists(),
                and_(~heartbeat.exists(), runs.c.created_at < cutoff),
            )
            if alive is not None:
                dead = and_(dead, runs.c.replica != alive)
            return _lose(conn, dead, error)

        return await self._write(work)

    async def cancel_requests(self, replica: str) -> builtins.list[str]:
        """The ids of the unfinished runs of ``replica`` that a client asked to cancel (a
        cancellation that came in through another replica), oldest first."""
        # the index on (replica, state) keeps this to the replica's few unfinished runs
        query = (
            select(runs.c.id)
            .where(
                runs.c.replica == replica,
                runs.c.state.in_(_UNFINISHED),
                runs.c.cancel_requested.is_(True),
            )
            .order_by(*_OLDEST_FIRST)
        )
        return await self._read(lambda conn: list(conn.execute(query).scalars()))

    async def lease_batch_runs(
        self, replica: str, limit: int, lease: dt.timedelta
    ) -> builtins.list[RunRecord]:
        """Take the lease of up to ``limit`` Cloud Batch runs (a job name, ``submitted`` or
        ``running``), oldest first, whose lease is free (none, expired, or ``replica``'s own)
        for ``lease`` from now; their records. Replicas calling this at once never get the same
        run. A limit below 1 or a lease that is not positive is a ValueError."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if lease <= dt.timedelta(0):
            raise ValueError(f"the lease must be positive, not {lease}")
        now = _now()
        free = select(runs.c.id).where(
            runs.c.job_name.is_not(None),
            runs.c.state.in_(_LEASABLE),
            or_(
                runs.c.lease_expires_at.is_(None),
                runs.c.lease_expires_at <= now,
                runs.c.lease_owner == replica,
            ),
        )
        values = {"lease_owner": replica, "lease_expires_at": now + lease}
        return await self._write(
            lambda conn: _update_ids(conn, _lock_ids(conn, free.limit(limit)), values)
        )

    async def forget_replicas(self, heartbeat_before: dt.datetime) -> int:
        """Delete the replicas whose last heartbeat is older than ``heartbeat_before``; how
        many. A naive datetime is a ValueError."""
        before = _aware(heartbeat_before, "heartbeat_before")
        forgetting = delete(replicas).where(replicas.c.heartbeat_at < before)
        forgotten: int = await self._write(lambda conn: conn.execute(forgetting).rowcount)
        return forgotten

    async def _select(self, query: Select[Any]) -> builtins.list[RunRecord]:
        return await self._read(lambda conn: [_record(row) for row in conn.execute(query)])


@contextlib.contextmanager
def _unavailable_as_503() -> Iterator[None]:
    """Turn a database that cannot be reached or used right now into a 503; other errors (a
    wrong statement, a constraint) pass unchanged."""
    try:
        yield
    except PoolTimeoutError:
        raise ServiceUnavailableError(
            "the run store cannot be used right now: every database connection is in use",
            headers=RETRY_AFTER,
        ) from None
    except Exception as exc:
        if not _unavailable(exc):
            raise
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        reason = first_line(str(cause)) or type(cause).__name__
        raise ServiceUnavailableError(
            f"the run store cannot be used right now: {reason}", headers=RETRY_AFTER
        ) from None


def _unavailable(exc: Exception) -> bool:
    """Whether ``exc`` says that the database cannot be reached or used right now.

    SQLAlchemy wraps what the driver raises during a query: OperationalError and
    InterfaceError (SQLite busy, a connection gone), or another DBAPIError whose connection it
    found dead. While a connection is opened, asyncpg's errors may come as they are (some
    SQLAlchemy versions wrap them, some not): OSError (refused, reset), TimeoutError, or a
    server error whose SQLSTATE says unavailable (too many connections, starting up, shutting
    down).
    """
    if isinstance(exc, (OperationalError, InterfaceError, OSError, asyncio.TimeoutError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        # the driver's error as SQLAlchemy's adapter gives it, and asyncpg's own beneath it
        orig = exc.orig
        candidates = [orig, orig.__cause__ if orig is not None else None]
    else:
        candidates = [exc]
    for candidate in candidates:
        sqlstate = getattr(candidate, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
    return False


def encode_cursor(created_at: dt.datetime, run_id: str) -> str:
    """The opaque, URL-safe cursor of a list position (the last row's created_at and id)."""
    document = json.dumps([created_at.isoformat(), run_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """The (created_at, id) a cursor encodes; ValueError if it is not one."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        created_at, run_id = json.loads(raw)
        when = dt.datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError(f"bad cursor {cursor!r}") from exc
    if not isinstance(run_id, str) or when.tzinfo is None:
        raise ValueError(f"bad cursor {cursor!r}")
    return when, run_id


def _revision(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _configure_sqlite(engine: Engine) -> None:
    """Every connection: WAL journal, busy timeout, foreign keys; transactions begun by
    SQLAlchemy (the driver's own implicit ones are turned off)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        if mode is not None:  # (None: autocommit, the driver commits each statement)
            connection.exec_driver_sql(f"BEGIN {mode}")


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode = WAL``, tried again while another connection holds the lock:
    the switch does not wait on the busy timeout (processes opening one new file at once)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # in the driver's thread, not the event loop


def _make_parent(database: str) -> None:
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _upgrade_to_head(connection: Connection) -> None:
    """Bring the schema to HEAD_REVISION in the connection's transaction; on PostgreSQL one
    replica at a time (the advisory lock is released when the transaction ends).

    Alembic (about 10 MB of a server's memory, for good) is loaded only to migrate a database
    made by an older version: an up-to-date one is left alone, and an empty one gets the
    tables as :mod:`.schema` describes them, stamped with HEAD_REVISION (a test checks that
    this is the schema the migrations make)."""
    revision = _revision(connection)
    if revision == HEAD_REVISION:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        revision = _revision(connection)  # another replica may have migrated meanwhile
        if revision == HEAD_REVISION:
            return
    if revision is None and not inspect(connection).get_table_names():
        metadata.create_all(connection)
        version_table.create(connection)
        connection.execute(version_table.insert().values(version_num=HEAD_REVISION))
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _get(conn: Connection, run_id: str) -> RunRecord:
    result = conn.execute(select(runs).where(runs.c.id == run_id))
    row = result.first()
    if row is None:
        raise RunNotFound(f"no run {run_id}")
    return _record(row)


def _state_of(conn: Connection, run_id: str) -> RunState:
    result = conn.execute(select(runs.c.state).where(runs.c.id == run_id))
    value = result.scalar_one_or_none()
    if value is None:
        raise RunNotFound(f"no run {run_id}")
    return RunState(value)


# Statements built once (per state and set of columns): a run's writes only bind values, so
# neither the statement nor SQLAlchemy's compiled form is made again for each call.
_INSERT_RUN = insert(runs)
_RUN_ID = "run_id_"  # the WHERE's parameter; not a column name (those name the SET values)


@functools.lru_cache(maxsize=256)
def _changing(state: RunState | None, columns: tuple[str, ...]) -> Update:
    """``UPDATE runs SET <columns> WHERE id = :run_id_ [AND state IN <where state may come
    from>] RETURNING *``."""
    statement = update(runs).where(runs.c.id == bindparam(_RUN_ID))
    if state is not None:
        statement = statement.where(runs.c.state.in_(_SOURCES[state]))
    return statement.values({column: bindparam(column) for column in columns}).returning(*runs.c)


def _record(row: Row[Any]) -> RunRecord:
    return RunRecord.model_validate(row._asdict())


def _lock_ids(conn: Connection, query: Select[Any]) -> builtins.list[str]:
    """The run ids ``query`` selects, oldest first, locked until the transaction ends.

    On PostgreSQL rows another transaction has locked are skipped (``FOR UPDATE SKIP
    LOCKED``): concurrent callers take different runs and never wait on each other. SQLite
    has no row locks; its write transaction (BEGIN IMMEDIATE) already lets one writer in.
    """
    locking = query.order_by(*_OLDEST_FIRST).with_for_update(skip_locked=True)
    return list(conn.execute(locking).scalars())


def _lose(conn: Connection, owned: ColumnElement[bool], error: str) -> builtins.list[RunRecord]:
    """End as ``lost`` (outcome kind ``lost`` with ``error``, finished now) the runs that
    ``owned`` selects and that a lost replica takes with it (not ``submitted`` ones: a Cloud
    Batch job goes on); their records, oldest first."""
    outcome = RunOutcomeRecord(kind="lost", error=error).model_dump(mode="json")
    values = {"state": RunState.LOST.value, "outcome": outcome, "finished_at": _now()}
    candidates = select(runs.c.id).where(runs.c.state.in_(_LOST_WITH_REPLICA), owned)
    return _update_ids(conn, _lock_ids(conn, candidates), values)


def _update_ids(
    conn: Connection, ids: builtins.list[str], values: Mapping[str, Any]
) -> builtins.list[RunRecord]:
    """Set ``values`` on the runs ``ids``; their records in the order of ``ids``."""
    changed: dict[str, RunRecord] = {}
    for start in range(0, len(ids), _PRUNE_CHUNK):
        chunk = ids[start : start + _PRUNE_CHUNK]
        result = conn.execute(
            update(runs).where(runs.c.id.in_(chunk)).values(values).returning(*runs.c)
        )
        changed.update((record.id, record) for record in map(_record, result))
    return [changed[run_id] for run_id in ids]


def _changes(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The column values of ``fields``, checked; TypeError for a field that may not change."""
    unknown = sorted(set(fields) - _UPDATABLE)
    if unknown:
        raise TypeError(f"run fields that cannot be changed this way: {', '.join(unknown)}")
    changes = RunChanges.model_validate(dict(fields))
    return changes.model_dump(include=set(fields))


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, not {value!r}")
    return value


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
