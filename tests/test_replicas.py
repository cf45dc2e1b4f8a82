"""Several real ``wtrunner serve`` replicas on one PostgreSQL run store: a run id runs once however
many replicas it reaches at once (over HTTP and over Pub/Sub pull); a replica that dies loses its
runs to the others' heartbeats, and a copy of such a run (a redelivered message) runs it again;
cancels and logs reach the replica that runs the workflow; a database outage answers 503 and is
recovered from without losing or repeating a run."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import until
from tests.postgres import Relay, fresh_schema
from tests.processes import free_port, start_server
from tests.pubsub_helpers import ACK_DEADLINE_SECONDS, Subscription, push_body, run_command
from wtrunner.processes import kill_orphaned_runs
from wtrunner.run_request import LOST_MESSAGE

pytestmark = pytest.mark.slow  # ~40 s: replica timeouts, an outage longer than one

SLOW = "wt-test-slow-workflow"
CHATTY = "wt-test-chatty-workflow"
TRIVIAL = "wt-test-trivial-workflow"  # the cheapest process: 50 of them fit a 2-CPU machine
HEARTBEAT_SECONDS = 0.5
REPLICA_TIMEOUT_SECONDS = 3.0
BURST_REPLICA_TIMEOUT = 30.0
RUN_BODY = {"execution_mode": "sequential", "mock_io": True}
START_TIMEOUT = 60.0  # the first run on a replica installs its environment


@dataclass
class Replica:
    """One ``wtrunner serve`` process: its id, base URL (also the URL it advertises), log."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last heartbeat; its workflows (own process groups) stay."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it does not end)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class Cluster:
    """Replicas started by a test on one database, and what is stopped after it: replicas
    first, then relays, then any workflow process a killed replica left behind."""

    work: Path
    channel: Path
    database_url: str
    replicas: list[Replica] = field(default_factory=list)
    relays: list[Relay] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    async def start(
        self, names: list[str], database_url: str | None = None, **settings: str
    ) -> list[Replica]:
        """Start replicas ``names`` at once (each with its own cache dir and port) on the
        database (``database_url``, e.g. through a relay, or the cluster's)."""
        started = await asyncio.gather(
            *(
                asyncio.to_thread(self._start, name, database_url or self.database_url, settings)
                for name in names
            )
        )
        return list(started)

    def _start(self, name: str, database_url: str, settings: dict[str, str]) -> Replica:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        work = self.work / name
        work.mkdir()
        log = work / "server.log"
        environment = {
            "WTRUNNER_CHANNELS": self.channel.as_uri(),
            "WTRUNNER_DATABASE_URL": database_url,
            "WTRUNNER_REPLICA_ID": name,
            "WTRUNNER_ADVERTISE_URL": url,
            "WTRUNNER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "WTRUNNER_REPLICA_TIMEOUT_SECONDS": str(REPLICA_TIMEOUT_SECONDS),
            "WTRUNNER_KILL_GRACE_SECONDS": "0.5",
            **settings,
        }
        with log.open("wb") as stderr:
            process, _ = start_server(work, stderr=stderr, port=port, **environment)
        replica = Replica(name, url, process, log)
        self.replicas.append(replica)
        return replica

    async def relay(self) -> Relay:
        """A started relay to the PostgreSQL server (stopped after the replicas)."""
        relay = Relay()
        await relay.start()
        self.relays.append(relay)
        return relay

    def kill(self, replica: Replica, run: dict[str, Any]) -> None:
        """SIGKILL ``replica`` as when its pod dies, then ``run``'s workflow (in its own process
        group it survives its server here; in a pod it dies with the pod)."""
        replica.kill()
        self.orphans.append(run["id"])
        kill_orphaned_runs([run["id"]])

    async def close(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(r.stop) for r in self.replicas))
        for relay in self.relays:
            await relay.stop()
        kill_orphaned_runs(self.orphans)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # (it ended while being read)
        return False


