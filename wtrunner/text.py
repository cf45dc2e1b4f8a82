"""Small text helpers for error messages."""

from __future__ import annotations


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped ('' when there is none)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def last_line(text: str) -> str:
    """The last non-blank line of ``text``, stripped ('' when there is none)."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""
