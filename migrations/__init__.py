"""Alembic migrations of the ToolboxAI schema (``env.py``, ``versions/``)."""

SCHEMA_LOCK_KEY = 7_231_540_015_824_301_001
"""The PostgreSQL advisory lock that serialises schema upgrades and the agent seeding.

``env.py`` takes it before Alembic reads the current revision, so of two
upgrades at once (two ``toolbox migrate``, a ``toolbox up`` and an ``alembic
upgrade``, two machines deploying) the second waits and then finds the schema
already where the first left it.
"""