@pytest.fixture
async def cluster(tmp_path: Path, channel: Path, postgres_store_url: str) -> AsyncIterator[Cluster]:
    """Replicas on one fresh PostgreSQL run store, stopped after the test."""
    started = Cluster(tmp_path, channel, postgres_store_url)
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture(scope="module")
def trio(
    tmp_path_factory: pytest.TempPathFactory, channel: Path, postgres_database: str
) -> Iterator[list[Replica]]:
    """Three replicas on one fresh run store for the tests that kill or cut off none of them.

    150 requests at once keep each replica's 5 pooled connections busy for seconds, and the
    heartbeat waits its turn (measured up to 2.7 s late on 2 CPUs): their replica timeout is not
    the short one, or a replica would be taken for dead, its runs lost and their copies run
    again."""
    loop = asyncio.new_event_loop()  # the module's own: the tests' loops come and go
    store = fresh_schema(postgres_database)
    try:
        url = loop.run_until_complete(store.__aenter__())
        cluster = Cluster(tmp_path_factory.mktemp("trio"), channel, url)
        try:
            names = ["trio-a", "trio-b", "trio-c"]
            timeout = str(BURST_REPLICA_TIMEOUT)
            yield loop.run_until_complete(
                cluster.start(names, WTRUNNER_REPLICA_TIMEOUT_SECONDS=timeout)
            )
        finally:
            loop.run_until_complete(cluster.close())
            loop.run_until_complete(store.__aexit__(None, None, None))
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as session:
        yield session


def _body(params: dict[str, Any], results: Path, **extra: Any) -> dict[str, Any]:
    return {"params": params, "results_url": str(results), **RUN_BODY, **extra}


async def _submit(
    http: aiohttp.ClientSession, replica: Replica, matchspec: str, body: dict[str, Any]
) -> tuple[int, Any]:
    async with http.post(f"{replica.url}/runs", params={"matchspec": matchspec}, json=body) as r:
        return r.status, await r.json()


async def _get(http: aiohttp.ClientSession, replica: Replica, path: str, **query: str) -> Any:
    async with http.get(f"{replica.url}{path}", params=query) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _all_runs(
    http: aiohttp.ClientSession, replica: Replica, **query: str
) -> list[dict[str, Any]]:
    return (await _get(http, replica, "/runs", limit="500", **query))["runs"]  # type: ignore[no-any-return]


async def _state(http: aiohttp.ClientSession, replica: Replica, run_id: str) -> str:
    return (await _get(http, replica, f"/runs/{run_id}"))["state"]  # type: ignore[no-any-return]


def _lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


# --- one run per id, however many replicas get it ------------------------------------------


