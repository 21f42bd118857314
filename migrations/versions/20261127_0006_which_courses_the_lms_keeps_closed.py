"""which courses the LMS keeps closed (restricted by date)

``lms_courses.access_restricted_since``: when a sync first found the course
listed but closed to the token (Canvas's ``access_restricted_by_date``, a
concluded term), cleared when a sync reads it in full again.  Operators see
the restricted courses in ``lms status``; the grade drain holds the grades of
such a course instead of sending them into a 401.  Nullable and without a
default, so adding it rewrites no row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "lms_courses",
        sa.Column("access_restricted_since", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("lms_courses", "access_restricted_since")
