"""The cheapest workflow that keeps the run contract: standard library only, file:// results.

It has no `get` or `convert` (like a package too old to have `get params`) and checks its own
params (exit 2 when they are not a JSON object): `sleep.seconds` sleeps, `append.file` gets a line
per run, `litter.outside` (a directory) makes it report what its work dir and TMPDIR held when it
started and then leave files, directories and links to that directory behind in both. Used to
measure the service, not the workflow.
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
    found = _litter(params["litter"]["outside"]) if "litter" in params else None
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
        result = {"ok": True, "params": params, **({"found": found} if found else {})}
        json.dump({"result": result, "error": None, "trace": None}, file)
    return 0


def _litter(outside: str) -> dict:
    tmp = os.environ["TMPDIR"]
    found = {
        "cwd": sorted(os.listdir(".")),
        "tmp": sorted(os.listdir(tmp)),
        "cwd_inode": os.stat(".").st_ino,
        "modes": [oct(os.stat(path).st_mode & 0o777) for path in (".", tmp)],
    }
    with open("left.txt", "w") as file:
        file.write("left behind")
    os.makedirs("sub/deeper")
    with open("sub/deeper/file", "w") as file:
        file.write("left behind")
    os.symlink(outside, "link")
    os.symlink(outside, os.path.join(tmp, "link"))
    os.mkdir(os.path.join(tmp, "dir"))
    with open(os.path.join(tmp, "dir", "file"), "w") as file:
        file.write("left behind")
    os.chmod(tmp, 0o500)
    return found
