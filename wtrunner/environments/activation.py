"""Each environment's activation variables, captured once per prefix.

py-rattler writes the activation script (packages such as GDAL or PROJ set variables there), a
shell runs it once, and the resulting variables are kept with the prefix, so workflows start with
that environment directly, never through a shell.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import anyio.to_thread

from ..errors import UpstreamError
from .cache import read_metadata, tree_size, write_metadata

BASE_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Variables every shell sets for itself; they describe the capture, not the environment.
_SHELL_NOISE = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})


async def capture_activation(prefix: Path) -> dict[str, str]:
    """Run py-rattler's activation script for ``prefix`` in bash; return the variables it sets.

    The shell starts from a minimal environment (``PATH`` of :data:`BASE_PATH` and ``HOME``), so
    nothing of the server's own environment leaks into the result. A failing script raises
    UpstreamError.
    """
    from rattler.shell import ActivationVariables, PathModificationBehavior, Shell, activate

    variables = ActivationVariables(None, list(BASE_PATH), PathModificationBehavior.Replace)
    script = activate(prefix, variables, Shell.bash).script
    base = {"PATH": ":".join(BASE_PATH), "HOME": os.environ.get("HOME", "/")}
    process = await asyncio.create_subprocess_exec(
        "bash",
        "--noprofile",
        "--norc",
        "-c",
        f"{script}\nexec env -0",
        env=base,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise UpstreamError(
            f"activating {prefix} failed (exit {process.returncode}): "
            f"{stderr.decode(errors='replace').strip()[-500:]}"
        )
    captured = {}
    for item in stdout.decode(errors="surrogateescape").split("\0"):
        name, sep, value = item.partition("=")
        if sep and name not in _SHELL_NOISE:
            captured[name] = value
    return captured


class Activations:
    """The activation variables of every prefix in use, each captured once.

    Installed prefixes (``WTRUNNER_PREFIXES``) are not ours to write to: their variables are
    kept in memory. Prefixes of the environment cache keep theirs in the prefix's record, so
    another instance on the same cache dir, or a restart, does not capture them again.
    """

    def __init__(self) -> None:
        self._installed: dict[Path, dict[str, str]] = {}

    async def of_installed_prefix(self, prefix: Path) -> dict[str, str]:
        """The variables of an installed prefix (captured on first use, then kept in memory)."""
        activation = self._installed.get(prefix)
        if activation is None:
            activation = await capture_activation(prefix)
            self._installed[prefix] = activation
        return activation

    async def of_cached_prefix(self, prefix: Path) -> dict[str, str]:
        """The variables stored with a cached prefix (captured and stored, with the prefix's
        size, on first use)."""
        metadata = read_metadata(prefix)
        if "activation_env" in metadata:
            stored: dict[str, str] = metadata["activation_env"]
            return stored
        activation = await capture_activation(prefix)
        size = await anyio.to_thread.run_sync(tree_size, prefix)
        write_metadata(prefix, {"activation_env": activation, "size_bytes": size})
        return activation
