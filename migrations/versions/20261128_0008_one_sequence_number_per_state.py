"""one sequence number per state of a workflow; wider agent metric values

``agent_states`` was unique on ``(workflow_id, state_type,
sequence_number)``: two tasks of one workflow writing at once could both
take number 5 for states of different types (a ``context`` and a
``problem``), and nothing noticed.  The key is now ``(workflow_id,
sequence_number)``, so the loser of such a race conflicts and is numbered
again under the workflow's lock (``agents.hotpath``).  States numbered twice
before this revision are renumbered first, per workflow, in their order
(number, then time written).  The old key is implied by the new one.

``agent_metrics.metric_value`` and ``benchmark_value`` were ``numeric(10,
4)``: phase times in milliseconds overflowed past 1,000 s, which failed the
completion of a task whose phases ran that long (time limits go to 3,000 s).
They are ``numeric(18, 4)`` now.  Downgrading narrows them again only while
every value fits, and stops with the count otherwise.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 00:30:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = "uq_agent_states_workflow_id_state_type_sequence_number"
NEW_KEY = "uq_agent_states_workflow_id_sequence_number"
RENUMBER = """
UPDATE agent_states s SET sequence_number = ordered.number
FROM (
    SELECT id, row_number() OVER (
        PARTITION BY workflow_id ORDER BY sequence_number, created_at, id
    ) AS number
    FROM agent_states
    WHERE workflow_id IN (
        SELECT workflow_id FROM agent_states
        GROUP BY workflow_id, sequence_number HAVING count(*) > 1
    )
) AS ordered
WHERE s.id = ordered.id AND s.sequence_number <> ordered.number
"""
METRIC_COLUMNS = ("metric_value", "benchmark_value")


def upgrade() -> None:
    op.drop_constraint(OLD_KEY, "agent_states", type_="unique")
    op.execute(RENUMBER)
    op.create_unique_constraint(NEW_KEY, "agent_states", ["workflow_id", "sequence_number"])
    _metric_values(sa.Numeric(18, 4), was=sa.Numeric(10, 4))


def _metric_values(type_: sa.Numeric[Any], *, was: sa.Numeric[Any]) -> None:
    for column in METRIC_COLUMNS:
        op.alter_column(
            "agent_metrics",
            column,
            type_=type_,
            existing_type=was,
            existing_nullable=column == "benchmark_value",
        )


def downgrade() -> None:
    too_wide = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM agent_metrics WHERE abs(metric_value) >= 1000000"
                " OR abs(benchmark_value) >= 1000000"
            )
        )
        .scalar_one()
    )
    if too_wide:
        raise RuntimeError(
            f"cannot downgrade below 0008: {too_wide} agent_metrics value(s) do not fit"
            " numeric(10, 4); delete or scale them first"
        )
    _metric_values(sa.Numeric(10, 4), was=sa.Numeric(18, 4))
    op.create_unique_constraint(
        OLD_KEY, "agent_states", ["workflow_id", "state_type", "sequence_number"]
    )
    op.drop_constraint(NEW_KEY, "agent_states", type_="unique")
