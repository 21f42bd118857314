"""Fixtures shared by the LMS sync test modules of this folder."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine

from tests.integration.lms_support import add_canvas
from tests.lms.fakes import FakeCanvas


@pytest.fixture
def integration(engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas) -> uuid.UUID:
    """A Canvas integration on the test module's own ``canvas`` (its fake server)."""
    return add_canvas(engine, canvas.base_url, canvas.token)
