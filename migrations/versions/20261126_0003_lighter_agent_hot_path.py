"""lighter writes on the agent hot path

Every agent task updates its ``agent_tasks`` row and inserts five states and
a few metrics; each index on those tables is one more write per row.

- ``ix_agent_tasks_heartbeat`` goes: the reaper finds running rows through
  ``ix_agent_tasks_claim`` (status first) and decides liveness by advisory
  lease, and with ``heartbeat_at`` indexed no progress update could be HOT.
- ``agent_tasks`` gets fillfactor 80, so those updates find room on the page.
- Three indexes duplicated the leading column of another index:
  ``agent_states.task_id`` (unique ``task_id, state_type``),
  ``agent_states.workflow_id`` (unique ``workflow_id, state_type,
  sequence_number``) and ``agent_metrics.agent_id`` (``ix_agent_metrics_series``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 03:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_agent_tasks_heartbeat", table_name="agent_tasks")
    op.drop_index("ix_agent_states_task_id", table_name="agent_states")
    op.drop_index("ix_agent_states_workflow_id", table_name="agent_states")
    op.drop_index("ix_agent_metrics_agent_id", table_name="agent_metrics")
    op.execute("ALTER TABLE agent_tasks SET (fillfactor = 80)")


def downgrade() -> None:
    op.execute("ALTER TABLE agent_tasks RESET (fillfactor)")
    op.create_index("ix_agent_metrics_agent_id", "agent_metrics", ["agent_id"])
    op.create_index("ix_agent_states_workflow_id", "agent_states", ["workflow_id"])
    op.create_index("ix_agent_states_task_id", "agent_states", ["task_id"])
    op.create_index("ix_agent_tasks_heartbeat", "agent_tasks", ["status", "heartbeat_at"])
