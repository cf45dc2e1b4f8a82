"""Who is calling: bearer tokens from a token file, OIDC JWTs, and Pub/Sub push tokens, each
turned into an :class:`~wtrunner.auth.identity.Identity` with its scopes."""
