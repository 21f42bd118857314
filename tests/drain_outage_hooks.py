"""Worker tests only (``start_worker(include="tests.drain_outage_hooks")``): the first
grade drain loses its database right after claiming its grades, before it builds a
client (``TESTS_CUT_DATABASE``: the scratch database to cut off, once; a file
``TESTS_CUT_MARKER`` says it was done)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import make_url

import tasks.lms
from lms.secrets import SecretBox
from tests.integration.ops_support import allow_connections

_secret_box = tasks.lms.secret_box


def _secret_box_after_a_cut() -> SecretBox:
    marker = Path(os.environ["TESTS_CUT_MARKER"])
    if not marker.exists():
        marker.touch()
        url = make_url(os.environ["TOOLBOX_DATABASE_URL"])
        allow_connections(url.set(database=os.environ["TESTS_CUT_DATABASE"]), False)
    return _secret_box()


tasks.lms.secret_box = _secret_box_after_a_cut
