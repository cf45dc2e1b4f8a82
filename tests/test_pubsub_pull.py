"""The pull consumer against Google's Pub/Sub emulator (real client, real subscription)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Client, ClientFactory, until
from tests.processes import start_server
from tests.pubsub_helpers import ACK_DEADLINE_SECONDS, Subscription, run_command, start_emulator
from wtrunner.keys import PUBSUB_CONSUMER, RUNS
from wtrunner.pubsub.consumer import PullConsumer

SLOW = "wt-test-slow-workflow"
ECHO = "wt-test-echo-workflow"


async def _consumer_app(
    make_client: ClientFactory, subscription: Subscription, **settings: Any
) -> Client:
    settings.setdefault("kill_grace_seconds", 0.5)
    settings.setdefault("pubsub_lease_seconds", ACK_DEADLINE_SECONDS)
    return await make_client(pubsub_subscription=subscription.path, **settings)


def _result(results: Path) -> dict[str, Any] | None:
    try:
        return json.loads((results / "result.json").read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, ValueError):
        return None


def _consumer(client: Client) -> PullConsumer:
    return client.app[PUBSUB_CONSUMER]


async def test_pull_end_to_end_acked_and_not_redelivered(
    make_client: ClientFactory, subscription: Subscription, tmp_path: Path
) -> None:
    client = await _consumer_app(make_client, subscription)
    consumer = _consumer(client)
    params = {"workflow_details": {"name": "pulled"}, "get_fixes": {}}
    await subscription.publish(run_command("wt-example-tracks-workflow", params, tmp_path / "r"))
    await until(lambda: consumer.stats.acked == 1, 60, "the message to be acked")
    assert _result(tmp_path / "r")["result"]["workflow"] == "pulled"  # type: ignore[index]
    readyz = await client.get("/readyz")
    assert (await readyz.json())["components"]["pubsub"]["status"] == "ok"

    await client.close()  # no more pulls or lease extensions from here
    await asyncio.sleep(ACK_DEADLINE_SECONDS + 1)  # an unacked message would be deliverable now
    assert await subscription.pull_now() == []
    assert consumer.stats.received == 1


async def test_a_run_longer_than_three_ack_deadlines_is_not_redelivered(
    make_client: ClientFactory, subscription: Subscription, tmp_path: Path
) -> None:
    client = await _consumer_app(make_client, subscription)
    consumer = _consumer(client)
    seconds = 4 * ACK_DEADLINE_SECONDS
    await subscription.publish(run_command(SLOW, {"sleep": {"seconds": seconds}}, tmp_path / "r"))
    await until(lambda: consumer.stats.acked == 1, 60, "the slow run")
    assert _result(tmp_path / "r")["result"] == {"slept": seconds}  # type: ignore[index]
    # the consumer kept pulling meanwhile: a redelivery would have arrived as a duplicate
    assert (consumer.stats.received, consumer.stats.duplicates) == (1, 0)


async def test_at_most_n_runs_in_flight_while_3n_wait(
    make_client: ClientFactory, subscription: Subscription, tmp_path: Path
) -> None:
    slots = 2
    client = await _consumer_app(make_client, subscription, max_concurrent_runs=slots)
    consumer = _consumer(client)
    service = client.app[RUNS]
    peak_slots = 0

    commands = [
        run_command(SLOW, {"sleep": {"seconds": 1}}, tmp_path / f"r{i}", run_id=f"r{i}")
        for i in range(3 * slots)
    ]
    await subscription.publish(*commands)

    def all_done() -> bool:
        nonlocal peak_slots
        peak_slots = max(peak_slots, service.slots.in_use)
        return consumer.stats.acked == len(commands)

    await until(all_done, 90, "every message")
    assert consumer.stats.peak_in_flight <= slots
    assert peak_slots <= slots
    assert all(_result(tmp_path / f"r{i}") is not None for i in range(len(commands)))


async def test_a_duplicate_delivery_does_not_start_a_second_run(
    make_client: ClientFactory, subscription: Subscription, tmp_path: Path
) -> None:
    client = await _consumer_app(make_client, subscription)
    consumer = _consumer(client)
    count = tmp_path / "runs.txt"
    command = run_command(ECHO, {"echo": {"append": str(count)}}, tmp_path / "r", run_id="same")
    await subscription.publish(command, command)
    await until(lambda: consumer.stats.acked == 2, 60, "both copies acked")
    later = run_command(ECHO, {"echo": {"append": str(count)}}, tmp_path / "r", run_id="same")
    await subscription.publish(later)
    await until(lambda: consumer.stats.acked == 3, 60, "the late copy acked")
    assert len(count.read_text().splitlines()) == 1
    assert consumer.stats.duplicates == 2


async def test_a_transient_failure_is_redelivered(
    make_client: ClientFactory, subscription: Subscription, tmp_path: Path, channel: Path
) -> None:
    late_channel = tmp_path / "late-channel"  # not there yet: resolution fails with a 503
    client = await _consumer_app(make_client, subscription, channels=(late_channel.as_uri(),))
    consumer = _consumer(client)
    await subscription.publish(run_command(ECHO, {"echo": {}}, tmp_path / "r"))
    await until(lambda: consumer.stats.nacked >= 1, 60, "a nack")
    assert _result(tmp_path / "r") is None
    shutil.copytree(channel, late_channel)
    await until(lambda: consumer.stats.acked == 1, 60, "the redelivered message to run")
    assert _result(tmp_path / "r")["error"] is None  # type: ignore[index]
    assert consumer.stats.received >= 2


async def test_permanent_failure_is_acked_with_an_error_result(
    make_client: ClientFactory, subscription: Subscription, tmp_path: Path
) -> None:
    client = await _consumer_app(make_client, subscription)
    consumer = _consumer(client)
    await subscription.publish(
        run_command("wt-test-crash-workflow", {}, tmp_path / "r"), b"not even json"
    )
    await until(lambda: consumer.stats.acked == 2, 60, "both acked")
    written = _result(tmp_path / "r")
    assert written is not None and "exited with code 3" in written["error"]
    assert consumer.stats.nacked == 0


@pytest.mark.slow
async def test_sigterm_drains_nacks_the_rest_and_another_consumer_completes_them(
    make_client: ClientFactory,
    subscription: Subscription,
    tmp_path: Path,
    channel: Path,
) -> None:
    replica, _ = start_server(
        tmp_path,
        PUBSUB_EMULATOR_HOST=os.environ["PUBSUB_EMULATOR_HOST"],
        WTRUNNER_CHANNELS=channel.as_uri(),
        WTRUNNER_PUBSUB_SUBSCRIPTION=subscription.path,
        WTRUNNER_PUBSUB_LEASE_SECONDS=str(ACK_DEADLINE_SECONDS),
        WTRUNNER_PUBSUB_DRAIN_SECONDS="1",
        WTRUNNER_KILL_GRACE_SECONDS="0.5",
        WTRUNNER_MAX_CONCURRENT_RUNS="2",
    )
    try:
        commands = [
            run_command(SLOW, {"sleep": {"seconds": 6}}, tmp_path / f"r{i}", run_id=f"long-{i}")
            for i in range(2)
        ]
        await subscription.publish(*commands)
        runs_dir = tmp_path / "cache" / "work"
        await until(
            lambda: runs_dir.exists() and len(list(runs_dir.glob("run-*"))) == 2,
            60,
            "both runs in flight in the first replica",
        )
        replica.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(replica.communicate, timeout=60)
    finally:
        replica.kill()
    assert replica.returncode == 0, stderr.decode()
    assert b"nacking" in stderr
    assert all(_result(tmp_path / f"r{i}") is None for i in range(2))

    second = await _consumer_app(make_client, subscription)
    await until(lambda: _consumer(second).stats.acked == 2, 90, "the second replica")
    assert all(_result(tmp_path / f"r{i}") == {"result": {"slept": 6.0}, "error": None,
                                               "trace": None} for i in range(2))  # fmt: skip


@pytest.mark.slow
async def test_the_consumer_survives_the_emulator_going_away(
    make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = start_emulator(tmp_path)
    try:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
        subscription = Subscription(emulator)
        await subscription.create()
        client = await _consumer_app(make_client, subscription)
        consumer = _consumer(client)
        # (run ids: a restarted emulator numbers its messages from 1 again)
        await subscription.publish(run_command(ECHO, {"echo": {}}, tmp_path / "before", run_id="b"))
        await until(lambda: consumer.stats.acked == 1, 60, "the first message")

        emulator.stop()
        await until(lambda: consumer.stats.pull_failures >= 2, 60, "failing pulls")
        health = await client.get("/")
        assert health.status == 200
        readyz = await client.get("/readyz")
        assert readyz.status == 200, "consumer trouble does not fail readiness"
        assert (await readyz.json())["components"]["pubsub"]["status"] == "error"

        emulator.start()  # its state is gone: the test recreates topic and subscription
        await subscription.create()
        await subscription.publish(run_command(ECHO, {"echo": {}}, tmp_path / "after", run_id="a"))
        await until(lambda: consumer.stats.acked == 2, 90, "the message after")
        assert _result(tmp_path / "after")["error"] is None  # type: ignore[index]
        assert (await (await client.get("/readyz")).json())["components"]["pubsub"][
            "status"
        ] == "ok"
    finally:
        emulator.stop()
