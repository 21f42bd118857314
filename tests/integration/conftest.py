"""Fixtures shared by the LMS test modules of this folder (a module may define its own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.integration.lms_support import add_canvas
from tests.lms.fakes import Dataset, FakeCanvas


@pytest.fixture
def data() -> Dataset:
    """Two courses of three students and two assignments each."""
    return Dataset.generate(courses=2, students_per_course=3, assignments_per_course=2)


@pytest.fixture
def canvas(data: Dataset) -> Iterator[FakeCanvas]:
    with FakeCanvas(data) as server:
        yield server


@pytest.fixture
def course(data: Dataset) -> str:
    return next(iter(data.courses))


@pytest.fixture
def assignment(data: Dataset, course: str) -> str:
    return data.course_assignments(course)[0].id


@pytest.fixture
def integration(engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas) -> uuid.UUID:
    """A Canvas integration on the test module's own ``canvas`` (its fake server)."""
    return add_canvas(engine, canvas.base_url, canvas.token)
