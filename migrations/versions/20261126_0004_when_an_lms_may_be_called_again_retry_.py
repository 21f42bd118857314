"""when an LMS may be called again (Retry-After)

``lms_integrations.not_before``: the time an LMS's ``Retry-After`` named when
a sync or a grade passback stopped on it instead of waiting in-process.  Beat's
due check and the grade drain skip the integration until then; a successful
sync clears it.  Nullable and without a default, so adding it rewrites no row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 16:30:43
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "lms_integrations", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("lms_integrations", "not_before")
