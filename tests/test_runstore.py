"""The durable run store (wtrunner.runstore) against real SQLite files and real PostgreSQL
databases (each test about store behaviour runs on both; the PostgreSQL runs are marked slow):
transitions, timestamps, lists and cursors, idempotency look-ups, recovery, retention, replicas
and Batch leases, migrations, races and an unreachable database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import json
import subprocess
import sys
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate.api import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Table, event, inspect, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import postgres
from tests.helpers import sync_engine, until
from tests.postgres import Relay
from wtrunner.errors import ServiceUnavailableError
from wtrunner.run_states import FINAL_STATES, TRANSITIONS, InvalidTransition, RunState
from wtrunner.runstore import (
    DuplicateRun,
    NewRun,
    ResolvedPackage,
    RunNotFound,
    RunOutcomeRecord,
    RunRecord,
    RunStore,
    database_url,
)
from wtrunner.runstore import store as store_module
from wtrunner.runstore.schema import metadata, replicas, runs
from wtrunner.runstore.store import (
    MIGRATION_LOCK_KEY,
    MIGRATIONS,
    ServerDatabase,
    SQLiteDatabase,
    encode_cursor,
)

UTC = dt.timezone.utc
_ids = itertools.count()


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[RunStore]:
    """A fresh store: once on a new SQLite file, once in a new PostgreSQL schema."""
    opened = await RunStore.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[RunStore]:
    """A store on a new SQLite file: for SQLite itself, and for checks made before a query."""
    opened = await RunStore.open(_url(tmp_path / "store" / "wtrunner.db"))
    try:
        yield opened
    finally:
        await opened.close()


def new_run(**fields: Any) -> NewRun:
    """A NewRun with plausible defaults; ``fields`` override them."""
    values: dict[str, Any] = {
        "id": f"run-{next(_ids):06d}",
        "workflow_run_id": "",
        "package": "wt-example-tracks-workflow",
        "matchspec": "wt-example-tracks-workflow>=1",
        "invoker_type": "subprocess",
        "front_door": "http",
        "results_url": "file:///tmp/results",
        "replica": "replica-a",
        "data_connection_names": ["EARTHRANGER"],
        "request_hash": "hash-1",
    }
    values.update(fields)
    return NewRun(**values)


def _path_to(target: RunState) -> list[RunState]:
    """The shortest chain of allowed transitions from queued to ``target``."""
    queue: deque[list[RunState]] = deque([[RunState.QUEUED]])
    while queue:
        path = queue.popleft()
        if path[-1] is target:
            return path[1:]
        queue.extend([*path, state] for state in TRANSITIONS[path[-1]] if state not in path)
    raise AssertionError(f"{target} cannot be reached from queued")


async def run_in(store: RunStore, state: RunState, **fields: Any) -> RunRecord:
    """A new run brought to ``state`` through allowed transitions."""
    record = await store.create(new_run(**fields))
    for step in _path_to(state):
        record = await store.transition(record.id, step)
    assert record.state is state
    return record


# ---- transitions ---------------------------------------------------------------------------


@pytest.mark.parametrize("old", list(RunState), ids=lambda state: state.value)
async def test_every_transition_is_allowed_or_refused_as_the_state_machine_says(
    store: RunStore, old: RunState
) -> None:
    # one store per old state (not per pair)
    for new in RunState:
        record = await run_in(store, old)
        if new in TRANSITIONS[old]:
            changed = await store.transition(record.id, new)
            assert changed.state is new, f"{old.value} -> {new.value}"
            assert (await store.get(record.id)) == changed
        else:
            with pytest.raises(InvalidTransition) as caught:
                await store.transition(record.id, new)
            assert caught.value.status == 409
            refusal = f"run {record.id} is {old.value}; it cannot become {new.value}"
            assert str(caught.value) == refusal
            assert (await store.get(record.id)) == record, (
                f"a refused {old.value} -> {new.value} changed nothing"
            )


async def test_final_states_never_change_again(store: RunStore) -> None:
    for final in FINAL_STATES:
        record = await run_in(store, final)
        for state in RunState:
            with pytest.raises(InvalidTransition):
                await store.transition(record.id, state)


async def test_created_running_and_final_timestamps_are_set_in_utc(store: RunStore) -> None:
    before = dt.datetime.now(UTC)
    record = await store.create(new_run())
    assert record.created_at.tzinfo is not None
    assert record.created_at.utcoffset() == dt.timedelta(0)
    assert before <= record.created_at <= dt.datetime.now(UTC)
    assert record.started_at is None and record.finished_at is None
    assert record.state is RunState.QUEUED and record.attempt == 1

    resolving = await store.transition(record.id, RunState.RESOLVING)
    assert resolving.started_at is None and resolving.finished_at is None

    running = await store.transition(record.id, RunState.RUNNING)
    assert running.started_at is not None and running.finished_at is None
    assert record.created_at <= running.started_at <= dt.datetime.now(UTC)

    done = await store.transition(record.id, RunState.SUCCEEDED)
    assert done.started_at == running.started_at
    assert done.finished_at is not None
    assert running.started_at <= done.finished_at <= dt.datetime.now(UTC)
    assert done.created_at == record.created_at
    assert (await store.get(record.id)) == done


async def test_given_timestamps_win_and_may_be_in_any_zone(store: RunStore) -> None:
    zone = dt.timezone(dt.timedelta(hours=2))
    started = dt.datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=zone)
    finished = dt.datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
    record = await store.create(new_run())
    running = await store.transition(record.id, RunState.RUNNING, started_at=started)
    assert running.started_at == started
    assert running.started_at is not None and running.started_at.tzinfo == UTC
    done = await store.transition(record.id, RunState.FAILED, finished_at=finished)
    assert done.finished_at == finished


async def test_runs_that_end_before_running_have_no_start(store: RunStore) -> None:
    record = await store.create(new_run())
    failed = await store.transition(record.id, RunState.FAILED)
    assert failed.started_at is None and failed.finished_at is not None

    submitted = await run_in(store, RunState.SUBMITTED)
    assert submitted.started_at is None
    running = await store.transition(submitted.id, RunState.RUNNING)
    assert running.started_at is not None


async def test_transition_sets_the_fields_it_is_given(store: RunStore) -> None:
    record = await store.create(new_run())
    resolved = ResolvedPackage(name="wt-x", version="1.2.0", build="py_0", channel="file:///c")
    running = await store.transition(
        record.id, RunState.RUNNING, resolved=resolved, job_name="projects/p/jobs/j"
    )
    assert running.resolved == resolved
    assert running.job_name == "projects/p/jobs/j"
    outcome = RunOutcomeRecord(
        kind="ok", result={"maps": [1, 2.5, None, "x"]}, error=None, trace=None, exit_code=0
    )
    done = await store.transition(record.id, RunState.SUCCEEDED, outcome=outcome)
    assert done.outcome == outcome
    assert (await store.get(record.id)).outcome == outcome
    # a plain mapping is checked into the model too
    other = await run_in(store, RunState.RUNNING)
    failed = await store.transition(
        other.id, RunState.FAILED, outcome={"kind": "crash", "error": "boom", "exit_code": 3}
    )
    assert failed.outcome == RunOutcomeRecord(kind="crash", error="boom", exit_code=3)


async def test_only_some_fields_may_change_and_they_are_checked(store: RunStore) -> None:
    record = await store.create(new_run())
    with pytest.raises(TypeError, match="package"):
        await store.transition(record.id, RunState.RUNNING, package="other")
    with pytest.raises(TypeError, match="state"):
        await store.update(record.id, state=RunState.RUNNING)
    with pytest.raises(ValueError, match="timezone"):
        await store.transition(record.id, RunState.RUNNING, started_at=dt.datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        await store.update(record.id, attempt=0)
    assert (await store.get(record.id)) == record


async def test_transition_of_a_missing_run_is_not_found(store: RunStore) -> None:
    for state in RunState:  # QUEUED is entered from no state: the run is still looked for
        with pytest.raises(RunNotFound, match="no run nope") as caught:
            await store.transition("nope", state)
        assert caught.value.status == 404


async def test_a_transition_and_an_update_are_one_statement_each(store: RunStore) -> None:
    """Each run makes several writes: each is one UPDATE ... RETURNING, with no read."""
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement.split()[0].upper())

    record = await store.create(new_run())
    event.listen(sync_engine(store), "before_cursor_execute", seen)
    try:
        running = await store.transition(record.id, RunState.RUNNING)
        updated = await store.update(record.id, cancel_requested=True)
        done = await store.transition(record.id, RunState.CANCELLED)
    finally:
        event.remove(sync_engine(store), "before_cursor_execute", seen)
    queries = [word for word in statements if word in ("SELECT", "UPDATE", "INSERT", "DELETE")]
    assert queries == ["UPDATE", "UPDATE", "UPDATE"]
    assert running.state is RunState.RUNNING
    assert updated.cancel_requested and updated.state is RunState.RUNNING
    assert done.state is RunState.CANCELLED and done.cancel_requested
    assert (await store.get(record.id)) == done


async def test_update_changes_fields_but_not_the_state(store: RunStore) -> None:
    record = await run_in(store, RunState.RUNNING)
    updated = await store.update(record.id, cancel_requested=True, job_name="job-1")
    assert updated.cancel_requested and updated.job_name == "job-1"
    assert updated.state is RunState.RUNNING
    assert updated.started_at == record.started_at
    assert (await store.get(record.id)) == updated
    assert (await store.update(record.id)) == updated  # nothing to change
    with pytest.raises(RunNotFound):
        await store.update("nope", cancel_requested=True)
    with pytest.raises(RunNotFound):
        await store.update("nope")


# ---- races -----------------------------------------------------------------------------------


async def test_concurrent_transitions_to_different_final_states_have_one_winner(
    store: RunStore, store_url: str
) -> None:
    # a second store on the same database: as another process or replica would be
    other = await RunStore.open(store_url)
    try:
        for round_ in range(10):
            record = await run_in(store, RunState.RUNNING)
            first, second = (store, other) if round_ % 2 else (other, store)
            results = await asyncio.gather(
                first.transition(record.id, RunState.SUCCEEDED),
                second.transition(record.id, RunState.CANCELLED),
                store.transition(record.id, RunState.TIMED_OUT),
                return_exceptions=True,
            )
            winners = [result for result in results if isinstance(result, RunRecord)]
            losers = [result for result in results if isinstance(result, InvalidTransition)]
            assert len(winners) == 1 and len(losers) == 2, results
            assert (await store.get(record.id)).state is winners[0].state
    finally:
        await other.close()


async def test_a_state_changed_after_it_was_read_is_not_overwritten(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conditional update changed nothing, but the state read to say why allows the change
    (on PostgreSQL another writer may move the run in between): the update is tried again, and
    the state that refuses it is reported."""
    record = await run_in(store, RunState.RUNNING)
    await store.transition(record.id, RunState.CANCELLED)
    real_state_of = store_module._state_of
    reads: list[RunState] = []

    def stale_first(conn: Any, run_id: str) -> RunState:
        state = real_state_of(conn, run_id)
        reads.append(state)
        return RunState.RUNNING if len(reads) == 1 else state

    monkeypatch.setattr(store_module, "_state_of", stale_first)
    with pytest.raises(InvalidTransition, match="cancelled"):
        await store.transition(record.id, RunState.SUCCEEDED)
    assert len(reads) == 2
    assert (await store.get(record.id)).state is RunState.CANCELLED


