"""Shared by the benchmarks: a test channel, the bare-spawn floor, a real server process, quiet
machine checks, summary statistics, and the JSON summary file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wtrunner.channel import build_channel  # noqa: E402
from wtrunner.environments import Environment, Environments, parse_matchspec  # noqa: E402
from wtrunner.settings import Settings  # noqa: E402

SPEC = "wt-test-trivial-workflow"  # standard library only: the figures show the service
T = TypeVar("T")


def test_channel(directory: Path) -> Path:
    """Pack tests/workflows into a channel under ``directory``."""
    output = directory / "channel"
    asyncio.run(build_channel([REPO / "tests" / "workflows"], output))
    return output


# --- statistics and output ----------------------------------------------------------------------


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median and spread (min, p10, p90, p99, max) of ``samples``."""
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p10": pct(10),
        "p90": pct(90),
        "p99": pct(99),
        "max": ordered[-1],
    }


def show(name: str, stats: dict[str, float], unit: str = "ms", scale: float = 1000) -> None:
    """Print one figure as ``name: median (p10-p90, n)``."""
    print(
        f"{name:<48} median {stats['median'] * scale:9.3f} {unit}"
        f"   p10 {stats['p10'] * scale:9.3f}   p90 {stats['p90'] * scale:9.3f}"
        f"   max {stats['max'] * scale:9.3f}   n={stats['n']}"
    )


def show_value(name: str, value: float, unit: str = "", note: str = "") -> None:
    """Print one derived figure (a ratio, a slope) on the same grid as :func:`show`."""
    print(f"{name:<48} {value:16.3f} {unit}{'   ' + note if note else ''}")


def write_summary(name: str, figures: dict[str, Any]) -> Path:
    """Write ``bench/<name>.json`` next to the scripts and say where it is."""
    path = Path(__file__).with_name(f"{name}.json")
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"summary written to {path.relative_to(REPO)}")
    return path


# --- a quiet machine ----------------------------------------------------------------------------


