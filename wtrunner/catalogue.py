"""The catalogue: which workflow packages this server can run, from its channels and prefixes.

Channels are read with py-rattler's ``Gateway`` (the index only, never the packages): the
package names of each channel and subdir (``noarch`` and this machine's), then every record of
the names that match ``WTRUNNER_CATALOGUE_PACKAGES``. Installed prefixes contribute the
records in their ``conda-meta``. Each channel is read on its own, so one that cannot be
reached is reported with its error while the others are listed.

A listing is reused for ``WTRUNNER_SOLVE_CACHE_SECONDS`` (as solves are), except that a
change to a local channel's index ends it at once. Summaries come from each newest version's
``info/about.json``: read from the archive of a local channel, fetched with HTTP range requests
from a remote ``.conda`` package, or taken from the package cache for an installed prefix; they
are cached by package checksum (a package never changes), and missing when none of these works.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
from pydantic import BaseModel, Field

from .environments.resolver import (
    RepodataStamp,
    current_subdirs,
    local_channel_dir,
    repodata_stamp,
    watched_repodata_files,
)
from .errors import PackageNotFoundError, ServiceUnavailableError
from .settings import Settings
from .singleflight import SingleFlight
from .text import first_line

log = logging.getLogger(__name__)

# How long one channel may take to answer before it is reported as unreachable.
CHANNEL_TIMEOUT_SECONDS = 30.0
SUMMARY_TIMEOUT_SECONDS = 10.0
# Summaries kept in memory (by package checksum) before the oldest are forgotten.
MAX_SUMMARIES = 4096


class WorkflowVersion(BaseModel):
    """One package of a workflow: a version, one of its builds, and where it comes from."""

    version: str
    build: str
    build_number: int
    timestamp: datetime | None = Field(None, description="when the package was built")
    channel: str | None = Field(
        None, description="the channel URL (for an installed prefix: where it was installed from)"
    )
    subdir: str
    source: Literal["channel", "prefix"]
    prefix: str | None = Field(None, description="the installed prefix that holds it")


class ChannelStatus(BaseModel):
    """A source the catalogue read: a channel URL or an installed prefix, and its error if it
    could not be read."""

    url: str
    source: Literal["channel", "prefix"] = "channel"
    error: str | None = None


class WorkflowEntry(BaseModel):
    """A workflow package in the catalogue."""

    name: str
    versions: list[str] = Field(description="distinct versions, newest first")
    summary: str | None = Field(None, description="the newest version's about.json summary")
    channel: str | None = Field(None, description="where the newest version comes from")


class WorkflowList(BaseModel):
    """The workflow packages this server can run, by name, and the state of each source."""

    workflows: list[WorkflowEntry]
    channels: list[ChannelStatus]


class WorkflowDetail(BaseModel):
    """One workflow package: every version and build, newest first."""

    name: str
    summary: str | None = None
    versions: list[WorkflowVersion]
    channels: list[ChannelStatus]


@dataclass(frozen=True)
class _Record:
    """What the catalogue keeps of one package record."""

    name: str
    version: Any  # rattler.Version: compared with conda's version ordering
    entry: WorkflowVersion
    url: str
    sha256: str

    def order(self) -> tuple[Any, int, float]:
        stamp = self.entry.timestamp.timestamp() if self.entry.timestamp else 0.0
        return (self.version, self.entry.build_number, stamp)


@dataclass(frozen=True)
class _Snapshot:
    records: dict[str, list[_Record]]  # name -> records, newest first
    sources: list[ChannelStatus]
    summaries: dict[str, str | None]  # name -> summary of the newest record
    expires: float
    stamp: RepodataStamp


def name_matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether a package name is one of the catalogue's (``fnmatch`` patterns)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


class Catalogue:
    """Lists the workflow packages of the configured channels and installed prefixes."""

    def __init__(
        self, settings: Settings, channels: Sequence[str], prefixes: Sequence[Path]
    ) -> None:
        self.settings = settings
        self.channels = list(channels)
        self.prefixes = list(prefixes)
        self.patterns = settings.catalogue_packages
        self._snapshot: _Snapshot | None = None
        self._refreshing = SingleFlight()
        self._gateway: Any = None
        self._client: Any = None
        self._summaries: dict[str, str | None] = {}
        self._watched: list[Path] | None = None

    async def list_workflows(self) -> WorkflowList:
        """Every workflow package, newest version first, with the state of each source."""
        snapshot = await self._current()
        entries = []
        for name in sorted(snapshot.records):
            records = snapshot.records[name]
            entries.append(
                WorkflowEntry(
                    name=name,
                    versions=list(dict.fromkeys(r.entry.version for r in records)),
                    summary=snapshot.summaries.get(name),
                    channel=records[0].entry.channel or records[0].entry.prefix,
                )
            )
        return WorkflowList(workflows=entries, channels=snapshot.sources)

    async def get_workflow(self, name: str) -> WorkflowDetail:
        """One workflow package: 404 when no source has it, 503 when it may be in a source
        that could not be read."""
        snapshot = await self._current()
        records = snapshot.records.get(name.lower())
        if not records:
            failed = [s for s in snapshot.sources if s.error]
            if failed:
                raise ServiceUnavailableError(
                    f"{name} is not in the sources that could be read; "
                    + "; ".join(f"{s.url}: {s.error}" for s in failed)
                )
            raise PackageNotFoundError(f"no workflow package {name} in {self._describe()}")
        return WorkflowDetail(
            name=records[0].name,
            summary=snapshot.summaries.get(records[0].name),
            versions=[r.entry for r in records],
            channels=snapshot.sources,
        )

    def _describe(self) -> str:
        parts = [*self.channels, *(str(p) for p in self.prefixes)]
        return ", ".join(parts) or "no sources"

    async def _current(self) -> _Snapshot:
        stamp = repodata_stamp(self._watched_files())
        snapshot = self._snapshot
        if snapshot and snapshot.expires > time.monotonic() and snapshot.stamp == stamp:
            return snapshot
        return await self._refreshing.run(stamp, lambda: self._refresh(stamp))

    def _watched_files(self) -> list[Path]:
        if self._watched is None:
            self._watched = watched_repodata_files(self.channels)
        return self._watched

    async def _refresh(self, stamp: RepodataStamp) -> _Snapshot:
        by_source = await asyncio.gather(
            *(self._read_channel(url) for url in self.channels),
            *(self._read_prefix(prefix) for prefix in self.prefixes),
        )
        sources = [status for status, _ in by_source]
        records: dict[str, list[_Record]] = {}
        for _, found in by_source:
            for record in found:
                records.setdefault(record.name, []).append(record)
        for found in records.values():
            found.sort(key=_Record.order, reverse=True)
        newest = [found[0] for found in records.values()]
        summaries = dict(
            zip(
                (record.name for record in newest),
                await asyncio.gather(*(self._summary(record) for record in newest)),
                strict=True,
            )
        )
        snapshot = _Snapshot(
            records=records,
            sources=sources,
            summaries=summaries,
            expires=time.monotonic() + self.settings.solve_cache_seconds,
            stamp=stamp,
        )
        self._snapshot = snapshot
        return snapshot

    # --- channels ---------------------------------------------------------------------------

    async def _read_channel(self, url: str) -> tuple[ChannelStatus, list[_Record]]:
        import rattler
        from rattler.exceptions import GatewayError

        if self._gateway is None:  # py-rattler is loaded on first use
            self._gateway = rattler.Gateway(cache_dir=self.settings.cache_dir / "repodata")
        channel = rattler.Channel(url)
        self._gateway.clear_repodata_cache(channel)  # the gateway keeps repodata in memory
        subdirs = current_subdirs()
        try:
            with anyio.fail_after(CHANNEL_TIMEOUT_SECONDS):
                names = await self._gateway.names([channel], subdirs)
                wanted = sorted(
                    {n.normalized for n in names if name_matches(n.normalized, self.patterns)}
                )
                if not wanted:
                    return ChannelStatus(url=url), []
                found = await self._gateway.query([channel], subdirs, wanted, recursive=False)
        except (GatewayError, OSError) as exc:
            log.warning("catalogue: cannot read channel %s: %s", url, _first_line(exc))
            return ChannelStatus(url=url, error=_first_line(exc)), []
        except TimeoutError:
            error = f"no answer within {CHANNEL_TIMEOUT_SECONDS:g} s"
            log.warning("catalogue: cannot read channel %s: %s", url, error)
            return ChannelStatus(url=url, error=error), []
        records = [_from_repodata(record, url) for per_channel in found for record in per_channel]
        return ChannelStatus(url=url), records

    # --- installed prefixes -------------------------------------------------------------------

    async def _read_prefix(self, prefix: Path) -> tuple[ChannelStatus, list[_Record]]:
        try:
            records = await anyio.to_thread.run_sync(self._prefix_records, prefix)
        except OSError as exc:
            return ChannelStatus(url=str(prefix), source="prefix", error=_first_line(exc)), []
        return ChannelStatus(url=str(prefix), source="prefix"), records

    def _prefix_records(self, prefix: Path) -> list[_Record]:
        from rattler import PrefixRecord

        records = []
        meta = prefix / "conda-meta"
        if not meta.is_dir():
            raise FileNotFoundError(f"{meta} is not a directory")
        for path in sorted(meta.glob("*.json")):
            try:
                record = PrefixRecord.from_path(path)
            except Exception:  # not ours to judge: the resolver skips it too
                log.warning("catalogue: cannot read %s; skipping it", path)
                continue
            name = record.name.normalized
            if not name_matches(name, self.patterns):
                continue
            entry = WorkflowVersion(
                version=str(record.version),
                build=str(record.build),
                build_number=int(record.build_number),
                timestamp=record.timestamp,
                channel=str(record.channel) if record.channel else None,
                subdir=str(record.subdir),
                source="prefix",
                prefix=str(prefix),
            )
            about_dir = record.extracted_package_dir
            records.append(
                _Record(
                    name=name,
                    version=record.version,
                    entry=entry,
                    url=str(Path(about_dir) / "info" / "about.json") if about_dir else "",
                    sha256=_hex(record.sha256),
                )
            )
        return records

    # --- summaries ----------------------------------------------------------------------------

    async def _summary(self, record: _Record) -> str | None:
        key = record.sha256 or record.url
        if key in self._summaries:
            return self._summaries[key]
        try:
            with anyio.fail_after(SUMMARY_TIMEOUT_SECONDS):
                summary = await self._read_summary(record)
        except Exception as exc:  # a summary is a nicety: the listing goes on without it
            log.info("catalogue: no summary for %s: %s", record.url, _first_line(exc))
            summary = None
        if len(self._summaries) >= MAX_SUMMARIES:
            self._summaries.pop(next(iter(self._summaries)))
        self._summaries[key] = summary
        return summary

    async def _read_summary(self, record: _Record) -> str | None:
        if record.entry.source == "prefix":
            if not record.url:
                return None
            return await anyio.to_thread.run_sync(_summary_from_about_file, Path(record.url))
        archive = local_channel_dir(record.url)
        if archive is not None:
            return await anyio.to_thread.run_sync(_summary_from_archive, archive)
        if not record.url.endswith(".conda"):
            return None  # a remote .tar.bz2 would have to be downloaded whole
        import rattler
        from rattler.package import AboutJson

        if self._client is None:
            self._client = rattler.Client()
        about = await AboutJson.from_remote_url(self._client, record.url)
        return _clean(about.summary) if about is not None else None


def _from_repodata(record: Any, channel: str) -> _Record:
    entry = WorkflowVersion(
        version=str(record.version),
        build=str(record.build),
        build_number=int(record.build_number),
        timestamp=record.timestamp,
        channel=channel,
        subdir=str(record.subdir),
        source="channel",
    )
    return _Record(
        name=record.name.normalized,
        version=record.version,
        entry=entry,
        url=str(record.url),
        sha256=_hex(record.sha256),
    )


def _summary_from_archive(path: Path) -> str | None:
    """The summary in a local package archive's ``info/about.json`` (.conda: its info part
    only; .tar.bz2: read through to that member)."""
    if path.name.endswith(".conda"):
        from conda_package_handling import api

        with tempfile.TemporaryDirectory(prefix="wtrunner-about-") as directory:
            api.extract(str(path), dest_dir=directory, components="info")
            return _summary_from_about_file(Path(directory) / "info" / "about.json")
    with tarfile.open(path, "r:bz2") as archive:
        try:
            member = archive.extractfile("info/about.json")
        except KeyError:
            return None
        about = json.load(member) if member is not None else None
    return _clean(about.get("summary")) if isinstance(about, dict) else None


def _summary_from_about_file(path: Path) -> str | None:
    try:
        about = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return _clean(about.get("summary")) if isinstance(about, dict) else None


def _clean(summary: Any) -> str | None:
    if not isinstance(summary, str):
        return None
    return summary.strip() or None


def _hex(digest: Any) -> str:
    return bytes(digest).hex() if digest else ""


def _first_line(exc: BaseException) -> str:
    """The error's first line, and its root cause when py-rattler names one ("Caused by")."""
    text = str(exc)
    causes = [line.split(":", 1)[1].strip() for line in text.splitlines() if "Caused by:" in line]
    head = first_line(text) or type(exc).__name__
    return f"{head} ({causes[-1]})" if causes and causes[-1] else head
