"""Crashes without writing result.json: stderr chatter, then exit code 3."""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:2] != ["run"]:
        print("{}")
        return 0
    for line in range(50):
        print(f"working on step {line}", file=sys.stderr)
    print("fatal: the sky fell", file=sys.stderr)
    return 3