def add_quiet_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every script shares: how quiet the machine must be before and during."""
    parser.add_argument(
        "--max-load",
        type=float,
        default=0.7,
        help="wait until the 1-minute load average is below this before measuring (default 0.7)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=900,
        help="seconds to wait for that at most, then measure anyway (default 900)",
    )
    parser.add_argument(
        "--max-foreign-cpu",
        type=float,
        default=0.15,
        help="repeat a measurement when other processes used more CPU cores than this on "
        "average while it ran (default 0.15)",
    )
    parser.add_argument(
        "--attempts", type=int, default=3, help="tries per measurement when disturbed"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="measure now (development; figures may be noisy)"
    )


def load_average() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


async def wait_until_quiet(max_load: float, max_wait: float, poll: float = 10.0) -> float:
    """Wait until the 1-minute load average is below ``max_load`` (at most ``max_wait`` s);
    return the load average when measuring starts."""
    deadline = time.monotonic() + max_wait
    load = load_average()
    while load >= max_load and time.monotonic() < deadline:
        print(f"  waiting: load average {load:.2f} >= {max_load}", flush=True)
        await asyncio.sleep(poll)
        load = load_average()
    if load >= max_load:
        print(f"  load average still {load:.2f} after {max_wait:.0f}s: measuring anyway")
    return load


_TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    """CPU seconds every process on the machine used since boot (all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def process_stats() -> Iterator[tuple[int, list[bytes]]]:
    """Every process as ``(pid, fields of /proc/<pid>/stat after the command name)``:
    fields[0] state, [1] ppid, [2] pgrp, [11:13] utime and stime, [13:15] of reaped children."""
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_bytes()
            except OSError:
                continue
            yield int(entry.name), stat[stat.rfind(b")") + 2 :].split()


def _own_seconds() -> float:
    """CPU seconds this process and all its descendants used (reaped children included)."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for pid, fields in process_stats():
        children.setdefault(int(fields[1]), []).append(pid)
        # utime, stime, cutime, cstime: the process and its reaped descendants
        times[pid] = sum(int(f) for f in fields[11:15]) / _TICK
    total, stack = 0.0, [os.getpid()]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(children.get(pid, ()))
    return total


class CpuWatch:
    """How much CPU *other* processes (not this one or its descendants) used meanwhile."""

    def __init__(self) -> None:
        self.wall = time.monotonic()
        self.busy = _busy_seconds()
        self.own = _own_seconds()

    def foreign_cores(self) -> float:
        """Average number of cores other processes kept busy since the watch started."""
        wall = time.monotonic() - self.wall
        foreign = (_busy_seconds() - self.busy) - (_own_seconds() - self.own)
        return max(0.0, foreign) / max(wall, 1e-9)


def file_system(path: Path) -> str:
    """The file system ``path`` is on (where the benchmarks' servers keep their caches), e.g.
    ``ext4 (no journal)``: on ext4 without a journal every file or directory made costs more the
    more were removed in the last half minute (bench/README.md, third and fourth updates)."""
    target = os.path.realpath(path)
    best = ("", "unknown", "")
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            before, _, after = line.partition(" - ")
            mount_point, (kind, source) = before.split()[4], after.split()[:2]
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best[0]):
                best = (mount_point, kind, source)
    _, kind, source = best
    if kind != "ext4":
        return kind
    try:
        journal = Path(f"/sys/fs/ext4/{Path(source).name}/journal_task").read_text().strip()
    except OSError:
        return kind
    return f"{kind} (no journal)" if journal == "<none>" else f"{kind} (journal)"


async def guarded(
    label: str, measure: Callable[[], Awaitable[T]], options: argparse.Namespace
) -> tuple[T, dict[str, Any]]:
    """Run ``measure`` on a quiet machine: wait for a low load average first, and measure again
    (up to ``--attempts`` times) when other processes used CPU while it ran.

    Returns its result and the conditions it ran under (for the JSON summary).
    """
    conditions: dict[str, Any] = {}
    for attempt in range(1, options.attempts + 1):
        load = (
            load_average()
            if options.no_wait
            else await wait_until_quiet(options.max_load, options.max_wait)
        )
        watch = CpuWatch()
        result = await measure()
        foreign = watch.foreign_cores()
        conditions = {
            "load_average_at_start": load,
            "load_average_at_end": load_average(),
            "foreign_cpu_cores": round(foreign, 3),
            "attempts": attempt,
            "file_system": file_system(Path(tempfile.gettempdir())),
        }
        if foreign <= options.max_foreign_cpu:
            return result, conditions
        print(
            f"  {label}: other processes used {foreign:.2f} cores meanwhile"
            + ("; measuring again" if attempt < options.attempts else "; keeping it anyway")
        )
    conditions["disturbed"] = True
    return result, conditions


# --- the bare-spawn floor -----------------------------------------------------------------------


def install_floor(channel: Path, work: Path) -> Environment:
    """Resolve and install the trivial workflow into a cache of its own (not the server's)."""

    async def resolve() -> Environment:
        settings = Settings(cache_dir=work / "floor-cache", channels=(channel.as_uri(),))
        environments = Environments(settings, settings.channels)
        await environments.start()
        return await environments.resolve(parse_matchspec(SPEC))

    return asyncio.run(resolve())


class Floor:
    """The same installed workflow command, spawned directly with ``subprocess``: what a run
    costs without the service (the bare spawn of bench/README.md)."""

    def __init__(self, environment: Environment, work: Path) -> None:
        self.executable = str(environment.executable)
        self.activation = dict(environment.activation_env)
        self.work = work / "floor"
        self.work.mkdir(parents=True, exist_ok=True)
        self._configs: dict[str, Path] = {}

    def _config(self, params: dict[str, Any]) -> Path:
        text = json.dumps(params)
        if text not in self._configs:
            path = self.work / f"params-{len(self._configs)}.json"
            path.write_text(text)
            self._configs[text] = path
        return self._configs[text]

    def start(self, params: dict[str, Any] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
        """Start one run of the workflow; the process and its result.json."""
        results = self.work / uuid.uuid4().hex
        config = self._config(params or {})
        argv = [self.executable, "run", "--config-file", str(config)]
        argv += ["--execution-mode", "sequential", "--no-mock-io"]
        env = {**self.activation, "WT_RESULTS": results.as_uri()}
        process = subprocess.Popen(
            argv, env=env, cwd=self.work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        return process, results / "result.json"

    def run(self, params: dict[str, Any] | None = None) -> float:
        """Wall time of one run, start to exit (and its result.json is there)."""
        started = time.perf_counter()
        process, result = self.start(params)
        code = process.wait()
        elapsed = time.perf_counter() - started
        if code != 0 or not result.exists():
            raise RuntimeError(f"the workflow run directly failed (exit {code})")
        return elapsed

    def run_many(self, count: int, params: dict[str, Any] | None = None) -> float:
        """Wall time of ``count`` runs started at once, until the last exits."""
        started = time.perf_counter()
        processes = [self.start(params) for _ in range(count)]
        for process, result in processes:
            if process.wait() != 0 or not result.exists():
                raise RuntimeError("a workflow run directly failed")
        return time.perf_counter() - started

    def run_pool(self, count: int, width: int, params: dict[str, Any] | None = None) -> float:
        """Wall time of ``count`` runs, at most ``width`` at a time (a new one as one ends)."""
        started = time.perf_counter()
        running: list[tuple[subprocess.Popen[bytes], Path]] = []
        pending = count
        while pending or running:
            while pending and len(running) < width:
                running.append(self.start(params))
                pending -= 1
            # which child ended, without reaping it: it may be one this helper did not start
            ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            entry = next((e for e in running if ended and e[0].pid == ended.si_pid), None)
            if entry is None:
                raise RuntimeError("another child process of the benchmark ended")
            running.remove(entry)
            if entry[0].wait() != 0 or not entry[1].exists():
                raise RuntimeError("a workflow run directly failed")
        return time.perf_counter() - started

    def peak_rss(self) -> int:
        """Peak resident memory (VmHWM, bytes) of one run of the workflow, read while it
        sleeps (its imports done)."""
        process, _ = self.start({"sleep": {"seconds": 0.3}})
        time.sleep(0.2)
        peak = memory_status(process.pid)["VmHWM"]
        process.wait()
        return peak


def measure_floor(floor: Floor, repeat: int) -> dict[str, float]:
    """Wall times of ``repeat`` bare spawns (after one to warm the page cache)."""
    floor.run()
    return summary([floor.run() for _ in range(repeat)])


# --- a real server, in a process of its own -----------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile (bytes) and Threads of process ``pid``, from /proc."""
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            status[name] = int(value.split()[0]) * 1024
        elif name == "Threads":
            status[name] = int(value)
    return status


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds process ``pid`` used itself (all its threads), and its reaped children."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    fields = stat[stat.rfind(b")") + 2 :].split()
    own = (int(fields[11]) + int(fields[12])) / _TICK
    return own, (int(fields[13]) + int(fields[14])) / _TICK


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (VmRSS)."""
    return memory_status(pid)["VmRSS"]


def child_count(pid: int) -> int:
    """Live children of process ``pid`` (workflow processes of a server)."""
    return sum(
        1
        for _, fields in process_stats()
        if int(fields[1]) == pid and fields[0] not in (b"Z", b"X")
    )


@contextmanager
def server(
    channel: Path, work: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> Iterator[Server]:
    """``python -m wtrunner serve`` on 127.0.0.1 with a cache of its own; stopped on exit.

    ``WTRUNNER_*`` variables of the benchmark's own environment reach the server too (to
    compare settings, e.g. ``WTRUNNER_RUN_CGROUPS=off``); its host, channel and cache are the
    benchmark's."""
    home = Path(tempfile.mkdtemp(prefix="server-", dir=work))
    port = free_port()
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),  # this checkout's wtrunner, whichever one is installed
        "HOME": str(home),
        **{name: value for name, value in os.environ.items() if name.startswith("WTRUNNER_")},
        "WTRUNNER_HOST": "127.0.0.1",
        "WTRUNNER_CHANNELS": channel.as_uri(),
        "WTRUNNER_CACHE_DIR": str(home / "cache"),
        **(env or {}),
    }
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "wtrunner", "serve", "--port", str(port)],
            env=environ,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Server(process, f"http://127.0.0.1:{port}", home)
    try:
        running.wait_until_answering(timeout)
        yield running
    finally:
        running.stop()


