"""Worker tests only (``start_worker(include="tests.drain_outage_hooks")``): the first
grade drain loses its database right after claiming its grades, before it builds a
client (``TESTS_CUT_DATABASE``: the scratch database to cut off, once; a file
``TESTS_CUT_MARKER`` says it was done)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, make_url, pool, text

import tasks.lms
from lms.secrets import SecretBox

_secret_box = tasks.lms.secret_box


def _cut_database() -> None:
    url = make_url(os.environ["TOOLBOX_DATABASE_URL"])
    admin = create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
    )
    name = os.environ["TESTS_CUT_DATABASE"]
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(  # the scratch database's sessions only
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
    finally:
        admin.dispose()


def _secret_box_after_a_cut() -> SecretBox:
    marker = Path(os.environ["TESTS_CUT_MARKER"])
    if not marker.exists():
        marker.touch()
        _cut_database()
    return _secret_box()


tasks.lms.secret_box = _secret_box_after_a_cut
