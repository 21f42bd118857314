"""a regraded attempt gets a new grade passback

``lms_grade_passbacks`` held one row per (attempt, assignment), so a quiz
attempt regraded after its grade was recorded could never send the new
score.  The unique key now includes ``score_timestamp``: a regrade adds a
row timestamped later (``lms.passback.record_attempt_completion``), which
the LMS takes as newer, and an older grade still pending is superseded by
it.  Downgrading restores the old key only while no attempt has a second
grade for the same assignment; it stops with the count otherwise, rather
than delete grades.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "lms_grade_passbacks"
OLD_KEY = "uq_lms_grade_passbacks_quiz_attempt_id_lms_assignment_id"
NEW_KEY = "uq_lms_grade_passbacks_attempt_assignment_timestamp"


def upgrade() -> None:
    op.create_unique_constraint(
        NEW_KEY, TABLE, ["quiz_attempt_id", "lms_assignment_id", "score_timestamp"]
    )
    op.drop_constraint(OLD_KEY, TABLE, type_="unique")


def downgrade() -> None:
    regraded = (
        op.get_bind()
        .execute(
            sa.text(
                f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} WHERE quiz_attempt_id IS NOT NULL"
                " GROUP BY quiz_attempt_id, lms_assignment_id HAVING count(*) > 1) regrades"
            )
        )
        .scalar_one()
    )
    if regraded:
        raise RuntimeError(
            f"cannot downgrade below 0007: {regraded} (attempt, assignment) pair(s) in {TABLE}"
            " have a regrade's second grade, which the old key forbids; delete the rows you"
            " do not need first"
        )
    op.create_unique_constraint(OLD_KEY, TABLE, ["quiz_attempt_id", "lms_assignment_id"])
    op.drop_constraint(NEW_KEY, TABLE, type_="unique")
