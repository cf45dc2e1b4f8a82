"""wtrunner's version, in a module of its own so packaging can read it without importing more."""

__version__ = "0.1.0"
