"""``python -m wtrunner`` is the ``wtrunner`` command."""

from .cli import run

run()