async def test_identical_runs_raced_over_http_run_once(
    trio: list[Replica], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    replicas = trio
    ids = [f"race-{index}" for index in range(50)]
    marks = {run: tmp_path / "marks" / f"{run}.txt" for run in ids}
    (tmp_path / "marks").mkdir()

    async def post(run: str, replica: Replica) -> tuple[str, int, Any]:
        body = _body({"append": {"file": str(marks[run])}}, tmp_path / "r" / run,
                     workflow_run_id=run)  # fmt: skip
        status, answer = await _submit(http, replica, TRIVIAL, body)
        return run, status, answer

    # every id to every replica at the same moment
    answers = await asyncio.gather(*(post(run, replica) for run in ids for replica in replicas))
    by_id: dict[str, list[tuple[int, Any]]] = {run: [] for run in ids}
    for run, status, answer in answers:
        by_id[run].append((status, answer))
    for run, got in by_id.items():
        assert sorted(status for status, _ in got) == [200, 200, 202], (run, got)
        assert len({answer["id"] for _, answer in got}) == 1, (run, got)

    async def all_ended() -> list[dict[str, Any]] | None:
        runs = await _all_runs(http, replicas[0], package=TRIVIAL)
        return runs if all(run["state"] in ("succeeded", "failed") for run in runs) else None

    runs = await until(all_ended, 120, "every run to end")
    assert sorted(run["workflow_run_id"] for run in runs) == sorted(ids)
    assert {(run["state"], run["attempt"]) for run in runs} == {("succeeded", 1)}
    assert {run["id"] for run in runs} == {got[0][1]["id"] for got in by_id.values()}
    assert {run: _lines(mark) for run, mark in marks.items()} == dict.fromkeys(ids, 1)


async def _acked(http: aiohttp.ClientSession, replica: Replica) -> float:
    async with http.get(f"{replica.url}/metrics") as response:
        text = await response.text()
    match = re.search(r'^wtrunner_pubsub_messages_total\{outcome="acked"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def _pubsub_settings(subscription: Subscription) -> dict[str, str]:
    return {
        "PUBSUB_EMULATOR_HOST": os.environ["PUBSUB_EMULATOR_HOST"],
        "WTRUNNER_PUBSUB_SUBSCRIPTION": subscription.path,
        "WTRUNNER_PUBSUB_LEASE_SECONDS": str(ACK_DEADLINE_SECONDS),
        "WTRUNNER_PUBSUB_DRAIN_SECONDS": "1",
    }


# --- a replica that dies -------------------------------------------------------------------


async def _lost_through(
    http: aiohttp.ClientSession, replica: Replica, run_id: str, killed_at: float
) -> float:
    """Seconds from ``killed_at`` until ``replica`` shows run ``run_id`` lost."""
    await until(
        lambda: _is_lost(http, replica, run_id),
        REPLICA_TIMEOUT_SECONDS + 2 * HEARTBEAT_SECONDS + 2,
        "the run to become lost",
    )
    return time.monotonic() - killed_at


async def _is_lost(http: aiohttp.ClientSession, replica: Replica, run_id: str) -> bool:
    record = await _get(http, replica, f"/runs/{run_id}")
    if record["state"] == "lost":
        assert record["outcome"]["error"] == LOST_MESSAGE
        return True
    assert record["state"] == "running"
    return False


def _assert_lost_in_time(elapsed: float) -> None:
    # not before its heartbeat is older than the timeout; then within a heartbeat of the peer
    # (and one more for the poll and a loaded machine)
    assert elapsed > REPLICA_TIMEOUT_SECONDS - 2 * HEARTBEAT_SECONDS
    assert elapsed < REPLICA_TIMEOUT_SECONDS + 2 * HEARTBEAT_SECONDS


def _gated(go: Path) -> dict[str, Any]:
    """Params of a run that prints a line, then waits for ``go`` to exist and ends."""
    return {"chatter": {"megabytes": 0, "lines": 2, "go_file": str(go)}}


async def _running(
    http: aiohttp.ClientSession, replica: Replica, workflow_run_id: str
) -> dict[str, Any]:
    """The run of ``workflow_run_id`` once its workflow runs (its process group recorded)."""

    async def running() -> dict[str, Any] | None:
        runs = (await _get(http, replica, "/runs", workflow_run_id=workflow_run_id))["runs"]
        return runs[0] if runs and runs[0]["state"] == "running" else None

    return await until(running, START_TIMEOUT, f"run {workflow_run_id} to start")


async def test_a_copy_waiting_for_a_run_lost_with_its_replica_runs_it_again(
    cluster: Cluster, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    doomed, survivor = await cluster.start(["pusher-doomed", "pusher-survivor"])
    go = tmp_path / "go"
    command = run_command(CHATTY, _gated(go), tmp_path / "r", run_id="pushed-1")

    async def push(replica: Replica) -> tuple[int, Any]:
        async with http.post(f"{replica.url}/run-from-pubsub", json=push_body(command)) as answer:
            return answer.status, await answer.json()

    first = asyncio.ensure_future(push(doomed))  # answered never: its replica dies
    run = await _running(http, survivor, "pushed-1")
    assert run["replica"] == doomed.name
    killed_at = time.monotonic()
    cluster.kill(doomed, run)
    # Pub/Sub delivers the message again to the other replica, which finds the run in flight
    # (it stays so for seconds after the kill: see _assert_lost_in_time) and waits for it
    second = asyncio.ensure_future(push(survivor))
    with pytest.raises(aiohttp.ClientError):
        await first
    _assert_lost_in_time(await _lost_through(http, survivor, run["id"], killed_at))
    go.touch()
    status, answer = await second
    while status == 503:  # not acked: Pub/Sub delivers it again
        status, answer = await push(survivor)
    assert (status, answer) == (200, {"status": "processed"})
    again, lost = (await _get(http, survivor, "/runs", workflow_run_id="pushed-1"))["runs"]
    assert (lost["id"], lost["state"], again["attempt"]) == (run["id"], "lost", 2)
    assert (again["state"], again["replica"]) == ("succeeded", survivor.name)


async def test_two_replicas_pulling_one_subscription(
    cluster: Cluster, http: aiohttp.ClientSession, subscription: Subscription, tmp_path: Path
) -> None:
    replicas = await cluster.start(["puller-a", "puller-b"], **_pubsub_settings(subscription))

    # each message twice: each runs once, wherever its copies go
    count = 10
    marks = [tmp_path / f"pulled-{index}.txt" for index in range(count)]
    commands = [
        run_command(TRIVIAL, {"append": {"file": str(mark)}}, tmp_path / "r" / str(index),
                    run_id=f"pulled-{index}")
        for index, mark in enumerate(marks)
    ]  # fmt: skip
    await subscription.publish(*commands, *commands)

    async def every_copy_acked() -> bool:
        acked = await asyncio.gather(*(_acked(http, replica) for replica in replicas))
        return sum(acked) == 2 * count

    await until(every_copy_acked, 60, "every copy to be acked")
    assert [_lines(mark) for mark in marks] == [1] * count
    runs = await _all_runs(http, replicas[1], package=TRIVIAL)
    assert sorted((run["workflow_run_id"], run["attempt"], run["state"]) for run in runs) == sorted(
        (f"pulled-{index}", 1, "succeeded") for index in range(count)
    )

    # a replica killed mid-run: the message comes back to the other, which runs it again
    go = tmp_path / "go"
    await subscription.publish(run_command(CHATTY, _gated(go), tmp_path / "k", run_id="killed-1"))
    first = await _running(http, replicas[0], "killed-1")
    doomed = next(replica for replica in replicas if replica.name == first["replica"])
    survivor = next(replica for replica in replicas if replica is not doomed)
    killed_at = time.monotonic()
    cluster.kill(doomed, first)
    _assert_lost_in_time(await _lost_through(http, survivor, first["id"], killed_at))
    go.touch()
    # the emulator hands a message whose ack deadline passed only to a pull made after that,
    # and the survivor's pull is held for ~90 s: another message ends that pull
    await subscription.publish(run_command(TRIVIAL, {}, tmp_path / "n", run_id="nudge"))

    async def second_attempt_done() -> list[dict[str, Any]] | None:
        runs = (await _get(http, survivor, "/runs", workflow_run_id="killed-1"))["runs"]
        return runs if runs[0]["attempt"] == 2 and runs[0]["state"] == "succeeded" else None

    second, lost = await until(second_attempt_done, 30, "the redelivered message to run again")
    assert (lost["id"], lost["state"]) == (first["id"], "lost")
    assert second["replica"] == survivor.name


# --- cancels and logs across replicas --------------------------------------------------------


async def test_a_cancel_sent_to_another_replica_ends_the_run(
    trio: list[Replica], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    owner, other, _ = trio
    pid_file = tmp_path / "pid"
    params = {"sleep": {"seconds": 600, "pid_file": str(pid_file)}}
    _, run = await _submit(http, owner, SLOW, _body(params, tmp_path / "r"))
    await until(pid_file.exists, START_TIMEOUT, "the workflow to start")
    pid = int(pid_file.read_text())
    async with http.post(f"{other.url}/runs/{run['id']}/cancel") as response:
        assert response.status == 202, await response.text()
        assert (await response.json())["cancel_requested"] is True

    async def cancelled() -> bool:
        return await _state(http, other, run["id"]) == "cancelled"

    # the owner picks the cancel up with its next heartbeat
    await until(cancelled, 2 * HEARTBEAT_SECONDS, "the owner to end the run")
    assert not _alive(pid)
    record = await _get(http, owner, f"/runs/{run['id']}")
    assert (record["state"], record["outcome"]["kind"]) == ("cancelled", "cancelled")


async def test_logs_of_a_run_are_served_by_every_replica(
    trio: list[Replica], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    _, owner, other = trio
    go = tmp_path / "go"
    params = {"chatter": {"megabytes": 0, "lines": 3, "go_file": str(go)}}
    _, run = await _submit(http, owner, CHATTY, _body(params, tmp_path / "r"))
    logs = f"{other.url}/runs/{run['id']}/logs"
    async with http.get(logs, params={"follow": "1", "stream": "stdout"}) as following:
        assert following.status == 200
        seen = b""
        while b"line 0\n" not in seen:  # the first line arrives while the run waits for `go`
            chunk = await following.content.readany()
            assert chunk, f"the followed logs ended early: {seen!r}"
            seen += chunk
        assert await _state(http, other, run["id"]) == "running"
        go.touch()
        seen += await following.content.read()  # until the run ends
    assert seen == b"line 0\nline 1\nline 2\n"
    assert await _state(http, other, run["id"]) == "succeeded"
    async with http.get(logs, params={"stream": "stdout"}) as response:
        assert response.status == 200
        assert await response.text() == "line 0\nline 1\nline 2\n"
    async with http.get(logs, params={"stream": "stdout", "tail": "1"}) as response:
        assert await response.text() == "line 2\n"


# --- the database goes away and comes back ---------------------------------------------------


async def test_a_database_outage_answers_503_and_loses_no_run(
    cluster: Cluster, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    relay = await cluster.relay()
    replicas = await cluster.start(["cut-a", "cut-b"], relay.url(cluster.database_url))
    # runs that last longer than the replica timeout, cut off from the database all along
    seconds = REPLICA_TIMEOUT_SECONDS + 1
    pid_files = [tmp_path / f"cut-{index}.pid" for index in range(4)]
    for index, pid_file in enumerate(pid_files):
        replica = replicas[index % 2]
        params = {"sleep": {"seconds": seconds, "pid_file": str(pid_file)}}
        body = _body(params, tmp_path / f"r{index}", workflow_run_id=f"cut-{index}")
        status, _ = await _submit(http, replica, SLOW, body)
        assert status == 202
    await until(lambda: all(p.exists() for p in pid_files), START_TIMEOUT, "the workflows")
    pids = [int(pid_file.read_text()) for pid_file in pid_files]

    await relay.stop()
    for replica in replicas:
        ready = await _database_shown(http, replica, "unreachable")
        assert ready["status"] == "ok"  # readiness itself does not fail
        async with http.get(f"{replica.url}/livez") as response:
            assert response.status == 200
        body = _body({}, tmp_path / "refused", workflow_run_id="during-cut")
        async with http.post(
            f"{replica.url}/runs", params={"matchspec": TRIVIAL}, json=body
        ) as response:
            assert response.status == 503
            assert int(response.headers["Retry-After"]) > 0
            assert response.content_type == "application/json"
            assert "run store" in (await response.json())["detail"]
    # the runs end while the database is away (longer than the replica timeout)
    await until(lambda: not any(map(_alive, pids)), seconds + 30, "the workflows to end")

    await relay.start()
    for replica in replicas:
        await _database_shown(http, replica, "ok")
    status, run = await _submit(
        http, replicas[0], TRIVIAL, _body({}, tmp_path / "after", workflow_run_id="after")
    )
    assert status == 202
    done = await _get(http, replicas[0], f"/runs/{run['id']}", wait="30")
    assert done["state"] == "succeeded"

    async def every_end_recorded() -> list[dict[str, Any]] | None:
        runs = await _all_runs(http, replicas[1])
        return runs if all(run["state"] not in ("queued", "running") for run in runs) else None

    runs = await until(every_end_recorded, 30, "the ends of the cut-off runs to be recorded")
    assert sorted((run["workflow_run_id"], run["attempt"], run["state"]) for run in runs) == [
        ("after", 1, "succeeded"),
        *((f"cut-{index}", 1, "succeeded") for index in range(4)),
    ]


async def _database_shown(
    http: aiohttp.ClientSession, replica: Replica, status: str
) -> dict[str, Any]:
    """``/readyz``'s body once it shows the run store's status ``status`` (the next heartbeat
    finds out, trying again at least every heartbeat)."""

    async def shown() -> dict[str, Any] | None:
        async with http.get(f"{replica.url}/readyz") as response:
            assert response.status == 200
            ready: dict[str, Any] = await response.json()
        return ready if ready["components"]["database"]["status"] == status else None

    return await until(shown, 5 * HEARTBEAT_SECONDS, f"readyz to show the database {status}")
