"""Alembic migrations of the run store, run by :meth:`RunStore.open` (``env.py`` needs the
connection the store hands it; there is no ``alembic.ini``)."""
