"""which claim owns a sync run

``lms_integrations.sync_run_id``: a fresh id written by every claim of a sync
(beat's, an operator's ``lms sync``) and carried by its message and Celery's
retries of it.  A sync runs only for the newest claim, so a chain waiting for
a retry whose claim an operator took over ends instead of running alongside.
Nullable and without a default, so adding it rewrites no row; a message
queued before the upgrade (no run id) runs only while the row has none.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 03:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("lms_integrations", sa.Column("sync_run_id", sa.UUID(), nullable=True))


def downgrade() -> None:
    op.drop_column("lms_integrations", "sync_run_id")
