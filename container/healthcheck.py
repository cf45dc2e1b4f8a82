"""The image's HEALTHCHECK: ``python healthcheck.py /livez`` exits 0 when wtrunner answers 200.

It reads the listen address the way ``wtrunner serve`` does (``WTRUNNER_HOST``,
``WTRUNNER_PORT`` else ``PORT`` else 8080), so a container started with another port is still
checked on the port it really listens on. A wildcard address is checked on loopback; proxy
variables are ignored (the request never leaves the container).
"""

from __future__ import annotations

import sys
import urllib.request

from wtrunner.settings import SettingsError, load_settings

WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/livez"
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    host = WILDCARDS.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{settings.port}{path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=4) as response:
            status = response.status
    except OSError as exc:  # URLError, HTTPError (a non-2xx answer), timeouts, refused
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
