"""Retention: keep little, keep it briefly (FERPA/COPPA-minded defaults).

Every rule works in batches of ``batch_size`` rows, each picked with
``FOR UPDATE SKIP LOCKED`` and changed in its own short transaction, so no
table is locked for long and a twin run (two beats) takes other rows.

==========================  =====  ==============================================
rule (days)                 value  what happens after that age
==========================  =====  ==============================================
usage_anonymise_days           30  usage events lose user, session, IP, user agent
usage_days                    180  usage events are deleted
error_logs_resolved_days       30  resolved or ignored errors are deleted
error_logs_days               180  errors not seen for that long are deleted
health_checks_days             14  health check rows are deleted
job_runs_days                  14  periodic_job_runs rows are deleted
task_payload_days              30  finished agent tasks keep a marker instead of
                                   input, output and SPARC state data, once
                                   their whole workflow has finished
task_rows_days                365  finished agent tasks are deleted with their
                                   states and metrics (children first)
==========================  =====  ==============================================

Each can be changed with ``TOOLBOX_RETENTION_<RULE>`` (for example
``TOOLBOX_RETENTION_USAGE_DAYS=90``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from sqlalchemy import Connection, Engine, TextClause, text

from workers.jobs.common import Batch, run_batches
from workers.settings import RetentionPolicy, get_settings

MARKER_KEY = "_retention"


def retention_settings() -> RetentionPolicy:
    return get_settings().retention


def _cutoff(column: str, setting: str) -> str:
    return f"{column} < now() - make_interval(secs => :{setting} * 86400)"


def _delete(table: str, where: str) -> TextClause:
    return text(
        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {where}"
        " LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING id"
    )


_FINISHED = "status IN ('completed', 'failed', 'cancelled')"
_WORKFLOW_OVER = (
    "NOT EXISTS (SELECT FROM agent_tasks o WHERE o.workflow_id = agent_tasks.workflow_id"
    f" AND NOT o.{_FINISHED})"
)
"""No task of the row's workflow is still to run: a workflow going on reads its root's
request and its artifacts' outputs (the review, a revision round, storing the result)."""
_MARKER = "jsonb_build_object('_retention', jsonb_build_object('purged_at', now()))"

RULES: dict[str, tuple[str, TextClause]] = {
    "usage_anonymised": (
        "usage_anonymise_days",
        text(
            "UPDATE usage_analytics SET user_id = NULL, session_id = NULL, ip_address = NULL,"
            " user_agent = NULL WHERE id IN (SELECT id FROM usage_analytics WHERE"
            f" {_cutoff('recorded_at', 'days')} AND (user_id IS NOT NULL OR session_id IS NOT NULL"
            " OR ip_address IS NOT NULL OR user_agent IS NOT NULL)"
            " LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING id"
        ),
    ),
    "usage_deleted": ("usage_days", _delete("usage_analytics", _cutoff("recorded_at", "days"))),
    "errors_resolved_deleted": (
        "error_logs_resolved_days",
        _delete(
            "error_logs",
            "status IN ('resolved', 'ignored') AND "
            + _cutoff("coalesce(resolved_at, last_seen)", "days"),
        ),
    ),
    "errors_deleted": ("error_logs_days", _delete("error_logs", _cutoff("last_seen", "days"))),
    "health_checks_deleted": (
        "health_checks_days",
        _delete("system_health_checks", _cutoff("checked_at", "days")),
    ),
    "job_runs_deleted": (
        "job_runs_days",
        _delete("periodic_job_runs", _cutoff("slot_start", "days")),
    ),
    "task_payloads_purged": (
        "task_payload_days",
        text(
            f"WITH doomed AS (SELECT id FROM agent_tasks WHERE {_FINISHED}"
            f" AND {_cutoff('completed_at', 'days')} AND NOT input_data ? '{MARKER_KEY}'"
            f" AND {_WORKFLOW_OVER} ORDER BY completed_at LIMIT :limit FOR UPDATE SKIP LOCKED),"
            f" states AS (UPDATE agent_states SET state_data = {_MARKER}"
            f" WHERE task_id IN (SELECT id FROM doomed) AND NOT state_data ? '{MARKER_KEY}'"
            " RETURNING 1)"
            f" UPDATE agent_tasks t SET input_data = {_MARKER},"
            f" output_data = CASE WHEN t.output_data IS NULL THEN NULL ELSE {_MARKER} END,"
            " intermediate_results = NULL,"  # context_data is the workflow's bookkeeping: kept
            " error_details = CASE WHEN t.error_details IS NULL THEN NULL ELSE jsonb_build_object("
            "'type', t.error_details->'type', 'retryable', t.error_details->'retryable') END"
            " FROM doomed d WHERE t.id = d.id RETURNING t.id"
        ),
    ),
    "task_rows_deleted": (
        "task_rows_days",
        text(
            "WITH doomed AS (SELECT t.id FROM agent_tasks t"
            " WHERE t.status IN ('completed', 'failed', 'cancelled')"
            f" AND {_cutoff('t.completed_at', 'days')} AND NOT EXISTS (SELECT 1 FROM agent_tasks c"
            " WHERE c.parent_task_id = t.id) ORDER BY t.completed_at"
            " LIMIT :limit FOR UPDATE SKIP LOCKED),"
            " metrics AS (DELETE FROM agent_metrics WHERE task_id IN (SELECT id FROM doomed)"
            " RETURNING 1),"
            " errors AS (UPDATE error_logs SET task_id = NULL"
            " WHERE task_id IN (SELECT id FROM doomed) RETURNING 1)"
            " DELETE FROM agent_tasks WHERE id IN (SELECT id FROM doomed) RETURNING id"
        ),
    ),
}
"""Rule name -> (the setting giving its age, the batch statement).  Order matters:
payloads are purged before rows go, children before their parents."""


def _apply(connection: Connection, limit: int, *, statement: TextClause, days: float) -> int:
    return len(connection.execute(statement, {"days": days, "limit": limit}).all())


def apply_retention(engine: Engine, settings: RetentionPolicy | None = None) -> dict[str, int]:
    """Run every rule to completion (or ``max_batches``); returns rows changed per rule."""
    config = settings or retention_settings()
    steps: list[tuple[str, Batch]] = []
    for name, (setting, statement) in RULES.items():
        bound: Callable[[Connection, int], int] = functools.partial(
            _apply, statement=statement, days=float(getattr(config, setting))
        )
        steps.append((name, bound))
    return run_batches(
        engine,
        steps,
        batch=config.batch_size,
        max_batches=config.max_batches,
        step_seconds=config.step_seconds,
    )
