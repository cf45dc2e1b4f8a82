"""From a parsed MatchSpec to a runnable workflow prefix, with py-rattler.

Two sources, in order: installed prefixes (``WTRUNNER_PREFIXES``: used only when a record in the
prefix's ``conda-meta`` matches the whole MatchSpec) and channels (``WTRUNNER_CHANNELS``: solved
with ``rattler.solve`` and installed with ``rattler.install`` into ``<cache>/envs/<hash of the
solved records>``). Installs are single-flight, go to a temporary directory that is renamed into
place (a failed install leaves nothing behind) and share one package cache.

A resolution is reused for ``WTRUNNER_SOLVE_CACHE_SECONDS``, except that a change to a local
(``file://``) channel's repodata ends it at once: a package rebuilt with the same version and a
new build string is used by the very next resolution.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse
from urllib.request import url2pathname

import anyio.to_thread

from ..errors import PackageNotFoundError, ServiceUnavailableError
from ..metrics import Metrics
from ..settings import Settings
from ..singleflight import SingleFlight
from ..text import first_line
from ..tracing import tracer
from .activation import Activations
from .cache import EnvironmentCache, remove_tree
from .matchspec import package_name

log = logging.getLogger(__name__)

# The index files py-rattler may read in each subdir of a local channel.
REPODATA_FILES = ("repodata.json", "repodata.json.zst", "repodata_shards.msgpack.zst")


@dataclass(frozen=True)
class Environment:
    """A runnable workflow: where it lives and the variables it starts with."""

    name: str
    version: str
    build: str
    prefix: Path
    key: str
    activation_env: Mapping[str, str]
    source: str  # "prefix" or "channel"

    @property
    def executable(self) -> Path:
        """``<prefix>/bin/<name>``: the workflow's command line."""
        return self.prefix / "bin" / self.name

    @property
    def label(self) -> str:
        """``name version build``, for messages."""
        return f"{self.name} {self.version} {self.build}"


@dataclass
class ResolutionStats:
    """Counters of what resolution did (tests and metrics read them)."""

    hits: int = 0
    solves: int = 0
    installs: int = 0
    evictions: int = 0


class Resolution(NamedTuple):
    """An environment and how this resolution found it.

    ``result`` is ``hit`` (reused), ``prefix`` (an installed prefix), ``solved`` (solved; its
    prefix was already in the cache) or ``installed`` (solved, and installed for this request).
    """

    environment: Environment
    result: str


# The state of the local channels' index files: (path, mtime, ctime, size, inode) or None.
RepodataStamp = tuple[tuple[str, int, int, int, int] | None, ...]


@dataclass(frozen=True)
class _Solved:
    environment: Environment
    expires: float
    stamp: RepodataStamp


def channel_url(entry: str) -> str:
    """A channel URL for a configured entry: URLs as they are, local paths as ``file://``."""
    if "://" in entry:
        return entry
    if entry.startswith(("/", ".", "~")):
        return Path(entry).expanduser().resolve().as_uri()
    return entry  # a channel name such as "conda-forge"


def local_channel_dir(url: str) -> Path | None:
    """The directory of a ``file://`` channel URL, or None for any other channel."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(url2pathname(parsed.path))


def current_subdirs() -> list[str]:
    """The subdirs a solve on this machine reads: ``noarch`` and the machine's own."""
    import rattler

    # py-rattler 0.27 renamed Platform to Subdir (and deprecated the old name)
    subdir = getattr(rattler, "Subdir", None) or rattler.Platform
    return ["noarch", str(subdir.current())]


def watched_repodata_files(channels: Sequence[str]) -> list[Path]:
    """The index files of the local channels among ``channels`` that a solve on this machine
    may read (py-rattler is loaded only when there is a local channel to watch)."""
    directories = [d for d in map(local_channel_dir, channels) if d is not None]
    if not directories:
        return []
    subdirs = current_subdirs()
    return [d / subdir / name for d in directories for subdir in subdirs for name in REPODATA_FILES]


def repodata_stamp(files: Sequence[Path]) -> RepodataStamp:
    """A cheap fingerprint of ``files`` (one ``stat`` each): it changes when one is rewritten,
    replaced, created or removed."""
    stamp: list[tuple[str, int, int, int, int] | None] = []
    for path in files:
        try:
            found = os.stat(path)
        except OSError:
            stamp.append(None)
            continue
        stamp.append((str(path), found.st_mtime_ns, found.st_ctime_ns, found.st_size, found.st_ino))
    return tuple(stamp)


