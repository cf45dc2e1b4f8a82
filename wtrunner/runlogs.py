"""A run's output, kept as its logs: ``<cache>/runs/<run id>/stdout.log`` and ``stderr.log``.

The workflow writes to pipes; an :class:`OutputPipe` copies each into its log through a
:class:`LogSink`, which masks the run's secrets (data-connection values) before anything is
stored and stops storing at ``WTRUNNER_RUN_LOG_MAX_BYTES`` with a marker line, while still
draining the pipe so the workflow never blocks on a full one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Literal

Stream = Literal["stdout", "stderr"]
STREAMS: tuple[Stream, ...] = ("stdout", "stderr")
MASK = b"**********"
CHUNK_BYTES = 64 * 1024


def logs_dir(cache_dir: Path, run_id: str) -> Path:
    """Where a run's logs live."""
    return cache_dir / "runs" / run_id


def log_path(cache_dir: Path, run_id: str, stream: Stream) -> Path:
    """The log file of one stream of a run."""
    return logs_dir(cache_dir, run_id) / f"{stream}.log"


def truncation_marker(limit: int) -> bytes:
    """The line that ends a log cut at ``limit`` bytes."""
    return f"\n[wtrunner: output truncated at {limit} bytes]\n".encode()


class LogSink:
    """One stream's log file: secrets masked, at most ``limit`` bytes, then a marker line.

    A secret split across two writes is still masked: the last ``longest secret - 1`` bytes
    are held back until more output (or the end) shows what they are.
    """

    def __init__(self, file: IO[bytes], secrets: Iterable[str], limit: int) -> None:
        self.file = file
        self.limit = limit
        self.secrets = sorted(
            {secret.encode() for secret in secrets if secret}, key=len, reverse=True
        )
        self._hold = max((len(secret) for secret in self.secrets), default=1) - 1
        self._held = b""
        self._written = 0
        self.truncated = False

    def write(self, data: bytes) -> None:
        """Take more output of the stream."""
        buffer = self._mask(self._held + data)
        cut = max(0, len(buffer) - self._hold)
        self._held = buffer[cut:]
        self._store(buffer[:cut])

    def close(self) -> None:
        """Store what was held back and flush (the file stays open: its owner closes it)."""
        self._store(self._mask(self._held))
        self._held = b""
        self.file.flush()

    def _mask(self, data: bytes) -> bytes:
        for secret in self.secrets:
            data = data.replace(secret, MASK)
        return data

    def _store(self, data: bytes) -> None:
        if self.truncated or not data:
            return
        room = self.limit - self._written
        if len(data) > room:
            self.file.write(data[:room] + truncation_marker(self.limit))
            self._written = self.limit
            self.truncated = True
        else:
            self.file.write(data)
            self._written += len(data)
        self.file.flush()


class OutputPipe:
    """A pipe for one output stream of a child, copied into a :class:`LogSink` by the event loop.

    Give ``child_fd`` to the child as its stdout or stderr, then call :meth:`start`: the loop
    reads whatever arrives (a callback on the descriptor, no transport or task per stream) until
    end of file. The pipe is ours, not an asyncio subprocess transport's: waiting for the
    child's exit does not wait for the pipe to close, which a leftover grandchild may keep open.
    """

    def __init__(self) -> None:
        self._read_fd, self.child_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._sink: LogSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.done: asyncio.Future[None] | None = None

    def start(self, sink: LogSink) -> None:
        """Close the child's end here and copy ours into ``sink`` until end of file."""
        os.close(self.child_fd)
        self.child_fd = -1
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        self.done = self._loop.create_future()
        self._loop.add_reader(self._read_fd, self._readable)

    def _readable(self) -> None:
        assert self._sink is not None
        try:
            data = os.read(self._read_fd, CHUNK_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._sink.write(data)
        else:
            self.close()

    def close(self) -> None:
        """Stop copying: store what the sink holds back and let go of the pipe (whoever still
        writes to it gets SIGPIPE). Idempotent."""
        if self.child_fd >= 0:
            os.close(self.child_fd)
            self.child_fd = -1
        if self._read_fd < 0:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._read_fd)
        os.close(self._read_fd)
        self._read_fd = -1
        if self._sink is not None:
            self._sink.close()
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


def read_tail_lines(path: Path, lines: int) -> bytes:
    """The last ``lines`` lines of a log file (all of it when shorter; empty when missing)."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            block = 64 * 1024
            data = b""
            position = size
            while position > 0 and data.count(b"\n") <= lines:
                step = min(block, position)
                position -= step
                file.seek(position)
                data = file.read(step) + data
    except FileNotFoundError:
        return b""
    kept = data.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return b"".join(kept)
