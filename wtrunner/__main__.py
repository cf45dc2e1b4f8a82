"""``python -m wtrunner`` is the ``wtrunner`` command."""

from .cli import main

raise SystemExit(main())
