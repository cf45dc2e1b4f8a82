"""An OIDC issuer on 127.0.0.1 with keys the test makes, and helpers for bearer tokens.

The issuer serves a real discovery document and JWKS over HTTP (aiohttp), so the server under
test fetches, caches and refetches keys exactly as it would from Google or another issuer; the
test signs tokens with the private halves (PyJWT, cryptography) and can rotate the keys.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wtrunner.auth.tokens import new_token, token_line
from wtrunner.scopes import Scope

AUDIENCE = "https://wtrunner.test"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class LocalIssuer:
    """An OIDC issuer: ``/.well-known/openid-configuration`` and ``/jwks`` on its own server.

    ``url`` is set once the server runs (see the ``local_issuer`` fixture). ``published`` are
    the key ids the JWKS lists; ``jwks_fetches`` counts how often it was fetched.
    """

    def __init__(self) -> None:
        self.url = ""
        self.private: dict[str, tuple[PrivateKey, str]] = {}
        self.published: list[str] = []
        self.jwks_fetches = 0
        self.app = web.Application()
        self.app.router.add_get("/.well-known/openid-configuration", self._discovery)
        self.app.router.add_get("/jwks", self._jwks)

    def add_key(self, algorithm: str = "RS256", publish: bool = True) -> str:
        """Make a key pair for ``algorithm`` (RS256 or ES256); its kid."""
        private: PrivateKey
        if algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"key-{uuid.uuid4().hex[:8]}"
        self.private[kid] = (private, algorithm)
        if publish:
            self.published.append(kid)
        return kid

    def rotate(self, algorithm: str = "RS256") -> str:
        """Publish a new key in place of every old one; its kid."""
        self.published.clear()
        return self.add_key(algorithm)

    def token(
        self,
        kid: str | None = None,
        *,
        audience: str = AUDIENCE,
        lifetime: float = 300,
        headers: dict[str, Any] | None = None,
        sign_with: str | None = None,
        **claims: Any,
    ) -> str:
        """A JWT of this issuer signed with ``kid`` (default: the newest published key), for
        ``audience``, valid ``lifetime`` seconds from now (negative: expired); ``claims``
        add to or replace the defaults (``iss=None`` leaves a claim out). ``sign_with``
        signs with another key than the one ``kid`` names (a forged signature)."""
        kid = kid or self.published[-1]
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.url,
            "aud": audience,
            "sub": "subject-1",
            "iat": now,
            "exp": now + int(lifetime),
            **claims,
        }
        body = {name: value for name, value in body.items() if value is not None}
        private, algorithm = self.private[sign_with or kid]
        return jwt.encode(
            body, private, algorithm=algorithm, headers={"kid": kid, **(headers or {})}
        )

    def jwk(self, kid: str) -> dict[str, Any]:
        """The public JWK of ``kid``, as the JWKS lists it."""
        private, algorithm = self.private[kid]
        if algorithm == "ES256":
            public: Any = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
        else:
            public = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
        return {**public, "kid": kid, "alg": algorithm, "use": "sig"}

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.url,
                "jwks_uri": f"{self.url}/jwks",
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response({"keys": [self.jwk(kid) for kid in self.published]})


def write_tokens(path: Path, clients: dict[str, tuple[Scope, ...] | None]) -> dict[str, str]:
    """A token file at ``path`` with a new token per client (scopes, or None for the
    default); the tokens by client name."""
    tokens = {name: new_token() for name in clients}
    lines = ["# clients of the test", ""]
    lines += [token_line(name, tokens[name], clients[name]) for name in clients]
    path.write_text("\n".join(lines) + "\n")
    return tokens


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of ``token``."""
    return {"Authorization": f"Bearer {token}"}


def challenge(headers: Any) -> str:
    """The WWW-Authenticate header of an answer ('' without one)."""
    return str(headers.get("WWW-Authenticate", ""))
