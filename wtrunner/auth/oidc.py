"""OIDC bearer JWTs: the issuers' signing keys and the checks every token passes.

Keys come from the issuer's JWKS, found through its discovery document
(``<issuer>/.well-known/openid-configuration`` → ``jwks_uri``), fetched with aiohttp on the
event loop (nothing blocks it) and kept for an hour. A token signed with a key id not seen yet
fetches the keys again at once (the issuer rotated them), at most once a second per issuer, so
made-up key ids cannot turn the server into a crawler of its issuer. A token is accepted when
its signature verifies with the issuer's key (RSA or EC algorithms only: never a shared
secret, never ``none``), its ``iss`` is a configured issuer, its ``aud`` one of that issuer's
audiences, and ``exp`` / ``nbf`` hold (30 seconds of clock skew allowed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from ..errors import ServiceUnavailableError
from ..settings import GOOGLE_ISSUER, check_issuer_url
from ..singleflight import SingleFlight

log = logging.getLogger(__name__)

# Asymmetric algorithms only: an HMAC "signature" made with a public key must never verify.
ALGORITHM_KEY_TYPES = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
}  # fmt: skip
ALGORITHM_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
LEEWAY_SECONDS = 30
KEYS_MAX_AGE_SECONDS = 3600.0
MIN_REFETCH_SECONDS = 1.0
FETCH_TIMEOUT_SECONDS = 10.0
DISCOVERY_PATH = "/.well-known/openid-configuration"
# Google signs ID tokens with either spelling of its issuer.
ISSUER_ALIASES = {GOOGLE_ISSUER: ("accounts.google.com",)}


class InvalidToken(Exception):
    """A token that is not accepted; the message says why (it never repeats the token)."""


@dataclass(frozen=True)
class _Key:
    jwk: jwt.PyJWK
    declared_algorithm: str | None
    curve: str | None

    def signs_with(self, algorithm: str) -> bool:
        """Whether a signature made with ``algorithm`` can be this key's."""
        return (
            self.jwk.key_type == ALGORITHM_KEY_TYPES[algorithm]
            and self.declared_algorithm in (None, algorithm)
            and ALGORITHM_CURVES.get(algorithm) in (None, self.curve)
        )


