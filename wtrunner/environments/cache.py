"""The environment cache under ``<cache>/envs``: bounded by count and total size,
least recently used first, never evicting an environment a run holds.

Each cached prefix carries a small record, ``conda-meta/wtrunner-environment.json``: its size
(so eviction does not walk every tree) and its activation variables. The record's mtime is the
prefix's last use. Removal renames a prefix to ``.trash-*`` first, so a crash mid-removal leaves
debris that :meth:`EnvironmentCache.clean` finds, never a half-removed environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread

log = logging.getLogger(__name__)

METADATA_FILE = "conda-meta/wtrunner-environment.json"
STALE_TEMP_SECONDS = 3600


class EnvironmentCache:
    """The installed environments in one directory: leases, and LRU eviction by count and size.

    ``max_count`` and ``max_bytes`` bound the directory; :meth:`evict` enforces them and skips
    every prefix under a :meth:`lease`.
    """

    def __init__(self, envs_dir: Path, *, max_count: int, max_bytes: int) -> None:
        self.envs_dir = envs_dir
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._in_use: Counter[Path] = Counter()
        self._evicting = asyncio.Lock()

    async def clean(self) -> None:
        """Create the directory and remove what crashed installs and removals left behind."""
        self.envs_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for entry in self.envs_dir.iterdir():
            stale_temp = entry.name.startswith(".tmp-") and (
                now - entry.stat().st_mtime > STALE_TEMP_SECONDS
            )
            if entry.name.startswith(".trash-") or stale_temp:
                await anyio.to_thread.run_sync(remove_tree, entry)

    @contextlib.contextmanager
    def lease(self, prefix: Path, *, touch: bool) -> Iterator[None]:
        """Mark ``prefix`` in use (eviction skips it); ``touch`` records the use for LRU."""
        self._in_use[prefix] += 1
        if touch:
            with contextlib.suppress(OSError):
                os.utime(prefix / METADATA_FILE)
        try:
            yield
        finally:
            self._in_use[prefix] -= 1
            if not self._in_use[prefix]:
                del self._in_use[prefix]

    async def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least-recently-used environments until the count and size bounds hold.

        Environments under a lease (and ``keep``) are never removed. Returns what was removed.
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
                if count <= self.max_count and total <= self.max_bytes:
                    break
                if path == keep or self._in_use[path]:
                    continue
                trash = self.envs_dir / f".trash-{path.name}-{uuid.uuid4().hex[:8]}"
                path.rename(trash)
                await anyio.to_thread.run_sync(remove_tree, trash)
                count -= 1
                total -= size
                removed.append(path)
                log.info("evicted environment %s (%d bytes)", path, size)
            return removed


def read_metadata(prefix: Path) -> dict[str, Any]:
    """The record stored with a cached prefix (empty when missing or unreadable)."""
    try:
        data = json.loads((prefix / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_metadata(prefix: Path, metadata: Mapping[str, Any]) -> None:
    """Replace the record stored with a cached prefix atomically."""
    path = prefix / METADATA_FILE
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    temp.write_text(json.dumps(metadata))
    temp.replace(path)


def tree_size(root: Path) -> int:
    """The total size in bytes of the files under ``root`` (symlinks counted as links)."""
    total = 0
    for directory, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total


def remove_tree(path: Path) -> None:
    """Remove a directory tree, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)


def _last_use_and_size(prefix: Path) -> tuple[float, int]:
    metadata_path = prefix / METADATA_FILE
    try:
        last_use = metadata_path.stat().st_mtime
    except OSError:
        last_use = prefix.stat().st_mtime
    size = read_metadata(prefix).get("size_bytes")
    return last_use, size if isinstance(size, int) else tree_size(prefix)
