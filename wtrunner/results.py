"""Results URLs: checking them, and reading/writing ``result.json`` there with obstore.

A run's result counts only if its ``result.json`` was written during the run: the store's
entity tag is noted before the workflow starts and the file is read only if it changed.
Stores are cached per scheme and bucket (not per URL: every run has its own directory).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .contract import RESULT_FILE
from .errors import RequestValidationError, ServiceUnavailableError
from .handoff import handoff
from .settings import Settings
from .text import first_line

# Kernel and device file systems: never results directories, whatever the roots say.
SYSTEM_TREES = ("/proc", "/sys", "/dev")
# URL schemes obstore can read and write that a workflow process can write to too (not memory://).
SUPPORTED_SCHEMES = frozenset(
    {"file", "gs", "s3", "s3a", "az", "abfs", "abfss", "adl", "azure", "http", "https"}
)


def normalize_results_url(value: str, roots: Sequence[str] = ()) -> str:
    """An absolute path becomes a ``file://`` URI; other supported URLs pass through.

    A relative path, an unsupported scheme, a ``file://`` URL with a host, a path that leads
    into /proc, /sys or /dev, or one that leads outside ``roots`` (when given) is a 422 naming
    ``results_url``. Where a path leads is decided after ``..`` and symbolic links are
    resolved (a link under a root that points elsewhere is outside it).
    """
    text = value.strip()

    def reject(message: str) -> RequestValidationError:
        return RequestValidationError.single(["results_url"], message, value, type="results_url")

    if text.startswith("/"):
        path = text
    elif "://" in text:
        try:
            parts = urlsplit(text)
        except ValueError as exc:  # e.g. an unclosed "[" in the host
            raise reject(f"not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in SUPPORTED_SCHEMES:
            supported = ", ".join(sorted(SUPPORTED_SCHEMES))
            raise reject(f"unsupported URL scheme {scheme!r}; use one of: {supported}")
        if scheme != "file":
            if not parts.netloc:
                raise reject(f"a {scheme}:// URL needs a bucket or host")
            return text
        if parts.netloc not in ("", "localhost"):
            raise reject("a file:// URL must not name a host")
        path = unquote(parts.path)
    else:
        raise reject("must be an absolute path or a URL (file://, gs://, s3://, ...)")
    if "\0" in path or not path.startswith("/"):
        raise reject("must be an absolute path")
    # the path the workflow and the server will use, and where it really leads: the deepest
    # existing ancestor with its symbolic links resolved, then the rest
    normalized = os.path.normpath(path)
    real = os.path.realpath(normalized)
    system = next(
        (tree for tree in SYSTEM_TREES if _within(real, tree) or _within(normalized, tree)), None
    )
    if system is not None:
        raise reject(f"{system} is never a results directory")
    if roots and not any(_within(real, _real_root(root)) for root in roots):
        raise reject(f"must be under one of the results roots: {', '.join(roots)}")
    return Path(normalized).as_uri()


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _real_root(root: str) -> str:
    root_path = unquote(urlsplit(root).path) if root.startswith("file://") else root
    return os.path.realpath(root_path)


def public_url(url: str) -> str:
    """``url`` without query string or credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url


@dataclass(frozen=True)
class ResultMarker:
    """What ``result.json`` looked like before a run (absent: no marker at all)."""

    e_tag: str | None
    last_modified: Any


class InvalidResultError(Exception):
    """``result.json`` exists but is not the ``{"result", "error", "trace"}`` object."""


