"""Bursts: N runs of the 1-second workflow posted at once, each on a fresh connection, while a
second process probes ``GET /`` every 50 ms.

    python bench/burst.py [--levels 20,64,200] [--repeat 3]

This is the harder case next to ``responsiveness.py`` (which keeps runs in flight on warm
connections and probes from the load generator's own event loop): every run starts in the
same instant, so the server accepts N connections, checks N requests and spawns N workflow
processes at once, and the probe, in a process of its own, sees every stall of the server's
event loop. The same probe, from a second process, hits an idle plain aiohttp server (the
control) during the same burst: its latency is what the machine alone does to a probe.

Per level: wall time until the last run answered, the probes' p50/p99/max during the burst
(service and control, and their ratio), the server's CPU time per run, its RSS after the
burst, and the floor: the same N runs spawned directly at once. Run slots are raised to the
largest level. Prints figures (never pass/fail) and writes bench/burst.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    SPEC,
    Floor,
    Server,
    add_quiet_arguments,
    bench_setup,
    client_session,
    free_port,
    guarded,
    ratio,
    server,
    show,
    show_value,
    summary,
    write_summary,
)

PARAMS = {"sleep": {"seconds": 1.0}}
PROBE_INTERVAL = 0.05
SETTLE_SECONDS = 0.5


# --- the probe and the control server: processes of their own ----------------------------------


async def _probe(url: str, out: Path) -> None:
    """``GET url`` every 50 ms, each on a fresh connection (like a kubelet probe), until stdin
    closes; write ``[(monotonic start, seconds), ...]`` to ``out``."""
    import aiohttp

    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), timeout=timeout
    ) as session:
        print("ready", flush=True)
        next_at = time.monotonic()
        while not stop.is_set():
            started = time.monotonic()
            async with session.get(url) as reply:
                await reply.read()
            samples.append((started, time.monotonic() - started))
            next_at += PROBE_INTERVAL
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    out.write_text(json.dumps(samples))


def _control(port: int) -> None:
    """A plain aiohttp server answering ``GET /`` with a small JSON body."""
    from aiohttp import web

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class Probe:
    """A probe process pointed at ``url``; its samples once stopped."""

    def __init__(self, url: str, out: Path) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--probe", url, str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the probe did not start")

    def stop(self) -> list[tuple[float, float]]:
        """Stop probing; every (start, latency) sample."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        if self.process.wait(timeout=30) != 0:
            raise RuntimeError("the probe failed")
        samples: list[tuple[float, float]] = [tuple(s) for s in json.loads(self.out.read_text())]
        return samples


def _start_control(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--control", str(port)])
    url = f"http://127.0.0.1:{port}/"
    control = Server(process, url.rstrip("/"), work)
    control.wait_until_answering(30, "/")
    return process, url


# --- one burst ----------------------------------------------------------------------------------


async def _post_fresh(running: Server, body: dict[str, Any]) -> None:
    """``POST /`` on a connection of its own; fails unless 200."""
    import aiohttp

    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=None)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.post(f"{running.url}/", params={"matchspec": SPEC}, json=body) as reply,
    ):
        text = await reply.text()
    if reply.status != 200:
        raise RuntimeError(f"POST / answered {reply.status}: {text}")


async def burst(running: Server, work: Path, control_url: str, count: int) -> dict[str, Any]:
    """``count`` runs posted at once while both probes run; the figures of that burst."""
    probes = [
        Probe(f"{running.url}/", work / "probe-service.json"),
        Probe(control_url, work / "probe-control.json"),
    ]
    await asyncio.sleep(SETTLE_SECONDS)  # a few idle samples first
    bodies = [running.run_body(PARAMS) for _ in range(count)]
    cpu_before, _ = running.cpu()
    started = time.monotonic()
    await asyncio.gather(*(_post_fresh(running, body) for body in bodies))
    ended = time.monotonic()
    cpu_after, _ = running.cpu()
    await asyncio.sleep(SETTLE_SECONDS)
    service, control = (
        [latency for at, latency in probe.stop() if started <= at <= ended] for probe in probes
    )
    return {
        "wall_seconds": ended - started,
        "server_cpu_seconds_per_run": (cpu_after - cpu_before) / count,
        "server_rss_bytes_after": running.rss(),
        "probe_service": service,
        "probe_control": control,
    }


