"""Fire records of periodic jobs, so that two beat processes run a job once.

Whoever inserts ``(job_name, slot_start)`` first runs the job for that slot;
the other insert hits the unique key and does nothing.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, json_dict, str20, str100, timestamptz, timestamptz_now, uuid_pk


class PeriodicJobRun(Base):
    """One run of one periodic job for one schedule slot."""

    __tablename__ = "periodic_job_runs"
    __table_args__ = (
        UniqueConstraint("job_name", "slot_start"),
        CheckConstraint("status IN ('running', 'success', 'failed')", name="status"),
    )

    id: Mapped[uuid_pk]
    job_name: Mapped[str100]
    slot_start: Mapped[timestamptz]
    started_at: Mapped[timestamptz_now]
    finished_at: Mapped[timestamptz | None]
    status: Mapped[str20] = mapped_column(server_default=text("'running'"))
    detail: Mapped[json_dict | None]
