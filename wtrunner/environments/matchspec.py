"""Parsing the MatchSpec a run asks for: a bad spec is the client's mistake."""

from __future__ import annotations

from typing import Any

from ..errors import RequestValidationError

LOC = ("matchspec",)


def parse_matchspec(requested: str | None, override: str = "") -> Any:
    """The ``rattler.MatchSpec`` to run: ``override`` when set, else ``requested``.

    A missing or malformed spec, or one that does not name exactly one package, raises
    RequestValidationError located at the plain field ``["matchspec"]``; the front door that
    received the spec places it (query, body, message attribute).
    """
    from rattler import MatchSpec

    text = override or (requested or "").strip()
    if not text:
        raise RequestValidationError.single(LOC, "Field required", None, type="missing")
    try:
        spec = MatchSpec(text)
    except Exception as exc:  # rattler raises InvalidMatchSpecError with the reason
        raise RequestValidationError.single(
            LOC, f"not a valid MatchSpec: {exc}", text, type="matchspec"
        ) from None
    if spec.name is None or spec.name.as_package_name() is None:
        raise RequestValidationError.single(
            LOC, "a MatchSpec must name one package", text, type="matchspec"
        )
    return spec


def package_name(spec: Any) -> str:
    """The package name a parsed MatchSpec asks for (the workflow's executable name)."""
    return str(spec.name.as_package_name().normalized)