class Server:
    """A running ``wtrunner serve`` process."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, home: Path) -> None:
        self.process = process
        self.url = url
        self.home = home
        self.results = home / "results"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def rss(self) -> int:
        """Its resident memory now (bytes)."""
        return rss_bytes(self.pid)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds it used itself, and its reaped workflow processes."""
        return cpu_seconds(self.pid)

    def in_flight(self) -> int:
        """Workflow processes it has running now."""
        return child_count(self.pid)

    def wait_until_answering(self, timeout: float, path: str = "/livez") -> None:
        """Poll ``GET <path>`` until it answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_file = self.home / "server.log"
                log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{log}")
            try:
                with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.url}/livez did not answer within {timeout}s")

    def stop(self) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL of its group if it does not exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def run_body(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The body of ``POST /`` for one run of the trivial workflow (fresh results dir)."""
        return {
            "params": params or {},
            "execution_mode": "sequential",
            "mock_io": False,
            "results_url": str(self.results / uuid.uuid4().hex),
        }

    async def post_run(self, session: Any, params: dict[str, Any] | None = None) -> float:
        """``POST /`` one run with an aiohttp ``session``; its wall time (fails unless 200)."""
        body = self.run_body(params)
        started = time.perf_counter()
        async with session.post(f"{self.url}/", params={"matchspec": SPEC}, json=body) as reply:
            await reply.read()
        elapsed = time.perf_counter() - started
        if reply.status != 200:
            raise RuntimeError(f"POST / answered {reply.status}: {await reply.text()}")
        return elapsed

    async def get_health(self, session: Any) -> float:
        """``GET /`` once; its wall time."""
        started = time.perf_counter()
        async with session.get(f"{self.url}/") as reply:
            await reply.read()
        elapsed = time.perf_counter() - started
        if reply.status != 200:
            raise RuntimeError(f"GET / answered {reply.status}")
        return elapsed


def client_session() -> Any:
    """An aiohttp client session with no connection limit and no timeout."""
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )


@contextlib.contextmanager
def bench_setup() -> Iterator[tuple[Path, Path, Floor]]:
    """What every benchmark starts from: a temporary work dir, the test channel in it, and
    the trivial workflow installed for the bare-spawn floor."""
    with tempfile.TemporaryDirectory(prefix="wtrunner-bench-") as directory:
        work = Path(directory)
        channel = test_channel(work)
        yield work, channel, Floor(install_floor(channel, work), work)


def ratio(value: float, floor: float) -> float:
    """``value / floor`` (the figure as a multiple of the bare-spawn floor)."""
    return value / floor if floor else float("nan")
