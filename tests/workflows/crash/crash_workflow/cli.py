"""Crashes without writing result.json: stderr chatter, then exit code 3.

With params ``{"exit_code": N}`` it exits with N instead (0: "success" without a result.json).
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    if sys.argv[1:2] != ["run"]:
        print("{}")
        return 0
    with open(sys.argv[sys.argv.index("--config-file") + 1]) as file:
        params = json.load(file)
    for line in range(50):
        print(f"working on step {line}", file=sys.stderr)
    print("fatal: the sky fell", file=sys.stderr)
    return int(params.get("exit_code", 3))
