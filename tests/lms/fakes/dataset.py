"""A platform-neutral school dataset that every fake LMS renders in its own shape.

Tests fill or mutate it directly; the fakes read it under their lock.  Every
grade write is logged, so a test can assert a grade landed exactly once and
that an older grade never replaced a newer one.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

#: Roles and states as the dataset names them; each fake maps them to its own words.
ROLES = ("student", "teacher", "ta", "observer", "designer")
STATES = ("active", "invited", "inactive", "completed", "deleted")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class FakeUser:
    id: str
    given_name: str
    family_name: str
    email: str
    username: str

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"


@dataclass
class FakeCourse:
    id: str
    title: str
    code: str
    description: str = ""
    start: dt.date | None = None
    end: dt.date | None = None


@dataclass
class FakeEnrollment:
    id: str
    course_id: str
    user_id: str
    role: str = "student"
    state: str = "active"


@dataclass
class FakeAssignment:
    id: str
    course_id: str
    title: str
    points_possible: Decimal = Decimal(100)
    description: str = ""
    due_at: dt.datetime | None = None
    unlock_at: dt.datetime | None = None
    lock_at: dt.datetime | None = None


@dataclass
class GradeState:
    """The grade the LMS holds now; ``attempts`` counts student attempts opened."""

    score: Decimal | None
    graded_at: dt.datetime
    comment: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class GradeWrite:
    """One write to a grade; ``source`` is ``"api"`` for writes through a fake."""

    assignment_id: str
    user_id: str
    score: Decimal | None
    at: dt.datetime
    source: str
    comment: str | None = None


@dataclass
class Dataset:
    """Courses, users, enrollments, assignments and grades, indexed for the fakes."""

    clock: Callable[[], dt.datetime] = utcnow
    courses: dict[str, FakeCourse] = field(default_factory=dict)
    users: dict[str, FakeUser] = field(default_factory=dict)
    enrollments: dict[str, FakeEnrollment] = field(default_factory=dict)
    assignments: dict[str, FakeAssignment] = field(default_factory=dict)
    grades: dict[tuple[str, str], GradeState] = field(default_factory=dict)
    writes: list[GradeWrite] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _by_course: dict[str, list[FakeEnrollment]] = field(default_factory=dict)
    _assignments_by_course: dict[str, list[FakeAssignment]] = field(default_factory=dict)

    def new_id(self) -> str:
        return str(next(self._ids))

    def add_course(
        self,
        title: str | None = None,
        *,
        id: str | None = None,
        code: str | None = None,
        description: str = "",
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> FakeCourse:
        course_id = id or self.new_id()
        course = FakeCourse(
            course_id,
            title or f"Course {course_id}",
            code or f"C-{course_id}",
            description,
            start,
            end,
        )
        self.courses[course_id] = course
        self._by_course.setdefault(course_id, [])
        self._assignments_by_course.setdefault(course_id, [])
        return course

    def add_user(
        self,
        given_name: str | None = None,
        family_name: str | None = None,
        *,
        id: str | None = None,
    ) -> FakeUser:
        user_id = id or self.new_id()
        given = given_name or f"Given{user_id}"
        family = family_name or f"Family{user_id}"
        username = f"{given}.{family}".lower()
        user = FakeUser(user_id, given, family, f"{username}@school.test", username)
        self.users[user_id] = user
        return user

    def enroll(
        self, course_id: str, user_id: str, role: str = "student", state: str = "active"
    ) -> FakeEnrollment:
        if role not in ROLES or state not in STATES:
            raise ValueError(f"unknown role {role!r} or state {state!r}")
        enrollment = FakeEnrollment(self.new_id(), course_id, user_id, role, state)
        self.enrollments[enrollment.id] = enrollment
        self._by_course.setdefault(course_id, []).append(enrollment)
        return enrollment

    def add_assignment(
        self,
        course_id: str,
        title: str | None = None,
        *,
        points_possible: Decimal | int = 100,
        description: str = "",
        due_at: dt.datetime | None = None,
        unlock_at: dt.datetime | None = None,
        lock_at: dt.datetime | None = None,
    ) -> FakeAssignment:
        assignment_id = self.new_id()
        assignment = FakeAssignment(
            assignment_id,
            course_id,
            title or f"Assignment {assignment_id}",
            Decimal(points_possible),
            description,
            due_at,
            unlock_at,
            lock_at,
        )
        self.assignments[assignment_id] = assignment
        self._assignments_by_course.setdefault(course_id, []).append(assignment)
        return assignment

    def course_enrollments(self, course_id: str) -> list[FakeEnrollment]:
        return self._by_course.get(course_id, [])

    def course_assignments(self, course_id: str) -> list[FakeAssignment]:
        return self._assignments_by_course.get(course_id, [])

    def enrollment_of(self, course_id: str, user_id: str) -> FakeEnrollment | None:
        for enrollment in self.course_enrollments(course_id):
            if enrollment.user_id == user_id and enrollment.state != "deleted":
                return enrollment
        return None

    def grade(self, assignment_id: str, user_id: str) -> GradeState | None:
        return self.grades.get((assignment_id, user_id))

    def set_grade(
        self,
        assignment_id: str,
        user_id: str,
        score: Decimal | int | None,
        *,
        at: dt.datetime | None = None,
        comment: str | None = None,
        source: str = "teacher",
        add_attempt: bool = False,
    ) -> GradeState:
        """Write a grade and log it; ``source="api"`` marks writes made through a fake."""
        when = at or self.clock()
        value = None if score is None else Decimal(score)
        state = self.grades.get((assignment_id, user_id))
        attempts = (state.attempts if state else 1) + (1 if add_attempt else 0)
        kept_comment = state.comment if state is not None and comment is None else comment
        new = GradeState(value, when, kept_comment, attempts)
        self.grades[(assignment_id, user_id)] = new
        self.writes.append(GradeWrite(assignment_id, user_id, value, when, source, comment))
        return new

    def api_writes(
        self, assignment_id: str | None = None, user_id: str | None = None
    ) -> list[GradeWrite]:
        """Writes that came in through a fake's API, optionally for one grade."""
        return [
            write
            for write in self.writes
            if write.source == "api"
            and (assignment_id is None or write.assignment_id == assignment_id)
            and (user_id is None or write.user_id == user_id)
        ]

    @classmethod
    def generate(
        cls,
        courses: int = 200,
        students_per_course: int = 30,
        assignments_per_course: int = 10,
        *,
        teachers_per_course: int = 1,
        start: dt.date = dt.date(2025, 8, 25),
    ) -> Dataset:
        """A deterministic school at scale.

        Each course gets its own students, so enrollments number
        ``courses * (students_per_course + teachers_per_course)``.
        """
        data = cls()
        due = dt.datetime.combine(start, dt.time(23, 59), tzinfo=dt.UTC)
        for number in range(1, courses + 1):
            course = data.add_course(
                f"Course {number}",
                code=f"CRS-{number:04d}",
                description=f"Generated course {number}",
                start=start,
                end=start + dt.timedelta(days=120),
            )
            for _ in range(teachers_per_course):
                data.enroll(course.id, data.add_user("Teacher", f"Of{number}").id, "teacher")
            for seat in range(students_per_course):
                data.enroll(course.id, data.add_user(f"Student{seat}", f"Course{number}").id)
            for index in range(assignments_per_course):
                data.add_assignment(
                    course.id,
                    f"Assignment {index + 1} of course {number}",
                    points_possible=10 * (index % 10 + 1),
                    due_at=due + dt.timedelta(days=7 * index),
                )
        return data