async def test_many_concurrent_writers_all_succeed(store: RunStore) -> None:
    records = await asyncio.gather(*(store.create(new_run()) for _ in range(30)))
    running = await asyncio.gather(
        *(store.transition(record.id, RunState.RUNNING) for record in records)
    )
    assert {record.state for record in running} == {RunState.RUNNING}
    counts = await store.counts_by_state()
    assert counts[RunState.RUNNING] == 30


# ---- create, get, delete ---------------------------------------------------------------------


async def test_create_records_what_it_is_given(store: RunStore) -> None:
    new = new_run(
        workflow_run_id="wr-1", idempotency_key="key-1", front_door="pubsub-push",
        data_connection_names=["A", "B"], client="someone", attempt=2,
    )  # fmt: skip
    record = await store.create(new)
    expected = {**new.model_dump(), "created_at": record.created_at}
    assert record.model_dump(include=set(expected)) == expected
    assert record.resolved is None and record.outcome is None and record.job_name is None
    assert not record.cancel_requested
    assert (await store.get(new.id)) == record


async def test_a_run_created_running_or_final_has_its_timestamps(store: RunStore) -> None:
    running = await store.create(new_run(state=RunState.RUNNING))
    assert running.started_at == running.created_at and running.finished_at is None
    lost = await store.create(new_run(state=RunState.LOST))
    assert lost.finished_at == lost.created_at


