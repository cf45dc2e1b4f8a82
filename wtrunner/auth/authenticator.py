"""From a bearer token to an :class:`Identity`: the token file, OIDC JWTs, Pub/Sub push tokens.

A token is looked up in the token file first (a hash and constant-time comparisons: cheap);
one shaped like a JWT is then checked against the OIDC issuers, and its caller must be one
``WTRUNNER_OIDC_CALLERS`` names. A Pub/Sub push token is a Google-signed JWT for
``WTRUNNER_PUBSUB_PUSH_AUDIENCE`` whose verified ``email`` is one of
``WTRUNNER_PUBSUB_PUSH_SERVICE_ACCOUNTS``. PyJWT is imported only when a JWT can be accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from ..errors import AuthenticationError, PermissionDeniedError
from ..scopes import Scope
from ..settings import Settings
from .identity import Identity
from .tokens import TokenFile

if TYPE_CHECKING:
    from .oidc import IssuerKeys, TokenVerifier

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 255  # the run store's client column
ANY_CALLER = "*"


class Authenticator:
    """Turns bearer tokens into identities for one server's settings.

    ``session`` fetches the issuers' keys; it is needed only when OIDC issuers or Pub/Sub push
    verification are configured.
    """

    def __init__(self, settings: Settings, session: aiohttp.ClientSession | None = None) -> None:
        self.enabled = settings.auth_enabled
        self.tokens = TokenFile(settings.auth_tokens_file) if settings.auth_tokens_file else None
        self._callers = settings.oidc_caller_scopes
        self._push_accounts = frozenset(
            account.lower() for account in settings.pubsub_push_service_accounts
        )
        self.oidc: TokenVerifier | None = None
        self.push: TokenVerifier | None = None
        if settings.oidc_issuers or settings.pubsub_push_verified:
            if session is None:
                raise ValueError("verifying JWTs needs an HTTP session to fetch the issuers' keys")
            from .oidc import IssuerKeys, TokenVerifier

            keys: dict[str, IssuerKeys] = {}

            def keys_of(issuers: Iterable[str]) -> dict[str, IssuerKeys]:
                for issuer in issuers:
                    keys.setdefault(issuer, IssuerKeys(issuer, session))
                return {issuer: keys[issuer] for issuer in issuers}

            if settings.oidc_issuers:
                audiences = settings.oidc_audiences
                self.oidc = TokenVerifier(audiences, keys_of(audiences))
            if settings.pubsub_push_verified:
                push_audiences = {
                    settings.pubsub_push_issuer: (settings.pubsub_push_audience.strip(),)
                }
                self.push = TokenVerifier(push_audiences, keys_of(push_audiences))

    @property
    def verifies_push(self) -> bool:
        """Whether push requests must carry a verified Google-signed token."""
        return self.push is not None

    def load(self) -> None:
        """Read the token file (start-up): SettingsError when it cannot be used."""
        if self.tokens is not None:
            self.tokens.load()

    async def identify(self, token: str) -> Identity:
        """The caller ``token`` proves to be: AuthenticationError (401) when it proves
        nothing, PermissionDeniedError (403) for a verified OIDC caller not let in."""
        if self.tokens is not None:
            entry = self.tokens.lookup(token)
            if entry is not None:
                return Identity(entry.name, entry.scopes)
        if self.oidc is not None and self.oidc.looks_like_a_jwt(token):
            claims = await self._verify(self.oidc, token)
            return self._oidc_identity(claims)
        raise AuthenticationError("the bearer token is not valid", invalid_token=True)

    async def identify_push(self, token: str) -> Identity:
        """The service account a Pub/Sub push token proves to be (401 / 403 otherwise)."""
        assert self.push is not None, "push verification is not configured"
        if not self.push.looks_like_a_jwt(token):
            raise AuthenticationError(
                "a Pub/Sub push request carries a Google-signed token", invalid_token=True
            )
        claims = await self._verify(self.push, token)
        email = _verified_email(claims)
        if email is None:
            raise AuthenticationError("the push token has no verified email", invalid_token=True)
        if email.lower() not in self._push_accounts:
            raise PermissionDeniedError(
                f"the service account {email} may not push here "
                "(WTRUNNER_PUBSUB_PUSH_SERVICE_ACCOUNTS)",
                scope=Scope.RUN.value,
            )
        return Identity(_bounded(email), frozenset({Scope.RUN}))

    async def _verify(self, verifier: TokenVerifier, token: str) -> dict[str, Any]:
        from .oidc import InvalidToken

        try:
            return await verifier.verify(token)
        except InvalidToken as exc:
            raise AuthenticationError(
                f"the bearer token is not accepted: {exc}", invalid_token=True
            ) from None

    def _oidc_identity(self, claims: Mapping[str, Any]) -> Identity:
        email = _verified_email(claims)
        subject = claims.get("sub")
        names = [name for name in (email, subject) if isinstance(name, str) and name]
        if not names:
            raise AuthenticationError(
                "the token names no caller (no verified email, no sub)", invalid_token=True
            )
        name = _bounded(names[0])
        matched = [self._callers[name] for name in names if name in self._callers]
        if not matched and ANY_CALLER in self._callers:
            matched = [self._callers[ANY_CALLER]]
        if not matched:
            raise PermissionDeniedError(f"{name} is not a caller of this server")
        return Identity(name, frozenset().union(*matched))


def _verified_email(claims: Mapping[str, Any]) -> str | None:
    """The ``email`` claim when the issuer says it verified it; an unverified one may be
    anybody's address and never names a caller."""
    email = claims.get("email")
    verified = claims.get("email_verified")
    if isinstance(email, str) and email and (verified is True or verified == "true"):
        return email
    return None


def _bounded(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise AuthenticationError("the caller's name is not usable", invalid_token=True)
    return name