class Environments:
    """Resolves MatchSpecs to environments and owns ``<cache>/envs``.

    Lifecycle: ``await start()`` (clears debris of crashed installs), then ``resolve`` and
    ``lease`` from any number of tasks.
    """

    def __init__(
        self, settings: Settings, channels: Sequence[str], metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.channels = [channel_url(entry) for entry in channels]
        self.prefixes = [Path(entry).expanduser() for entry in settings.prefixes]
        self.envs_dir = settings.cache_dir / "envs"
        self.packages_dir = settings.cache_dir / "pkgs"
        self.stats = ResolutionStats()
        self.cache = EnvironmentCache(
            self.envs_dir,
            max_count=settings.env_cache_max,
            max_bytes=settings.env_cache_max_bytes,
        )
        self.activations = Activations()
        self._solved: dict[str, _Solved] = {}
        self._resolving = SingleFlight()
        self._installing = SingleFlight()
        self._gateway: Any = None
        self._watched: list[Path] | None = None

    def describe_sources(self) -> str:
        """The sources searched, for messages."""
        parts = []
        if self.prefixes:
            parts.append("prefixes " + ", ".join(str(p) for p in self.prefixes))
        if self.channels:
            parts.append("channels " + ", ".join(self.channels))
        return " and ".join(parts) or "no sources (set WTRUNNER_CHANNELS or WTRUNNER_PREFIXES)"

    async def start(self) -> None:
        """Create the cache directories and remove what crashed installs left behind."""
        self.packages_dir.mkdir(parents=True, exist_ok=True)
        await self.cache.clean()

    # --- resolution -------------------------------------------------------------------------

    async def resolve(self, spec: Any) -> Environment:
        """The environment for a parsed MatchSpec (see :func:`parse_matchspec`).

        Raises PackageNotFoundError (404) when no source has a match and
        ServiceUnavailableError (503) when a channel cannot be read or an install fails.
        """
        text = str(spec)
        with tracer.start_as_current_span(
            "resolve-environment", attributes={"wtrunner.matchspec": text}
        ) as span:
            stamp = repodata_stamp(self._watched_files())
            solved = self._solved.get(text)
            if (
                solved
                and solved.expires > time.monotonic()
                and solved.stamp == stamp
                and solved.environment.executable.exists()
            ):
                self.stats.hits += 1
                environment, result = solved.environment, "hit"
            else:
                # A resolution started before the channel changed is not joined: it may have
                # read the old index.
                environment, result = await self._resolving.run(
                    (text, stamp), lambda: self._resolve_uncached(spec, text, stamp)
                )
            span.set_attribute("wtrunner.resolution", result)
            span.set_attribute("wtrunner.environment", environment.label)
            self.metrics.resolutions.labels(result).inc()
            return environment

    def _watched_files(self) -> list[Path]:
        """The local channels' index files, for the subdirs a solve reads."""
        if self._watched is None:
            self._watched = watched_repodata_files(self.channels)
        return self._watched

    async def _resolve_uncached(self, spec: Any, text: str, stamp: RepodataStamp) -> Resolution:
        """Resolve from the sources; ``stamp`` is the local channels' state before solving."""
        resolution = await self._from_prefixes(spec)
        if resolution is None:
            resolution = await self._from_channels(spec)
        environment = resolution.environment
        if not environment.executable.exists():
            raise PackageNotFoundError(
                f"{environment.label} matches {text} but has no executable bin/{environment.name}"
            )
        expires = time.monotonic() + self.settings.solve_cache_seconds
        self._solved[text] = _Solved(environment, expires, stamp)
        return resolution

    async def _from_prefixes(self, spec: Any) -> Resolution | None:
        from rattler import PrefixRecord

        name = package_name(spec)
        for prefix in self.prefixes:
            for record_file in sorted((prefix / "conda-meta").glob(f"{name}-*.json")):
                try:
                    record = PrefixRecord.from_path(record_file)
                except Exception:  # not a record of ours to judge: skip it, say so
                    log.warning("cannot read %s; skipping it", record_file)
                    continue
                if record.name.normalized != name or not spec.matches(record):
                    continue
                key = "prefix-" + hashlib.sha256(str(prefix).encode()).hexdigest()[:16]
                environment = Environment(
                    name=name,
                    version=str(record.version),
                    build=str(record.build),
                    prefix=prefix,
                    key=key,
                    activation_env=await self.activations.of_installed_prefix(prefix),
                    source="prefix",
                )
                return Resolution(environment, "prefix")
        return None

    async def _from_channels(self, spec: Any) -> Resolution:
        import rattler
        from rattler.exceptions import GatewayError, SolverError

        text = str(spec)
        if not self.channels:
            raise PackageNotFoundError(f"no package matches {text} in {self.describe_sources()}")
        if self._gateway is None:  # py-rattler is loaded on first use: an idle server stays small
            self._gateway = rattler.Gateway(cache_dir=self.settings.cache_dir / "repodata")
        for channel in self.channels:  # the gateway keeps repodata in memory: read it afresh
            self._gateway.clear_repodata_cache(rattler.Channel(channel))
        self.stats.solves += 1
        try:
            records = await rattler.solve(
                self.channels,
                [spec],
                gateway=self._gateway,
                virtual_packages=rattler.VirtualPackage.detect(),
            )
        except SolverError:
            raise PackageNotFoundError(
                f"no package matches {text} in {self.describe_sources()}"
            ) from None
        except GatewayError as exc:
            raise ServiceUnavailableError(
                f"cannot read the channels for {text}: {_first_line(exc)}"
            ) from None
        name = package_name(spec)
        record = next(r for r in records if r.name.normalized == name)
        key = _records_key(records)
        prefix, installed = await self._installing.run(
            key, lambda: self._install(records, key, text)
        )
        environment = Environment(
            name=name,
            version=str(record.version),
            build=str(record.build),
            prefix=prefix,
            key=key,
            activation_env=await self.activations.of_cached_prefix(prefix),
            source="channel",
        )
        return Resolution(environment, "installed" if installed else "solved")

    # --- installation ---------------------------------------------------------------------

    async def _install(self, records: list[Any], key: str, text: str) -> tuple[Path, bool]:
        """The prefix of ``records`` and whether this call installed it (False: it was there)."""
        import rattler

        final = self.envs_dir / key
        if final.is_dir():
            return final, False
        temp = self.envs_dir / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        try:
            with tracer.start_as_current_span("install-environment"):
                await rattler.install(
                    records,
                    temp,
                    cache_dir=self.packages_dir,
                    show_progress=False,
                    alternative_target_prefix=final,
                )
            try:
                temp.rename(final)
            except OSError:
                if not final.is_dir():
                    raise
                # Another process installed the same records first: use theirs.
                await anyio.to_thread.run_sync(remove_tree, temp)
                return final, False
        except Exception as exc:
            await anyio.to_thread.run_sync(remove_tree, temp)
            raise ServiceUnavailableError(f"installing {text} failed: {_first_line(exc)}") from None
        self.stats.installs += 1
        elapsed = time.perf_counter() - started
        self.metrics.install_duration.observe(elapsed)
        log.info("installed %s into %s in %.3fs", text, final, elapsed)
        await self.activations.of_cached_prefix(final)
        await self.evict(keep=final)
        return final, True

    # --- use and eviction -----------------------------------------------------------------

    def lease(self, environment: Environment) -> contextlib.AbstractContextManager[None]:
        """Mark ``environment`` in use (eviction skips it) and record the use for LRU."""
        return self.cache.lease(environment.prefix, touch=environment.source == "channel")

    async def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least-recently-used environments until the count and size bounds hold.

        Environments in use (and ``keep``) are never removed. Returns what was removed.
        """
        removed = await self.cache.evict(keep)
        if removed:
            self.stats.evictions += len(removed)
            self._solved = {
                text: solved
                for text, solved in self._solved.items()
                if solved.environment.prefix not in removed
            }
        return removed


def _records_key(records: Sequence[Any]) -> str:
    identity = sorted(f"{record.url}#{bytes(record.sha256 or b'').hex()}" for record in records)
    return hashlib.sha256("\n".join(identity).encode()).hexdigest()[:24]


def _first_line(exc: BaseException) -> str:
    return first_line(str(exc)) or type(exc).__name__
