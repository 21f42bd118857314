"""Fake LMS servers for tests and benchmarks: real HTTP on 127.0.0.1, in-memory data."""

from tests.lms.fakes.canvas import FakeCanvas
from tests.lms.fakes.dataset import Dataset, GradeState, GradeWrite
from tests.lms.fakes.moodle import FakeMoodle
from tests.lms.fakes.schoology import FakeSchoology
from tests.lms.fakes.server import FakeLMSServer, Fault, RecordedRequest, Reply

__all__ = [
    "Dataset",
    "FakeCanvas",
    "FakeLMSServer",
    "FakeMoodle",
    "FakeSchoology",
    "Fault",
    "GradeState",
    "GradeWrite",
    "RecordedRequest",
    "Reply",
]
