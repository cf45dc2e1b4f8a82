"""A workflow's local processes, outside any run: work dirs, their environment, and the
metadata commands (``get ...``, ``convert ...``) run with bounded output and time.

The local invoker starts ``run`` with the same work dirs and base environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import anyio.to_thread

from .environments import Environment
from .errors import ServiceUnavailableError, UpstreamError
from .processes import GroupReaper, spawn_with_pipes
from .settings import Settings
from .text import last_line
from .workdirs import work_root

STDERR_TAIL_BYTES = 16 * 1024
METADATA_OUTPUT_LIMIT = 16 * 1024 * 1024
METADATA_GRACE_SECONDS = 1.0
METADATA_TIMEOUT_SECONDS = 60.0


class CommandFailed(UpstreamError):
    """A workflow metadata command failed; ``exit_code`` is None when it timed out."""

    def __init__(self, detail: str, exit_code: int | None) -> None:
        super().__init__(detail)
        self.exit_code = exit_code


def passthrough_env(environ: Mapping[str, str], patterns: Iterable[str]) -> dict[str, str]:
    """The variables of ``environ`` named by ``patterns`` (a trailing ``*`` makes a prefix)."""
    patterns = list(patterns)
    exact = {pattern for pattern in patterns if not pattern.endswith("*")}
    prefixes = tuple(pattern[:-1] for pattern in patterns if pattern.endswith("*"))
    return {
        name: value
        for name, value in environ.items()
        if name in exact or (prefixes and name.startswith(prefixes))
    }


def base_env(settings: Settings, environment: Environment) -> dict[str, str]:
    """Pass-through server variables, then the prefix's activation variables on top."""
    env = passthrough_env(os.environ, settings.child_env_passthrough)
    env.update(environment.activation_env)
    return env


def new_work_dir(settings: Settings, prefix: str) -> Path:
    """A fresh directory under ``<cache>/work`` for one process (503 when the disk refuses)."""
    runs = work_root(settings)
    try:
        runs.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=runs))
    except OSError as exc:
        raise no_room(settings, exc) from None


def no_room(settings: Settings, exc: OSError) -> ServiceUnavailableError:
    """The 503 for a server disk that cannot take a work dir or its files."""
    return ServiceUnavailableError(
        f"cannot prepare a work dir in {settings.cache_dir}: {exc.strerror or exc}"
    )


async def check_output(
    settings: Settings,
    reaper: GroupReaper,
    environment: Environment,
    args: Sequence[str],
    stdin: bytes | None = None,
    timeout: float = METADATA_TIMEOUT_SECONDS,
) -> bytes:
    """Run ``<prefix>/bin/<name> *args`` in its own process group; its stdout.

    Raises CommandFailed (502) on a non-zero exit, a timeout, or more than 16 MiB of output.
    Whatever the command leaves running in its group is ended in the background by ``reaper``.
    """
    command = f"`{environment.name} {' '.join(args)}`"
    work_dir = new_work_dir(settings, "cmd-")
    try:
        process, child = await spawn_with_pipes(
            [environment.executable, *args], env=base_env(settings, environment), cwd=work_dir
        )
        try:
            stdout, stderr = await asyncio.wait_for(_communicate(child, stdin or b""), timeout)
        except asyncio.TimeoutError:
            await process.end(METADATA_GRACE_SECONDS)
            raise CommandFailed(f"{command} timed out after {timeout:g}s", None) from None
        except _TooMuchOutput:
            await process.end(METADATA_GRACE_SECONDS)
            raise CommandFailed(
                f"{command} printed more than {METADATA_OUTPUT_LIMIT} bytes", None
            ) from None
        except BaseException:
            await process.end(METADATA_GRACE_SECONDS)
            raise
        reaper.schedule(process)
    finally:
        await anyio.to_thread.run_sync(shutil.rmtree, work_dir, True)
    if process.returncode != 0:
        last = last_line(stderr)
        raise CommandFailed(
            f"{command} exited with code {process.returncode}" + (f": {last}" if last else ""),
            process.returncode,
        )
    return stdout


class _TooMuchOutput(Exception):
    pass


async def _communicate(child: asyncio.subprocess.Process, stdin: bytes) -> tuple[bytes, str]:
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None

    async def feed() -> None:
        assert child.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            child.stdin.write(stdin)
            await child.stdin.drain()
        child.stdin.close()

    async def read_stdout() -> bytes:
        assert child.stdout is not None
        chunks, size = [], 0
        while chunk := await child.stdout.read(65536):
            size += len(chunk)
            if size > METADATA_OUTPUT_LIMIT:
                raise _TooMuchOutput
            chunks.append(chunk)
        return b"".join(chunks)

    async def read_stderr_tail() -> str:
        assert child.stderr is not None
        tail = b""
        while chunk := await child.stderr.read(65536):
            tail = (tail + chunk)[-STDERR_TAIL_BYTES:]
        return tail.decode(errors="replace")

    _, stdout, stderr, _ = await asyncio.gather(
        feed(), read_stdout(), read_stderr_tail(), child.wait()
    )
    return stdout, stderr