class IssuerKeys:
    """The signing keys of one issuer, fetched when needed and kept (see the module)."""

    def __init__(self, issuer: str, session: aiohttp.ClientSession) -> None:
        self.issuer = issuer
        self._session = session
        self._keys: dict[str | None, _Key] | None = None
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._jwks_uri: str | None = None
        self._last_failure: str | None = None
        self._refreshing = SingleFlight()

    async def key(self, kid: str | None) -> _Key:
        """The key ``kid`` names (a token without ``kid``: the issuer's only key).
        InvalidToken when the issuer publishes no such key; ServiceUnavailableError when its
        keys cannot be fetched."""
        now = time.monotonic()
        if self._keys is None:
            if not self._may_fetch(now) and self._last_failure is not None:
                raise ServiceUnavailableError(self._last_failure)  # a moment ago: not again yet
            await self._refresh()
        elif now - self._fetched_at > KEYS_MAX_AGE_SECONDS and self._may_fetch(now):
            try:
                await self._refresh()
            except ServiceUnavailableError as exc:  # the keys known still verify
                log.warning("%s; the keys fetched before stay in use", exc.detail)
        found = self._find(kid)
        if found is None and self._may_fetch(time.monotonic()):
            await self._refresh()  # rotated: a key id not seen yet
            found = self._find(kid)
        if found is None:
            if kid is None:
                raise InvalidToken("the token names no signing key (kid)")
            raise InvalidToken(f"the issuer {self.issuer} publishes no key {kid!r}")
        return found

    def _may_fetch(self, now: float) -> bool:
        return now - self._attempted_at >= MIN_REFETCH_SECONDS

    def _find(self, kid: str | None) -> _Key | None:
        keys = self._keys or {}
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    async def _refresh(self) -> None:
        await self._refreshing.run("keys", self._fetch)

    async def _fetch(self) -> None:
        self._attempted_at = time.monotonic()
        try:
            if self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            document = await self._get_json(self._jwks_uri)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            self._jwks_uri = None  # discovered again next time: it may have moved
            self._last_failure = (
                f"the signing keys of the issuer {self.issuer} could not be fetched: "
                f"{_describe(exc)}"
            )
            raise ServiceUnavailableError(self._last_failure) from None
        keys = _usable_keys(document)
        if not keys:
            self._last_failure = (
                f"the issuer {self.issuer} publishes no usable signing key (RSA or EC)"
            )
            raise ServiceUnavailableError(self._last_failure)
        self._keys = keys
        self._last_failure = None
        self._fetched_at = time.monotonic()
        log.info("fetched %d signing keys of the issuer %s", len(keys), self.issuer)

    async def _discover(self) -> str:
        document = await self._get_json(self.issuer.rstrip("/") + DISCOVERY_PATH)
        if document.get("issuer") != self.issuer:
            named = document.get("issuer")
            raise ValueError(f"its discovery document names another issuer: {named!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("its discovery document has no jwks_uri")
        return check_issuer_url(jwks_uri)

    async def _get_json(self, url: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
        async with self._session.get(url, timeout=timeout) as response:
            if response.status != 200:
                raise ValueError(f"{url} answered {response.status}")
            document = await response.json(content_type=None)
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return document


def _usable_keys(document: Mapping[str, Any]) -> dict[str | None, _Key]:
    keys: dict[str | None, _Key] = {}
    entries = document.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            jwk = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue  # a key this server cannot use (an unknown curve, ...): the others may do
        declared, curve = entry.get("alg"), entry.get("crv")
        keys[jwk.key_id] = _Key(
            jwk,
            declared if isinstance(declared, str) else None,
            curve if isinstance(curve, str) else None,
        )
    return keys


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {FETCH_TIMEOUT_SECONDS:g} s"
    return str(exc) or type(exc).__name__


class TokenVerifier:
    """Checks JWTs of the configured issuers, each for its audiences (see the module)."""

    def __init__(
        self, audiences: Mapping[str, Sequence[str]], keys: Mapping[str, IssuerKeys]
    ) -> None:
        self._audiences = {issuer: tuple(names) for issuer, names in audiences.items()}
        self._keys = keys
        self._issuer_of = {issuer: issuer for issuer in self._audiences}
        for issuer, aliases in ISSUER_ALIASES.items():
            if issuer in self._audiences:
                self._issuer_of.update(dict.fromkeys(aliases, issuer))

    @staticmethod
    def looks_like_a_jwt(token: str) -> bool:
        """Whether ``token`` has the shape of a signed JWT (three base64url parts)."""
        return token.count(".") == 2 and all(token.split("."))

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` once every check passed; InvalidToken says which failed."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidToken("the token is not a JWT") from None
        claimed_issuer = unverified.get("iss")
        issuer = self._issuer_of.get(claimed_issuer) if isinstance(claimed_issuer, str) else None
        if issuer is None:
            raise InvalidToken(f"tokens of the issuer {claimed_issuer!r} are not accepted")
        algorithm = header.get("alg")
        if algorithm not in ALGORITHM_KEY_TYPES:
            raise InvalidToken(f"the signing algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        key = await self._keys[issuer].key(kid if isinstance(kid, str) else None)
        if not key.signs_with(algorithm):
            raise InvalidToken(f"the key {kid!r} does not sign with {algorithm}")
        try:
            return jwt.decode(
                token, key.jwk.key, algorithms=[algorithm], audience=list(self._audiences[issuer]),
                issuer=claimed_issuer, leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is meant for another audience") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token has no {exc.claim!r} claim") from None
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise InvalidToken(f"the token is not valid: {type(exc).__name__}") from None
