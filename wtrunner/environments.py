"""From a MatchSpec to a runnable workflow prefix (design §4), with py-rattler.

Two sources, in order: installed prefixes (``WTRUNNER_PREFIXES``: used only when a record in the
prefix's ``conda-meta`` matches the whole MatchSpec) and channels (``WTRUNNER_CHANNELS``: solved
with ``rattler.solve`` and installed with ``rattler.install`` into ``<cache>/envs/<hash of the
solved records>``). Installs are single-flight, go to a temporary directory that is renamed into
place (a failed install leaves nothing behind), share one package cache, and are bounded by count
and size with least-recently-used eviction that never touches an environment in use.

Each environment carries its activation variables: py-rattler writes the activation script, a
shell runs it once, and the resulting variables are stored with the prefix, so workflows start
with that environment directly, never through a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from .errors import (
    PackageNotFoundError,
    RequestValidationError,
    ServiceUnavailableError,
    UpstreamError,
)
from .metrics import Metrics
from .settings import Settings
from .singleflight import SingleFlight
from .tracing import tracer

log = logging.getLogger(__name__)

BASE_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
METADATA_FILE = "conda-meta/wtrunner-environment.json"
# Variables every shell sets for itself; they describe the capture, not the environment.
_SHELL_NOISE = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
_STALE_TEMP_SECONDS = 3600


def parse_matchspec(
    requested: str | None, override: str = "", loc: Sequence[str | int] = ()
) -> Any:
    """The ``rattler.MatchSpec`` to run: ``override`` when set, else ``requested``.

    A missing or malformed spec is the client's mistake: a 422 naming ``loc``.
    """
    from rattler import MatchSpec

    text = override or (requested or "").strip()
    loc = list(loc) or ["query", "matchspec"]
    if not text:
        raise RequestValidationError.single(loc, "Field required", None, type="missing")
    try:
        spec = MatchSpec(text)
    except Exception as exc:  # rattler raises InvalidMatchSpecError with the reason
        raise RequestValidationError.single(
            loc, f"not a valid MatchSpec: {exc}", text, type="matchspec"
        ) from None
    if spec.name is None or spec.name.as_package_name() is None:
        raise RequestValidationError.single(
            loc, "a MatchSpec must name one package", text, type="matchspec"
        )
    return spec


def package_name(spec: Any) -> str:
    """The package name a parsed MatchSpec asks for (the workflow's executable name)."""
    return str(spec.name.as_package_name().normalized)


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


@dataclass
class _Cached:
    environment: Environment
    expires: float


def channel_url(entry: str) -> str:
    """A channel URL for a configured entry: URLs as they are, local paths as ``file://``."""
    if "://" in entry:
        return entry
    if entry.startswith(("/", ".", "~")):
        return Path(entry).expanduser().resolve().as_uri()
    return entry  # a channel name such as "conda-forge"


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
        self._cache: dict[str, _Cached] = {}
        self._resolving = SingleFlight()
        self._installing = SingleFlight()
        self._prefix_activation: dict[Path, dict[str, str]] = {}
        self._in_use: Counter[Path] = Counter()
        self._evicting = asyncio.Lock()
        self._gateway: Any = None

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
        self.envs_dir.mkdir(parents=True, exist_ok=True)
        self.packages_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for entry in self.envs_dir.iterdir():
            stale_temp = entry.name.startswith(".tmp-") and (
                now - entry.stat().st_mtime > _STALE_TEMP_SECONDS
            )
            if entry.name.startswith(".trash-") or stale_temp:
                await anyio.to_thread.run_sync(_remove, entry)

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
            cached = self._cache.get(text)
            if (
                cached
                and cached.expires > time.monotonic()
                and cached.environment.executable.exists()
            ):
                self.stats.hits += 1
                environment, result = cached.environment, "hit"
            else:
                environment, result = await self._resolving.run(
                    text, lambda: self._resolve_uncached(spec, text)
                )
            span.set_attribute("wtrunner.resolution", result)
            span.set_attribute("wtrunner.environment", environment.label)
            self.metrics.resolutions.labels(result).inc()
            return environment

    async def _resolve_uncached(self, spec: Any, text: str) -> tuple[Environment, str]:
        """The environment and how it was found: ``prefix``, ``solved`` or ``installed``."""
        environment = await self._from_prefixes(spec)
        result = "prefix"
        if environment is None:
            installs = self.stats.installs
            environment = await self._from_channels(spec)
            result = "installed" if self.stats.installs > installs else "solved"
        if not environment.executable.exists():
            raise PackageNotFoundError(
                f"{environment.label} matches {text} but has no executable bin/{environment.name}"
            )
        ttl = self.settings.solve_cache_seconds
        self._cache[text] = _Cached(environment, time.monotonic() + ttl)
        return environment, result

    async def _from_prefixes(self, spec: Any) -> Environment | None:
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
                activation = self._prefix_activation.get(prefix)
                if activation is None:
                    activation = await capture_activation(prefix)
                    self._prefix_activation[prefix] = activation
                key = "prefix-" + hashlib.sha256(str(prefix).encode()).hexdigest()[:16]
                return Environment(
                    name=name,
                    version=str(record.version),
                    build=str(record.build),
                    prefix=prefix,
                    key=key,
                    activation_env=activation,
                    source="prefix",
                )
        return None

    async def _from_channels(self, spec: Any) -> Environment:
        import rattler
        from rattler.exceptions import GatewayError, SolverError

        text = str(spec)
        if not self.channels:
            raise PackageNotFoundError(f"no package matches {text} in {self.describe_sources()}")
        if self._gateway is None:  # py-rattler is loaded on first use: an idle server stays small
            self._gateway = rattler.Gateway(cache_dir=self.settings.cache_dir / "repodata")
        for channel in self.channels:
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
        prefix = await self._installing.run(key, lambda: self._install(records, key, text))
        return Environment(
            name=name,
            version=str(record.version),
            build=str(record.build),
            prefix=prefix,
            key=key,
            activation_env=await self._activation_of(prefix),
            source="channel",
        )

    # --- installation ---------------------------------------------------------------------

    async def _install(self, records: list[Any], key: str, text: str) -> Path:
        import rattler

        final = self.envs_dir / key
        if final.is_dir():
            return final
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
                await anyio.to_thread.run_sync(_remove, temp)
                return final
        except Exception as exc:
            await anyio.to_thread.run_sync(_remove, temp)
            raise ServiceUnavailableError(f"installing {text} failed: {_first_line(exc)}") from None
        self.stats.installs += 1
        elapsed = time.perf_counter() - started
        self.metrics.install_duration.observe(elapsed)
        log.info("installed %s into %s in %.3fs", text, final, elapsed)
        await self._activation_of(final)
        await self.evict(keep=final)
        return final

    async def _activation_of(self, prefix: Path) -> dict[str, str]:
        """The activation variables stored with a cached prefix (captured on first use)."""
        metadata = _read_metadata(prefix)
        if "activation_env" in metadata:
            activation: dict[str, str] = metadata["activation_env"]
            return activation
        activation = await capture_activation(prefix)
        size = await anyio.to_thread.run_sync(_tree_size, prefix)
        _write_metadata(prefix, {"activation_env": activation, "size_bytes": size})
        return activation

    # --- use and eviction -----------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, environment: Environment) -> Iterator[None]:
        """Mark ``environment`` in use (eviction skips it) and record the use for LRU."""
        self._in_use[environment.prefix] += 1
        if environment.source == "channel":
            with contextlib.suppress(OSError):
                os.utime(environment.prefix / METADATA_FILE)
        try:
            yield
        finally:
            self._in_use[environment.prefix] -= 1
            if not self._in_use[environment.prefix]:
                del self._in_use[environment.prefix]

    async def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least-recently-used environments until the count and size bounds hold.

        Environments in use (and ``keep``) are never removed. Returns what was removed.
        """
        async with self._evicting:
            entries = [
                (path, *_last_use_and_size(path))
                for path in self.envs_dir.iterdir()
                if path.is_dir() and not path.name.startswith(".")
            ]
            entries.sort(key=lambda entry: entry[1])  # oldest use first
            count = len(entries)
            total = sum(size for _, _, size in entries)
            removed = []
            for path, _, size in entries:
                within_bounds = (
                    count <= self.settings.env_cache_max
                    and total <= self.settings.env_cache_max_bytes
                )
                if within_bounds:
                    break
                if path == keep or self._in_use[path]:
                    continue
                trash = self.envs_dir / f".trash-{path.name}-{uuid.uuid4().hex[:8]}"
                path.rename(trash)
                await anyio.to_thread.run_sync(_remove, trash)
                count -= 1
                total -= size
                removed.append(path)
                self.stats.evictions += 1
                log.info("evicted environment %s (%d bytes)", path, size)
            if removed:
                self._cache = {
                    text: cached
                    for text, cached in self._cache.items()
                    if cached.environment.prefix not in removed
                }
            return removed


async def capture_activation(prefix: Path) -> dict[str, str]:
    """Run py-rattler's activation script for ``prefix`` in bash; return the variables it sets."""
    from rattler.shell import ActivationVariables, PathModificationBehavior, Shell, activate

    variables = ActivationVariables(None, list(BASE_PATH), PathModificationBehavior.Replace)
    script = activate(prefix, variables, Shell.bash).script
    base = {"PATH": ":".join(BASE_PATH), "HOME": os.environ.get("HOME", "/")}
    process = await asyncio.create_subprocess_exec(
        "bash",
        "--noprofile",
        "--norc",
        "-c",
        f"{script}\nexec env -0",
        env=base,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise UpstreamError(
            f"activating {prefix} failed (exit {process.returncode}): "
            f"{stderr.decode(errors='replace').strip()[-500:]}"
        )
    captured = {}
    for item in stdout.decode(errors="surrogateescape").split("\0"):
        name, sep, value = item.partition("=")
        if sep and name not in _SHELL_NOISE:
            captured[name] = value
    return captured


def _records_key(records: Sequence[Any]) -> str:
    identity = sorted(f"{record.url}#{bytes(record.sha256 or b'').hex()}" for record in records)
    return hashlib.sha256("\n".join(identity).encode()).hexdigest()[:24]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_metadata(prefix: Path) -> dict[str, Any]:
    try:
        data = json.loads((prefix / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_metadata(prefix: Path, metadata: Mapping[str, Any]) -> None:
    path = prefix / METADATA_FILE
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    temp.write_text(json.dumps(metadata))
    temp.replace(path)


def _last_use_and_size(prefix: Path) -> tuple[float, int]:
    metadata_path = prefix / METADATA_FILE
    try:
        last_use = metadata_path.stat().st_mtime
    except OSError:
        last_use = prefix.stat().st_mtime
    size = _read_metadata(prefix).get("size_bytes")
    return last_use, size if isinstance(size, int) else _tree_size(prefix)


def _tree_size(root: Path) -> int:
    total = 0
    for directory, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
