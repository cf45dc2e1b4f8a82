"""The cheapest workflow that keeps the run contract: standard library only, file:// results.

It has no `get` or `convert` (like a package too old to have `get params`) and checks its own
params (exit 2 when they are not a JSON object): `sleep.seconds` sleeps, `append.file` gets a line
per run. Used to measure the service, not the workflow.
"""

import json
import os
import sys
import time
from urllib.parse import unquote, urlparse


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] != "run" or "--config-file" not in args:
        print("usage: run --config-file F [...]", file=sys.stderr)
        return 2
    with open(args[args.index("--config-file") + 1]) as file:
        params = json.load(file)
    if not isinstance(params, dict):
        print("params must be an object", file=sys.stderr)
        return 2
    seconds = float(params.get("sleep", {}).get("seconds", 0))
    if seconds:
        time.sleep(seconds)
    if "file" in params.get("append", {}):  # one line per run: tests count processes
        with open(params["append"]["file"], "a") as file:
            file.write(f"{os.getpid()}\n")
    url = os.environ[os.environ.get("WT_INVOKERS__RESULTS_ENV_VAR") or "WT_RESULTS"]
    if urlparse(url).scheme != "file":
        print(f"only file:// results, not {url}", file=sys.stderr)
        return 1
    directory = unquote(urlparse(url).path)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "result.json"), "w") as file:
        json.dump({"result": {"ok": True, "params": params}, "error": None, "trace": None}, file)
    return 0