async def measure(
    floor: Floor, channel: Path, work: Path, options: argparse.Namespace
) -> dict[str, Any]:
    slots = max(options.levels)
    control, control_url = _start_control(work)
    levels: dict[str, Any] = {}
    try:
        env = {"WTRUNNER_MAX_CONCURRENT_RUNS": str(slots)}
        with server(channel, work, env) as running:
            async with client_session() as session:
                await running.post_run(session)  # install, cache "no schema"
                idle_rss = running.rss()
            for count in options.levels:

                async def level(count: int = count) -> dict[str, Any]:
                    walls, cpus, floors, rss = [], [], [], []
                    service: list[float] = []
                    control_samples: list[float] = []
                    for _ in range(options.repeat):
                        figures = await burst(running, work, control_url, count)
                        walls.append(figures["wall_seconds"])
                        cpus.append(figures["server_cpu_seconds_per_run"])
                        rss.append(figures["server_rss_bytes_after"])
                        service += figures["probe_service"]
                        control_samples += figures["probe_control"]
                        floors.append(floor.run_many(count, PARAMS))
                    return {
                        "runs": count,
                        "wall_seconds": summary(walls),
                        "floor_seconds": summary(floors),
                        "server_cpu_seconds_per_run": summary(cpus),
                        "server_rss_bytes_after": summary(rss),
                        "get_service_seconds": summary(service),
                        "get_control_seconds": summary(control_samples),
                    }

                figures, conditions = await guarded(f"{count} at once", level, options)
                figures["conditions"] = conditions
                levels[str(count)] = figures
            stalls = _stalls(running)
    finally:
        control.terminate()
        control.wait()
    return {
        "slots": slots,
        "probe_interval_seconds": PROBE_INTERVAL,
        "idle_rss_bytes_after_first_run": idle_rss,
        "levels": levels,
        "stalls": stalls,
    }


def _stalls(running: Server) -> list[str]:
    """The event loop stalls the server logged (its loop-lag monitor: what was running)."""
    log = (running.home / "server.log").read_text(errors="replace")
    return [line for line in log.splitlines() if "event loop stalled" in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--levels",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[20, 64, 200],
        help="runs posted at once (default 20,64,200; the largest sets the run slots)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="bursts per level (default 3)")
    parser.add_argument("--probe", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--control", type=int, metavar="PORT", help=argparse.SUPPRESS)
    add_quiet_arguments(parser)
    options = parser.parse_args()
    if options.probe:
        asyncio.run(_probe(options.probe[0], Path(options.probe[1])))
        return
    if options.control:
        _control(options.control)
        return
    with bench_setup() as (work, channel, floor):
        figures = asyncio.run(measure(floor, channel, work, options))
    show_value("server RSS idle after the first run", figures["idle_rss_bytes_after_first_run"]
               / 1e6, "MB")  # fmt: skip
    for level in figures["levels"].values():
        count = level["runs"]
        print(f"--- {count} runs of 1 s posted at once, each on a fresh connection")
        show("  wall time until the last answer", level["wall_seconds"], "s", 1)
        show("  floor: the same runs spawned directly at once", level["floor_seconds"], "s", 1)
        level["wall_ratio_to_floor"] = ratio(
            level["wall_seconds"]["median"], level["floor_seconds"]["median"]
        )
        show_value("  wall / floor", level["wall_ratio_to_floor"], "x")
        show("  server CPU per run", level["server_cpu_seconds_per_run"])
        show("  GET / during the burst (service)", level["get_service_seconds"])
        show_value("  GET / p99 (service)", level["get_service_seconds"]["p99"] * 1000, "ms")
        show("  GET / during the burst (idle plain aiohttp, control)", level["get_control_seconds"])
        show_value("  GET / p99 (control)", level["get_control_seconds"]["p99"] * 1000, "ms")
        level["p99_ratio_to_control"] = ratio(
            level["get_service_seconds"]["p99"], level["get_control_seconds"]["p99"]
        )
        show_value("  p99 service / p99 control", level["p99_ratio_to_control"], "x")
        show("  server RSS after the burst", level["server_rss_bytes_after"], "MB", 1e-6)
        print(f"  conditions: {level['conditions']}")
    print(f"event loop stalls over 100 ms the server logged: {len(figures['stalls'])}")
    for line in figures["stalls"][:20]:
        print(f"  {line}")
    write_summary("burst", figures)


if __name__ == "__main__":
    main()