class ResultsStore:
    """Reads and writes ``result.json`` under results URLs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stores: dict[tuple[str, str], Any] = {}

    def _locate(self, url: str) -> tuple[Any, str]:
        from obstore.exceptions import GenericError
        from obstore.store import LocalStore, MemoryStore, from_url

        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        directory = unquote(parts.path).strip("/")
        key = f"{directory}/{RESULT_FILE}" if directory else RESULT_FILE
        cache_key = (scheme, parts.netloc)
        store = self._stores.get(cache_key)
        if store is None:
            if scheme == "file":
                store = LocalStore("/")
            elif scheme == "memory":
                store = MemoryStore()
            else:
                # e.g. {"bearer_token": ..., "client_options": {"allow_http": true}}
                options = self.settings.store_options(scheme)
                try:
                    store = from_url(f"{scheme}://{parts.netloc}", **options)
                except (ValueError, GenericError) as exc:  # it refuses the bucket or host
                    raise _unusable(url, exc) from None
            self._stores[cache_key] = store
        return store, key

    async def prepare(self, url: str) -> ResultMarker | None:
        """Before a workflow writes under ``url``: create a local results directory (with its
        parents), and note the state of ``result.json`` there (:meth:`marker`).

        Compiled workflows write ``result.json`` with obstore, which fails on a directory that
        does not exist; other stores have no directories to make. A disk that refuses is a 503.
        Local files are handled in one worker thread (creating a directory can wait on a busy
        disk), without the object store's runtime.
        """
        path = _local_result(url)
        if path is None:
            return await self.marker(url)
        return await handoff(self._make_directory, url, os.path.dirname(path))

    def _make_directory(self, url: str, directory: str) -> ResultMarker | None:
        try:
            os.makedirs(directory, exist_ok=True)
            return _file_marker(os.stat(os.path.join(directory, RESULT_FILE)))
        except FileNotFoundError:
            return None
        except (FileExistsError, NotADirectoryError):
            raise RequestValidationError.single(
                ["results_url"],
                "a file is in the way of this results directory",
                url,
                type="results_url",
            ) from None
        except OSError as exc:
            raise ServiceUnavailableError(
                f"cannot create the results directory {public_url(url)}: {exc.strerror or exc}"
            ) from None

    async def marker(self, url: str) -> ResultMarker | None:
        """The state of ``result.json`` now (None when there is none)."""
        import obstore

        store, key = self._locate(url)
        try:
            meta = await obstore.head_async(store, key)
        except FileNotFoundError:
            return None
        except ValueError as exc:  # obstore cannot name an object at this path
            raise _unusable(url, exc) from None
        except Exception as exc:
            raise self._unreachable(url, exc) from None
        return ResultMarker(meta.get("e_tag"), meta.get("last_modified"))

    async def read(self, url: str, before: ResultMarker | None) -> dict[str, Any] | None:
        """``result.json`` if it was written since ``before`` was taken, else None.

        Raises InvalidResultError when it is not a JSON object with the expected keys.
        """
        path = _local_result(url)
        if path is not None:
            try:
                # in a worker thread: even reading may write (the file's access time)
                data = await handoff(_read_if_changed, path, before)
            except OSError as exc:
                raise self._unreachable(url, exc) from None
            return None if data is None else parse_result(data)
        import obstore

        store, key = self._locate(url)
        try:
            response = await obstore.get_async(store, key)
            meta = response.meta
            if before is not None and (meta.get("e_tag"), meta.get("last_modified")) == (
                before.e_tag,
                before.last_modified,
            ):
                return None
            data = bytes(await response.bytes_async())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise _unusable(url, exc) from None
        except Exception as exc:
            raise self._unreachable(url, exc) from None
        return parse_result(data)

    async def write(self, url: str, document: Mapping[str, Any]) -> None:
        """Write ``document`` as ``result.json`` under ``url``."""
        import obstore

        store, key = self._locate(url)
        try:
            await obstore.put_async(store, key, json.dumps(document, default=str).encode())
        except ValueError as exc:
            raise _unusable(url, exc) from None
        except Exception as exc:
            raise self._unreachable(url, exc, "write") from None

    @staticmethod
    def _unreachable(url: str, exc: Exception, verb: str = "read") -> ServiceUnavailableError:
        reason = first_line(str(exc)) or type(exc).__name__
        return ServiceUnavailableError(
            f"cannot {verb} {RESULT_FILE} at {public_url(url)}: {reason}"
        )


def _local_result(url: str) -> str | None:
    """The path of ``result.json`` under a ``file://`` results URL (None for other schemes):
    local files are read directly, without the object store's runtime."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    return os.path.join(unquote(parts.path), RESULT_FILE)


def _read_if_changed(path: str, before: ResultMarker | None) -> bytes | None:
    """A local ``result.json``'s bytes unless it is missing or still what ``before`` saw
    (without the object store's runtime: one hand-off to a thread, on every local run)."""
    try:
        with open(path, "rb") as file:
            if _file_marker(os.fstat(file.fileno())) == before:
                return None
            return file.read()
    except FileNotFoundError:
        return None


def _file_marker(stat: os.stat_result) -> ResultMarker:
    """A local file's version: inode, modification time and size (a rewrite changes one)."""
    return ResultMarker(f"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}", None)


def _unusable(url: str, exc: Exception) -> RequestValidationError:
    """A results URL the object store cannot work with (a 422, before anything runs)."""
    return RequestValidationError.single(
        ["results_url"], f"not a usable results URL: {exc}", url, type="results_url"
    )


def parse_result(data: bytes) -> dict[str, Any]:
    """Check the shape of a ``result.json``: an object with result, error and trace."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise InvalidResultError(f"{RESULT_FILE} is not JSON: {exc}") from None
    if not isinstance(document, dict) or not {"result", "error"} <= document.keys():
        raise InvalidResultError(f'{RESULT_FILE} is not an object with "result" and "error"')
    error = document.get("error")
    trace = document.get("trace")
    return {
        "result": document.get("result"),
        "error": None if error is None else str(error),
        "trace": None if trace is None else str(trace),
    }