async def test_duplicate_ids_and_idempotency_attempts_are_refused(store: RunStore) -> None:
    record = await store.create(new_run(idempotency_key="k"))
    with pytest.raises(DuplicateRun) as caught:
        await store.create(new_run(id=record.id))
    assert caught.value.status == 409
    with pytest.raises(DuplicateRun, match="'k'"):
        await store.create(new_run(idempotency_key="k"))
    second = await store.create(new_run(idempotency_key="k", attempt=2))
    assert second.attempt == 2
    # runs without a key never collide
    await store.create(new_run())
    await store.create(new_run())


async def test_get_and_delete_of_missing_runs_are_not_found(store: RunStore) -> None:
    with pytest.raises(RunNotFound) as caught:
        await store.get("missing")
    assert caught.value.status == 404
    with pytest.raises(RunNotFound):
        await store.delete("missing")


async def test_delete_forgets_the_run(store: RunStore) -> None:
    kept = await store.create(new_run())
    gone = await run_in(store, RunState.SUCCEEDED)
    await store.delete(gone.id)
    with pytest.raises(RunNotFound):
        await store.get(gone.id)
    with pytest.raises(RunNotFound):
        await store.delete(gone.id)
    assert [run.id for run in (await store.list()).runs] == [kept.id]


# ---- listing ---------------------------------------------------------------------------------


async def test_list_is_newest_first_and_filters(store: RunStore) -> None:
    a = await run_in(store, RunState.SUCCEEDED, package="alpha", workflow_run_id="w1")
    b = await run_in(store, RunState.FAILED, package="beta", workflow_run_id="w1")
    middle = dt.datetime.now(UTC)
    c = await run_in(store, RunState.SUCCEEDED, package="beta", workflow_run_id="w2")
    d = await store.create(new_run(package="alpha"))

    async def ids(**filters: Any) -> list[str]:
        page = await store.list(**filters)
        assert page.next_cursor is None
        return [run.id for run in page.runs]

    assert await ids() == [d.id, c.id, b.id, a.id]
    assert await ids(state=RunState.SUCCEEDED) == [c.id, a.id]
    assert await ids(state=RunState.QUEUED) == [d.id]
    assert await ids(state=RunState.LOST) == []
    assert await ids(package="beta") == [c.id, b.id]
    assert await ids(workflow_run_id="w1") == [b.id, a.id]
    assert await ids(since=middle) == [d.id, c.id]
    assert await ids(since=middle.astimezone(dt.timezone(dt.timedelta(hours=-5)))) == [d.id, c.id]
    assert await ids(package="alpha", state=RunState.SUCCEEDED) == [a.id]
    assert await ids(package="beta", since=middle, workflow_run_id="w2") == [c.id]
    with pytest.raises(ValueError, match="since"):
        await store.list(since=dt.datetime(2024, 1, 1))


async def test_pages_stay_stable_while_newer_runs_are_recorded(store: RunStore) -> None:
    originals = [await store.create(new_run()) for _ in range(25)]
    expected = [run.id for run in reversed(originals)]  # newest first
    seen: list[str] = []
    page = await store.list(limit=7)
    newer: list[str] = []
    while True:
        seen.extend(run.id for run in page.runs if run.id not in newer)
        # newer runs arrive between page fetches (some in the first page's place)
        for _ in range(3):
            newer.append((await store.create(new_run())).id)
        if page.next_cursor is None:
            break
        page = await store.list(limit=7, cursor=page.next_cursor)
        assert not set(newer) & {run.id for run in page.runs}, "a newer run shifted a page"
    assert seen == expected, "no duplicates and no gaps"
    everything = await store.list(limit=500)
    assert [run.id for run in everything.runs] == [*reversed(newer), *expected]


async def test_pagination_with_a_filter_and_equal_timestamps(store: RunStore) -> None:
    # runs created in the same instant are ordered by id, and pages split them correctly
    same = dt.datetime(2024, 6, 1, tzinfo=UTC)
    records = [await store.create(new_run(package="p" if i % 2 else "q")) for i in range(12)]
    await store.run_sync(lambda conn: conn.execute(update(runs).values(created_at=same)))
    expected = sorted((r.id for r in records if r.package == "p"), reverse=True)
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list(package="p", limit=4, cursor=cursor)
        assert all(run.created_at == same for run in page.runs)
        seen.extend(run.id for run in page.runs)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected


async def test_an_exactly_full_last_page_has_no_next_cursor(store: RunStore) -> None:
    for _ in range(4):
        await store.create(new_run())
    first = await store.list(limit=2)
    assert first.next_cursor is not None
    second = await store.list(limit=2, cursor=first.next_cursor)
    assert len(second.runs) == 2 and second.next_cursor is None
    one = await store.list(limit=4)
    assert len(one.runs) == 4 and one.next_cursor is None


