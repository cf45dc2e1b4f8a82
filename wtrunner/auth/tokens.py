"""The token file (``WTRUNNER_AUTH_TOKENS_FILE``): one client a line, its token only as a hash.

A line is ``name:sha256-hex`` or ``name:sha256-hex:scope,scope`` (scopes ``run``, ``read``,
``admin``; none named: ``run,read``); blank lines and ``#`` comments are skipped. One name may
have several lines (an old and a new token while a client switches). The file is read again
when it changes (one ``stat`` per authenticated request); a file that no longer reads is
logged and the tokens read before stay in use. A presented token is hashed and compared with
every line in constant time. Messages name line numbers, never a line's text: a token pasted
by mistake where its hash belongs is not repeated anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..scopes import DEFAULT_SCOPES, Scope, parse_scopes
from ..settings import SettingsError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "wtr_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_FORMAT = "name:sha256-hex or name:sha256-hex:scope,scope"


class TokenFileError(ValueError):
    """A token file that cannot be used; the message names the line (never its text)."""


@dataclass(frozen=True)
class TokenEntry:
    """One line of the token file: the client's name, the token's SHA-256, the scopes."""

    name: str
    digest: bytes
    scopes: frozenset[Scope]


def token_digest(token: str) -> bytes:
    """The SHA-256 of ``token`` (what the token file holds, in hex)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe, prefixed ``wtr_`` so scanners spot it)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_line(name: str, token: str, scopes: Iterable[Scope] | None = None) -> str:
    """The token file line of ``token`` for the client ``name`` (scopes as given, or none
    written: ``run,read``)."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot name a client: letters, digits and . _ @ + - (at most 255)"
        )
    line = f"{name}:{token_digest(token).hex()}"
    if scopes is not None:
        chosen = {Scope(scope) for scope in scopes}
        line += ":" + ",".join(scope.value for scope in Scope if scope in chosen)
    return line


def parse_token_file(text: str) -> list[TokenEntry]:
    """The entries of a token file's ``text``; TokenFileError names the first bad line."""
    entries: list[TokenEntry] = []
    seen: dict[bytes, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = _parse_line(line, number)
        if entry.digest in seen:
            raise TokenFileError(f"line {number}: the same token as line {seen[entry.digest]}")
        seen[entry.digest] = number
        entries.append(entry)
    return entries


def _parse_line(line: str, number: int) -> TokenEntry:
    parts = line.split(":")
    if len(parts) not in (2, 3):
        raise TokenFileError(f"line {number}: not {_FORMAT}")
    name, hex_digest = parts[0].strip(), parts[1].strip()
    if not _NAME.fullmatch(name):
        raise TokenFileError(
            f"line {number}: the name must be letters, digits and . _ @ + - (at most 255)"
        )
    if not _HEX_DIGEST.fullmatch(hex_digest):
        raise TokenFileError(
            f"line {number}: the second field must be the token's SHA-256 in hex (64 digits), "
            "never the token itself"
        )
    scopes = DEFAULT_SCOPES
    if len(parts) == 3:
        try:
            scopes = parse_scopes(parts[2].split(","))
        except ValueError as exc:
            raise TokenFileError(f"line {number}: {exc}") from None
    return TokenEntry(name, bytes.fromhex(hex_digest), scopes)


def _signature(stat: os.stat_result) -> tuple[int, int, int, int]:
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev)


class TokenFile:
    """The token file at ``path``, read at :meth:`load` and again whenever it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: list[TokenEntry] = []
        self._signature: tuple[int, int, int, int] | None = None

    def load(self) -> None:
        """Read the file (start-up): SettingsError naming the variable and the line if it
        cannot be used."""
        where = f"WTRUNNER_AUTH_TOKENS_FILE ({self.path})"
        try:
            signature = _signature(self.path.stat())
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{where} cannot be read: {_reason(exc)}") from None
        try:
            self._entries = parse_token_file(text)
        except TokenFileError as exc:
            raise SettingsError(f"{where} {exc}") from None
        self._signature = signature
        if not self._entries:
            log.warning("%s holds no token: no client can authenticate with one", where)

    def lookup(self, token: str) -> TokenEntry | None:
        """The entry of ``token``, or None. Every entry is compared (constant time each), so
        the time taken does not tell which line, if any, came close."""
        self._reload_if_changed()
        presented = token_digest(token)
        found = None
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, presented):
                found = entry
        return found

    def _reload_if_changed(self) -> None:
        try:
            signature = _signature(self.path.stat())
        except OSError as exc:
            if self._signature is not None:
                log.error("the token file %s cannot be read (%s); the tokens read before stay "
                          "in use", self.path, _reason(exc))  # fmt: skip
                self._signature = None
            return
        if signature == self._signature:
            return
        self._signature = signature  # a bad file is reported once, not at every request
        try:
            entries = parse_token_file(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, TokenFileError) as exc:
            log.error("the token file %s was not reloaded: %s; the tokens read before stay in "
                      "use", self.path, _reason(exc))  # fmt: skip
            return
        self._entries = entries
        log.info("reloaded the token file %s: %d tokens", self.path, len(entries))


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    return str(exc)