@pytest.mark.parametrize("limit", [0, -1, 501, 10_000])
async def test_list_limit_out_of_range_is_refused(sqlite_store: RunStore, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        await sqlite_store.list(limit=limit)


async def test_list_limits_at_the_bounds(store: RunStore) -> None:
    for _ in range(3):
        await store.create(new_run())
    assert len((await store.list(limit=1)).runs) == 1
    assert len((await store.list(limit=500)).runs) == 3


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "!!!!",
        "abc",
        _b64(b"not json"),
        _b64(json.dumps({"a": 1}).encode()),
        _b64(json.dumps(["2024-01-01T00:00:00+00:00"]).encode()),
        _b64(json.dumps(["2024-01-01T00:00:00", "run"]).encode()),  # no zone
        _b64(json.dumps(["yesterday", "run"]).encode()),
        _b64(json.dumps(["2024-01-01T00:00:00+00:00", 5]).encode()),
        _b64(b"\xff\xfe"),
    ],
)
async def test_bad_cursors_are_refused(sqlite_store: RunStore, cursor: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await sqlite_store.list(cursor=cursor)


async def test_cursors_are_url_safe(store: RunStore) -> None:
    cursor = encode_cursor(dt.datetime.now(UTC), "id/with+odd?chars&=")
    assert cursor.replace("-", "").replace("_", "").isalnum()
    assert (await store.list(cursor=cursor)).runs == []


# ---- idempotency look-ups --------------------------------------------------------------------


async def test_find_latest_gives_the_newest_attempt(store: RunStore) -> None:
    assert await store.find_latest(workflow_run_id="w") is None
    first = await run_in(store, RunState.FAILED, workflow_run_id="w", idempotency_key="k")
    await store.create(new_run(workflow_run_id="other", idempotency_key="k2"))
    assert await store.find_latest(workflow_run_id="w") == first
    assert await store.find_latest(idempotency_key="k") == first
    second = await store.create(new_run(workflow_run_id="w", idempotency_key="k", attempt=2))
    assert await store.find_latest(workflow_run_id="w") == second
    assert await store.find_latest(idempotency_key="k") == second
    assert await store.find_latest(workflow_run_id="w", idempotency_key="k") == second
    assert await store.find_latest(workflow_run_id="w", idempotency_key="k2") is None
    assert await store.find_latest(idempotency_key="nope") is None


async def test_find_latest_needs_a_key_and_an_empty_one_names_nothing(store: RunStore) -> None:
    await store.create(new_run(workflow_run_id=""))
    with pytest.raises(ValueError):
        await store.find_latest()
    assert await store.find_latest(workflow_run_id="") is None
    assert await store.find_latest(idempotency_key="") is None


# ---- recovery, retention, counts ------------------------------------------------------------


async def test_mark_lost_ends_only_this_replicas_unfinished_runs(store: RunStore) -> None:
    mine = {
        state: await run_in(store, state, replica="a")
        for state in (RunState.QUEUED, RunState.RESOLVING, RunState.RUNNING)
    }
    submitted = await run_in(store, RunState.SUBMITTED, replica="a")  # goes on elsewhere
    mine_done = await run_in(store, RunState.SUCCEEDED, replica="a")
    theirs = await run_in(store, RunState.RUNNING, replica="b")

    unfinished = [run.id for run in await store.unfinished("a")]
    assert unfinished == [*(r.id for r in mine.values()), submitted.id]
    lost = await store.mark_lost("a", "The server stopped while the run was in progress.")

    assert sorted(run.id for run in lost) == sorted(run.id for run in mine.values())
    for run in lost:
        assert run.state is RunState.LOST
        assert run.outcome == RunOutcomeRecord(
            kind="lost", error="The server stopped while the run was in progress."
        )
        assert run.finished_at is not None
        assert (await store.get(run.id)) == run
    assert (await store.get(mine_done.id)) == mine_done
    assert (await store.get(theirs.id)) == theirs
    assert (await store.get(submitted.id)).state is RunState.SUBMITTED
    assert [run.id for run in await store.unfinished("a")] == [submitted.id]
    assert [run.id for run in await store.unfinished("b")] == [theirs.id]
    assert await store.mark_lost("a", "again") == []


async def test_prune_removes_only_final_runs_that_ended_before(store: RunStore) -> None:
    now = dt.datetime.now(UTC)
    old = now - dt.timedelta(days=31)
    old_final = []
    for state in FINAL_STATES:
        record = await run_in(store, RunState.RUNNING)
        old_final.append(await store.transition(record.id, state, finished_at=old))
    recent = await run_in(store, RunState.SUCCEEDED)
    unfinished = await run_in(store, RunState.RUNNING)

    pruned = await store.prune(now - dt.timedelta(days=30))

    assert sorted(pruned) == sorted(run.id for run in old_final)
    for run in old_final:
        with pytest.raises(RunNotFound):
            await store.get(run.id)
    assert (await store.get(recent.id)) == recent
    assert (await store.get(unfinished.id)) == unfinished
    assert await store.prune(now - dt.timedelta(days=30)) == []
    with pytest.raises(ValueError):
        await store.prune(dt.datetime(2024, 1, 1))


async def test_prune_removes_many_runs(store: RunStore) -> None:
    """More runs than one chunk of ids (one write each, then ended long ago in one update)."""
    ids = [
        (await store.create(new_run(state=RunState.FAILED))).id
        for _ in range(store_module._PRUNE_CHUNK + 3)
    ]
    long_ago = dt.datetime(2020, 1, 1, tzinfo=UTC)
    await store.run_sync(lambda conn: conn.execute(update(runs).values(finished_at=long_ago)))
    assert sorted(await store.prune(dt.datetime(2021, 1, 1, tzinfo=UTC))) == sorted(ids)
    assert (await store.list()).runs == []


async def test_counts_by_state_names_every_state(store: RunStore) -> None:
    assert await store.counts_by_state() == dict.fromkeys(RunState, 0)
    await run_in(store, RunState.RUNNING)
    await run_in(store, RunState.RUNNING)
    await run_in(store, RunState.SUCCEEDED)
    counts = await store.counts_by_state()
    assert counts == {
        **dict.fromkeys(RunState, 0), RunState.RUNNING: 2, RunState.SUCCEEDED: 1
    }  # fmt: skip


# ---- replicas: heartbeats, runs of dead replicas, cancellations, Batch leases ---------------


async def _set(store: RunStore, table: Table, key: str, **values: Any) -> None:
    """Change a row behind the store's back (to age a heartbeat, a run or a lease)."""
    changing = update(table).where(table.c.id == key).values(**values)
    await store.run_sync(lambda conn: conn.execute(changing))


async def test_a_heartbeat_creates_then_updates_the_replica(store: RunStore) -> None:
    assert await store.replica("r1") is None
    before = dt.datetime.now(UTC)
    await store.heartbeat("r1", "http://10.0.0.1:8080")
    first = await store.replica("r1")
    assert first is not None
    assert first.id == "r1" and first.advertise_url == "http://10.0.0.1:8080"
    assert before <= first.started_at == first.heartbeat_at <= dt.datetime.now(UTC)
    assert first.heartbeat_at.utcoffset() == dt.timedelta(0)

    await store.heartbeat("r1", None)
    second = await store.replica("r1")
    assert second is not None
    assert second.started_at == first.started_at, "started on the first heartbeat only"
    assert second.heartbeat_at >= first.heartbeat_at
    assert second.advertise_url is None
    assert await store.replica("r2") is None


async def test_forget_replicas_deletes_only_old_heartbeats(store: RunStore) -> None:
    await store.heartbeat("old", None)
    await store.heartbeat("new", None)
    await _set(store, replicas, "old", heartbeat_at=dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert await store.forget_replicas(dt.datetime(2024, 6, 1, tzinfo=UTC)) == 1
    assert await store.replica("old") is None
    assert await store.replica("new") is not None
    assert await store.forget_replicas(dt.datetime(2024, 6, 1, tzinfo=UTC)) == 0
    with pytest.raises(ValueError, match="heartbeat_before"):
        await store.forget_replicas(dt.datetime(2024, 6, 1))


async def test_runs_of_dead_replicas_become_lost(store: RunStore) -> None:
    timeout = dt.timedelta(minutes=1)
    long_ago = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    await store.heartbeat("alive", None)
    await store.heartbeat("dead", None)
    await _set(store, replicas, "dead", heartbeat_at=long_ago)
    dead = {
        state: await run_in(store, state, replica="dead")
        for state in (RunState.QUEUED, RunState.RESOLVING, RunState.RUNNING)
    }
    dead_submitted = await run_in(store, RunState.SUBMITTED, replica="dead")
    dead_done = await run_in(store, RunState.SUCCEEDED, replica="dead")
    alive = await run_in(store, RunState.RUNNING, replica="alive")
    # a replica without a heartbeat: its old runs are lost, a new one may be from a replica
    # that has not written its first heartbeat yet
    unknown_old = await run_in(store, RunState.RUNNING, replica="unknown")
    await _set(store, runs, unknown_old.id, created_at=long_ago)
    unknown_new = await run_in(store, RunState.RUNNING, replica="unknown")

    lost = await store.mark_lost_of_dead_replicas(timeout, "Its replica stopped.")

    expected = [*dead.values(), unknown_old]
    assert sorted(run.id for run in lost) == sorted(run.id for run in expected)
    for run in lost:
        assert run.state is RunState.LOST
        assert run.outcome == RunOutcomeRecord(kind="lost", error="Its replica stopped.")
        assert run.finished_at is not None
        assert (await store.get(run.id)) == run
    for kept in (dead_submitted, dead_done, alive, unknown_new):
        assert (await store.get(kept.id)) == kept
    assert await store.mark_lost_of_dead_replicas(timeout, "again") == []


async def test_lost_runs_that_had_started_are_found_for_their_replica(
    store: RunStore,
) -> None:
    running = await run_in(store, RunState.RUNNING, replica="gone")
    await store.transition(running.id, RunState.LOST)  # e.g. by a peer, before the restart
    never_started = await run_in(store, RunState.LOST, replica="gone")  # no process
    finished = await run_in(store, RunState.RUNNING, replica="gone")
    await store.transition(finished.id, RunState.SUCCEEDED)
    elsewhere = await run_in(store, RunState.RUNNING, replica="other")
    await store.transition(elsewhere.id, RunState.LOST)
    found = await store.lost_with_processes("gone")
    assert [run.id for run in found] == [running.id]
    assert never_started.started_at is None


async def test_the_calling_replica_never_takes_itself_for_dead(store: RunStore) -> None:
    # its own heartbeat may have been written late (a busy pool): it is alive all the same
    timeout = dt.timedelta(minutes=1)
    await store.heartbeat("me", None)
    await _set(store, replicas, "me", heartbeat_at=dt.datetime.now(UTC) - dt.timedelta(hours=1))
    mine = await run_in(store, RunState.RUNNING, replica="me")
    assert await store.mark_lost_of_dead_replicas(timeout, "lost", alive="me") == []
    assert (await store.get(mine.id)).state is RunState.RUNNING
    assert [run.id for run in await store.mark_lost_of_dead_replicas(timeout, "lost")] == [mine.id]


async def test_cancel_requests_are_the_replicas_unfinished_runs_to_cancel(store: RunStore) -> None:
    wanted = [
        await run_in(store, RunState.RUNNING, replica="a"),
        await run_in(store, RunState.QUEUED, replica="a"),
    ]
    ended = await run_in(store, RunState.RUNNING, replica="a")
    theirs = await run_in(store, RunState.RUNNING, replica="b")
    await run_in(store, RunState.RUNNING, replica="a")  # not asked to cancel
    for record in (*wanted, ended, theirs):
        await store.update(record.id, cancel_requested=True)
    await store.transition(ended.id, RunState.CANCELLED)

    assert await store.cancel_requests("a") == [record.id for record in wanted]
    assert await store.cancel_requests("b") == [theirs.id]
    assert await store.cancel_requests("c") == []


async def _batch_run(store: RunStore, state: RunState = RunState.SUBMITTED) -> RunRecord:
    """A Cloud Batch run (one with a job name) in ``state``."""
    record = await run_in(store, state, invoker_type="batch")
    return await store.update(record.id, job_name=f"projects/p/locations/l/jobs/{record.id}")


async def test_lease_batch_runs_takes_free_leases_oldest_first(store: RunStore) -> None:
    lease = dt.timedelta(minutes=5)
    now = dt.datetime.now(UTC)
    free = [await _batch_run(store), await _batch_run(store, RunState.RUNNING)]
    expired = await _batch_run(store)
    await _set(store, runs, expired.id, lease_owner="other", lease_expires_at=now - lease)
    held_by_other = await _batch_run(store)
    await _set(store, runs, held_by_other.id, lease_owner="other", lease_expires_at=now + lease)
    mine = await _batch_run(store)
    await _set(store, runs, mine.id, lease_owner="me", lease_expires_at=now + lease)
    await run_in(store, RunState.RUNNING)  # no job name: a local run
    ended = await _batch_run(store, RunState.RUNNING)
    await store.transition(ended.id, RunState.SUCCEEDED)

    before = dt.datetime.now(UTC)
    taken = await store.lease_batch_runs("me", 10, lease)

    assert [run.id for run in taken] == [free[0].id, free[1].id, expired.id, mine.id]
    for run in taken:
        assert run.lease_owner == "me"
        assert run.lease_expires_at is not None
        assert before + lease <= run.lease_expires_at <= dt.datetime.now(UTC) + lease
        assert (await store.get(run.id)) == run
    assert (await store.get(held_by_other.id)).lease_owner == "other"
    assert await store.lease_batch_runs("third", 10, lease) == []
    # a limit takes the oldest
    again = await store.lease_batch_runs("me", 2, lease)
    assert [run.id for run in again] == [free[0].id, free[1].id]


async def test_lease_batch_runs_checks_its_arguments(sqlite_store: RunStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await sqlite_store.lease_batch_runs("me", 0, dt.timedelta(minutes=1))
    with pytest.raises(ValueError, match="lease"):
        await sqlite_store.lease_batch_runs("me", 1, dt.timedelta(0))


# ---- races between replicas: each store is another replica on the same database ---------------


@pytest.fixture
async def other_store(store: RunStore, store_url: str) -> AsyncIterator[RunStore]:
    """A second store on ``store``'s database: another replica."""
    opened = await RunStore.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_concurrent_leases_never_give_a_run_twice(
    store: RunStore, other_store: RunStore
) -> None:
    lease = dt.timedelta(minutes=5)
    for round_ in range(5):
        fresh = [await _batch_run(store) for _ in range(20)]
        # together they ask for more than there is: each run goes to exactly one of them
        first, second = await asyncio.gather(
            store.lease_batch_runs(f"a{round_}", 15, lease),
            other_store.lease_batch_runs(f"b{round_}", 15, lease),
        )
        a, b = [run.id for run in first], [run.id for run in second]
        assert not set(a) & set(b), f"round {round_}: a run was leased by both replicas"
        assert sorted(a + b) == sorted(run.id for run in fresh)
        for replica, ids in ((f"a{round_}", a), (f"b{round_}", b)):
            for run_id in ids:
                assert (await store.get(run_id)).lease_owner == replica


async def test_concurrent_sweeps_end_each_lost_run_once(
    store: RunStore, other_store: RunStore
) -> None:
    records = [await run_in(store, RunState.RUNNING, replica="dead") for _ in range(30)]
    await store.heartbeat("dead", None)
    await _set(store, replicas, "dead", heartbeat_at=dt.datetime(2024, 1, 1, tzinfo=UTC))
    timeout = dt.timedelta(minutes=1)
    first, second = await asyncio.gather(
        store.mark_lost_of_dead_replicas(timeout, "lost"),
        other_store.mark_lost_of_dead_replicas(timeout, "lost"),
    )
    ended = [run.id for run in first + second]
    assert sorted(ended) == sorted(run.id for run in records), "each run ended exactly once"


async def test_concurrent_creates_of_one_idempotency_key_have_one_winner(
    store: RunStore, other_store: RunStore
) -> None:
    for round_ in range(5):
        results = await asyncio.gather(
            *(
                replica_store.create(new_run(idempotency_key=f"key-{round_}"))
                for replica_store in (store, other_store, store, other_store)
            ),
            return_exceptions=True,
        )
        winners = [result for result in results if isinstance(result, RunRecord)]
        losers = [result for result in results if isinstance(result, DuplicateRun)]
        assert len(winners) == 1 and len(losers) == 3, results
        assert await store.find_latest(idempotency_key=f"key-{round_}") == winners[0]


# ---- a database that cannot be used: 503, and recovery ----------------------------------------


@pytest.mark.slow
async def test_an_unreachable_postgresql_server_is_a_503_until_it_is_back(
    postgres_store_url: str,
) -> None:
    relay = Relay()
    await relay.start()
    store = await RunStore.open(relay.url(postgres_store_url), pool_size=2)
    try:
        record = await store.create(new_run())
        await relay.stop()  # the port is closed; the pooled connections are cut
        for attempt in (
            store.get(record.id),
            store.list(),
            store.create(new_run()),
            store.transition(record.id, RunState.RUNNING),
            store.heartbeat("r", None),
        ):
            with pytest.raises(ServiceUnavailableError) as caught:
                await attempt
            assert caught.value.status == 503
            assert "the run store cannot be used right now" in str(caught.value)
        await relay.start()
        # the pool replaces its dead connections by itself
        assert await store.get(record.id) == record
        assert (await store.transition(record.id, RunState.RUNNING)).state is RunState.RUNNING
        # the server restarts between two queries: its pooled connection is dead, yet the
        # next query succeeds (connections are pinged before use)
        await relay.stop()
        await relay.start()
        assert (await store.get(record.id)).state is RunState.RUNNING
    finally:
        await store.close()
        await relay.stop()


@pytest.mark.slow
async def test_a_connection_the_server_ends_during_a_query_is_a_503(
    postgres_store_url: str,
) -> None:
    store = await RunStore.open(postgres_store_url)
    # the store's own role: it finds the store's tables
    holder = await postgres.connect(
        postgres.database_of(postgres_store_url), user=postgres.user_of(postgres_store_url)
    )
    try:
        record = await store.create(new_run())
        async with holder.transaction():
            # the store's update waits for this row lock ...
            await holder.execute("SELECT 1 FROM runs WHERE id = $1 FOR UPDATE", record.id)
            changing = asyncio.ensure_future(store.transition(record.id, RunState.RUNNING))

            async def waiting_backend() -> int | None:
                pid: int | None = await holder.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND usename = current_user AND wait_event_type = 'Lock'"
                    " AND pid <> pg_backend_pid()"
                )
                return pid

            pid = await until(waiting_backend, 10, "the store's update to wait for the row lock")
            # ... while the server ends its connection (as at a restart or a failover)
            await holder.execute("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(ServiceUnavailableError, match="cannot be used right now"):
                await changing
        assert (await store.transition(record.id, RunState.RUNNING)).state is RunState.RUNNING
    finally:
        await holder.close()
        await store.close()


@pytest.mark.slow
async def test_too_many_connections_is_a_503(postgres_store_url: str) -> None:
    """The server refuses a new connection (SQLSTATE 53300, as when every replica's pool
    together asks for more than max_connections): the store's role, allowed one connection,
    plays it."""
    admin = await postgres.connect()
    try:
        role = postgres.user_of(postgres_store_url)
        await admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT 1')
    finally:
        await admin.close()
    store = await RunStore.open(postgres_store_url, pool_size=2)
    try:
        record = await store.create(new_run())
        async with _server_engine(store).connect():  # the role's only connection
            with pytest.raises(ServiceUnavailableError, match="too many connections"):
                await store.get(record.id)
        assert await store.get(record.id) == record
    finally:
        await store.close()


async def test_a_query_that_gets_no_connection_in_time_is_a_503(store_url: str) -> None:
    store = await RunStore.open(store_url, pool_size=1, pool_timeout=0.1)
    try:
        record = await store.create(new_run())
        async with _holding_a_connection(store):  # the pool's only one
            with pytest.raises(ServiceUnavailableError, match="every database connection"):
                await store.get(record.id)
            with pytest.raises(ServiceUnavailableError, match="every database connection"):
                await store.transition(record.id, RunState.RUNNING)
        assert (await store.transition(record.id, RunState.RUNNING)).state is RunState.RUNNING
    finally:
        await store.close()


# ---- the database: migrations, WAL, reopening -----------------------------------------------


def _head() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


async def _versions(store: RunStore) -> list[str]:
    query = text("SELECT version_num FROM alembic_version")
    return await store.run_sync(lambda conn: [row[0] for row in conn.execute(query)])


def _check_schema(conn: Connection) -> None:
    """The tables and indexes the migrations make are those the store's description says."""
    inspector = inspect(conn)
    assert set(inspector.get_table_names()) == {"runs", "replicas", "alembic_version"}
    indexes = {index["name"] for index in inspector.get_indexes("runs")}
    assert {
        "ix_runs_created_at_id", "ix_runs_state_created_at_id",
        "ix_runs_package_created_at_id", "ix_runs_workflow_run_id_created_at_id",
        "ix_runs_replica_state", "ux_runs_idempotency_key_attempt",
    } <= indexes  # fmt: skip
    assert inspector.get_pk_constraint("runs")["constrained_columns"] == ["id"]
    assert inspector.get_pk_constraint("replicas")["constrained_columns"] == ["id"]
    assert [index["name"] for index in inspector.get_indexes("replicas")] == [
        "ix_replicas_heartbeat_at"
    ]
    assert compare_metadata(MigrationContext.configure(conn), metadata) == []


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new SQLite file, or a new, empty PostgreSQL database (not a schema in a shared one)."""
    if request.param == "sqlite":
        return _url(tmp_path / "store" / "wtrunner.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


async def test_migrations_create_the_schema_on_an_empty_database(
    empty_database_url: str,
) -> None:
    store = await RunStore.open(empty_database_url)
    try:
        assert await _versions(store) == [_head()]
        await store.run_sync(_check_schema)
    finally:
        await store.close()


def _schema(conn: Connection) -> dict[str, Any]:
    """Every table's columns, primary key and indexes (partial indexes' conditions included),
    as the database reports them."""
    inspector = inspect(conn)

    def index(found: dict[str, Any]) -> tuple[Any, ...]:
        options = {key: str(value) for key, value in found.get("dialect_options", {}).items()}
        return found["name"], tuple(found["column_names"]), found["unique"], str(options)

    return {
        table: {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"], column.get("default"))
                for column in inspector.get_columns(table)
            ],
            "primary key": inspector.get_pk_constraint(table),
            "indexes": sorted(index(found) for found in inspector.get_indexes(table)),
        }
        for table in sorted(inspector.get_table_names())
    }


def _drop_everything(conn: Connection) -> None:
    for table in ("runs", "replicas", "alembic_version"):
        conn.execute(text(f"DROP TABLE {table}"))


async def test_an_empty_database_gets_the_schema_the_migrations_make(
    empty_database_url: str,
) -> None:
    store = await RunStore.open(empty_database_url)  # made from the description, stamped
    try:
        assert await _versions(store) == [_head()]
        made = await store.run_sync(_schema)
        await store.run_sync(_drop_everything)
        await store.run_sync(lambda conn: _migrate(conn, "upgrade", "head"))
        migrated = await store.run_sync(_schema)
    finally:
        await store.close()
    assert made == migrated
    assert any("idempotency_key IS NOT NULL" in index[3] for index in made["runs"]["indexes"])


def test_the_head_revision_the_store_knows_is_alembics() -> None:
    assert _head() == store_module.HEAD_REVISION


async def test_a_new_or_up_to_date_sqlite_store_loads_neither_alembic_nor_postgresql(
    tmp_path: Path,
) -> None:
    url = _url(tmp_path / "runs.db")
    program = (
        "import asyncio, sys\n"
        "from wtrunner.runstore import RunStore\n"
        "async def main():\n"
        f"    store = await RunStore.open({url!r})\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "unwanted = ('alembic', 'sqlalchemy.dialects.postgresql')\n"
        "print(sorted(m for m in sys.modules if m.startswith(unwanted)))\n"
    )
    for _ in ("new", "up to date"):
        loaded = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", program], capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        assert loaded.stdout.strip() == "[]", loaded.stdout
    store = await RunStore.open(url)
    try:
        assert await _versions(store) == [_head()]
    finally:
        await store.close()


async def test_a_sqlite_file_and_its_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "runs.db"
    assert not path.parent.exists()
    store = await RunStore.open(_url(path))
    try:
        assert path.is_file()
        assert await _versions(store) == [_head()]
    finally:
        await store.close()


def _migrate(conn: Connection, direction: str, revision: str) -> None:
    """Alembic's ``upgrade`` or ``downgrade`` to ``revision`` on ``conn``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    getattr(command, direction)(config, revision)


async def test_a_store_of_the_first_revision_is_upgraded_with_its_runs(store_url: str) -> None:
    store = await RunStore.open(store_url)
    try:
        await store.run_sync(lambda conn: _migrate(conn, "downgrade", "0001"))
        assert await _versions(store) == ["0001"]
        # the store's insert names only columns revision 0001 has
        record = await store.create(new_run(state=RunState.RUNNING))
    finally:
        await store.close()
    store = await RunStore.open(store_url)
    try:
        assert await _versions(store) == [_head()]
        kept = await store.get(record.id)
        assert kept == record and kept.lease_owner is None and kept.lease_expires_at is None
        await store.run_sync(_check_schema)
    finally:
        await store.close()


async def test_opening_again_is_idempotent_and_keeps_history(store_url: str) -> None:
    url = store_url
    store = await RunStore.open(url)
    try:
        record = await run_in(store, RunState.SUCCEEDED, workflow_run_id="kept")
        queued = await store.create(new_run())
    finally:
        await store.close()
    for _ in range(2):
        store = await RunStore.open(url)
        try:
            assert await _versions(store) == [_head()]
            assert await store.get(record.id) == record
            assert await store.get(queued.id) == queued
            assert await store.find_latest(workflow_run_id="kept") == record
            assert [run.id for run in (await store.list()).runs] == [queued.id, record.id]
        finally:
            await store.close()


async def test_two_stores_opening_one_new_database_at_once(store_url: str) -> None:
    # replicas starting together: on PostgreSQL the advisory lock lets one migrate at a time
    stores = await asyncio.gather(*(RunStore.open(store_url) for _ in range(4)))
    try:
        assert await _versions(stores[0]) == [_head()]
        record = await stores[1].create(new_run())
        assert await stores[2].get(record.id) == record
    finally:
        for store in stores:
            await store.close()


@pytest.mark.slow
async def test_a_replica_migrates_only_while_it_holds_the_advisory_lock(
    postgres_url: str,
) -> None:
    """PostgreSQL: the migration transaction takes the lock first; while another session holds
    it, opening the store waits and changes nothing."""
    holder = await postgres.connect(postgres.database_of(postgres_url))
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        opening = asyncio.ensure_future(RunStore.open(postgres_url))

        async def waiting_for_the_lock() -> bool:
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return bool(waiting)

        await until(waiting_for_the_lock, 10, "RunStore.open to wait for the migration lock")
        assert await holder.fetchval("SELECT to_regclass('alembic_version')") is None
        assert not opening.done()
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        store = await opening
        try:
            assert await _versions(store) == [_head()]
        finally:
            await store.close()
    finally:
        await holder.close()


async def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(
    sqlite_store: RunStore, tmp_path: Path
) -> None:
    def pragmas(conn: Connection) -> list[object]:
        names = ("journal_mode", "busy_timeout", "foreign_keys")
        return [conn.execute(text(f"PRAGMA {name}")).scalar() for name in names]

    assert await sqlite_store.run_sync(pragmas) == ["wal", store_module.SQLITE_BUSY_TIMEOUT_MS, 1]
    await sqlite_store.create(new_run())
    assert (tmp_path / "store" / "wtrunner.db-wal").exists()


def test_database_urls_are_normalized_to_the_stores_drivers() -> None:
    assert database_url("sqlite:///a/b.db").drivername == "sqlite+pysqlite"
    assert database_url("sqlite:///a/b.db").database == "a/b.db"
    assert database_url("sqlite:////abs/b.db").database == "/abs/b.db"
    # SQLite is reached through the standard library in the store's threads, whatever is named
    assert database_url("sqlite+aiosqlite:///b.db").drivername == "sqlite+pysqlite"
    pg = database_url("postgresql://user:secret@db:5432/runs")
    assert pg.drivername == "postgresql+asyncpg"
    assert (pg.host, pg.port, pg.database, pg.password) == ("db", 5432, "runs", "secret")
    assert database_url("postgres://db/runs").drivername == "postgresql+asyncpg"
    assert database_url("postgresql+asyncpg://db/runs").drivername == "postgresql+asyncpg"
    memory_uri = "sqlite:///file:runs?mode=memory&uri=true"
    for bad in (
        "sqlite://",
        "sqlite:///:memory:",
        memory_uri,
        "not a url",
        "postgresql://u:s3cret@h:port/db",
    ):
        with pytest.raises(ValueError) as caught:
            database_url(bad)
        assert "s3cret" not in str(caught.value)


@contextlib.asynccontextmanager
async def _holding_a_connection(store: RunStore) -> AsyncIterator[None]:
    """Hold one of the store's pooled connections meanwhile."""
    database = store.database
    if isinstance(database, SQLiteDatabase):
        with database.engine.connect():
            yield
    else:
        async with _server_engine(store).connect():
            yield


def _server_engine(store: RunStore) -> AsyncEngine:
    database = store.database
    assert isinstance(database, ServerDatabase)
    return database.engine
