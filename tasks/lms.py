"""LMS tasks (queue ``lms``): sync one integration, the beat tick that claims due syncs,
and the grade passback drain.  They carry ids only; secrets are decrypted inside."""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from lms.drain import drain, send_worst_case_seconds
from lms.http import server_wait
from lms.passback import PassbackPolicy
from lms.schedule import claim_due
from lms.sync import run_sync
from models.errors import LMSUnavailable, RetryableError
from workers.app import app
from workers.db import get_engine
from workers.jobs.lms_errors import record_passbacks, record_sync, record_sync_retry
from workers.logs import task_context
from workers.secrets import secret_box

log = logging.getLogger(__name__)

SYNC_RETRIES = 3
"""Celery retries of a sync whose whole run failed transiently; then beat's backoff takes over."""
SYNC_RETRY_CAP_SECONDS = 300.0
"""Below ``SyncPolicy.stale_after``, so a claim waiting for its retry is never taken as stale."""
SYNC_RETRY_AFTER_MAX_SECONDS = 600.0
"""The longest ``Retry-After`` a sync waits for in a retry (below ``stale_after``, 15 min);
a longer one ends the run ``failed`` and beat tries again 15 minutes later, but not before
the time the LMS named (``lms_integrations.not_before``, at most a day ahead)."""
SYNC_THROTTLED_RETRIES = 5
"""Retries the LMS asked for with ``Retry-After``: not failures, so not counted in
``SYNC_RETRIES``, but bounded so that a server that always says "later" ends the run."""
SYNC_SOFT_LIMIT_SECONDS = 3000
DRAIN_BUDGET_SECONDS = 100.0
"""Less than the drain's beat interval, so drains do not pile up."""
DRAIN_SOFT_LIMIT_SECONDS = int(
    DRAIN_BUDGET_SECONDS + send_worst_case_seconds(PassbackPolicy()) + 20
)
"""No grade starts after the budget, and the one under way ends within its worst case."""


@app.task(
    name="toolbox.lms.sync",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=SYNC_RETRIES,
    ignore_result=True,
    soft_time_limit=SYNC_SOFT_LIMIT_SECONDS,
    time_limit=SYNC_SOFT_LIMIT_SECONDS + 15,
)
def sync_integration(
    self: Task,
    integration_id: str,
    throttled: int = 0,
    ignore_not_before: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Run the claimed sync of one ``lms_integrations`` row.

    ``run_id`` is the claim's (``lms.schedule``), kept by every retry: once a
    newer claim took the row over, the run is skipped and the chain ends.

    ``throttled`` counts the retries so far that the LMS asked for with
    ``Retry-After``; the others are failures, retried ``SYNC_RETRIES`` times.
    A run finding the integration's ``not_before`` ahead (the LMS asked to wait
    after the claim) is skipped, unless ``ignore_not_before``: the operator's
    ``lms sync --ignore-retry-after``, which holds for the run's retries too.
    """
    try:
        row_id = uuid.UUID(str(integration_id))
    except ValueError:
        log.error("toolbox.lms.sync needs an lms_integrations id, got %r", str(integration_id)[:80])
        return {"status": "skipped"}
    try:
        claim = None if run_id is None else uuid.UUID(str(run_id))
    except ValueError:
        log.error("toolbox.lms.sync needs a sync run id, got %r", str(run_id)[:80])
        return {"status": "skipped"}
    retries = int(self.request.retries or 0)
    failures = retries - throttled
    token = task_context.set({"integration_id": str(row_id)})
    try:
        report = run_sync(
            get_engine(),
            row_id,
            secrets=secret_box,
            final_attempt=failures >= SYNC_RETRIES or throttled >= SYNC_THROTTLED_RETRIES,
            longest_wait=SYNC_RETRY_AFTER_MAX_SECONDS,
            ignore_not_before=ignore_not_before,
            run_id=claim,
        )
    except RetryableError as exc:
        record_sync_retry(get_engine(), row_id, exc)
        step = min(SYNC_RETRY_CAP_SECONDS, 30.0 * 2**failures)
        # At least the wait the LMS asked for (run_sync ended the run if it exceeds the
        # maximum), not the HTTP client's backoff hint: that is 30 s after every outage, and
        # would bring every integration it hit back at the same moment, unjittered.
        asked = server_wait(exc) if isinstance(exc, LMSUnavailable) else exc.retry_after
        countdown = max(random.uniform(step / 2, step), asked or 0.0)
        if exc.details.get("server_retry_after") is not None:  # the LMS's pace, not a failure
            throttled += 1
        raise self.retry(
            args=[str(row_id)],
            kwargs={
                "throttled": throttled,
                "ignore_not_before": ignore_not_before,
                "run_id": run_id,
            },
            countdown=countdown,
            max_retries=retries + 1,  # this function decided: final_attempt never raises
        ) from None
    finally:
        task_context.reset(token)
    record_sync(get_engine(), report)
    return {
        "status": report.status,
        "courses": report.courses_listed,
        "failed_courses": report.courses_failed,
        "restricted_courses": report.courses_restricted,
    }


@app.task(name="toolbox.lms.schedule_syncs", ignore_result=True)
def schedule_syncs() -> dict[str, int]:
    """Beat tick: claim every due integration, then send one sync message per claim."""
    with get_engine().begin() as connection:
        claimed = claim_due(connection)
    for integration_id, run_id in claimed:
        sync_integration.apply_async(args=[str(integration_id)], kwargs={"run_id": str(run_id)})
    if claimed:
        log.info("queued %d LMS sync(s)", len(claimed))
    return {"queued": len(claimed)}


@app.task(
    name="toolbox.lms.drain_passbacks",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=DRAIN_SOFT_LIMIT_SECONDS,
    time_limit=DRAIN_SOFT_LIMIT_SECONDS + 15,
)
def drain_passbacks() -> dict[str, int]:
    """Send due grade passbacks; any number may run at once."""
    report = drain(
        get_engine(),
        secrets=secret_box,
        time_budget=DRAIN_BUDGET_SECONDS,
        interrupts=(SoftTimeLimitExceeded,),
    )
    record_passbacks(get_engine(), report.problems)
    counts = report.counts()  # not the LMS's messages: the result shows in Flower
    if report.sent or report.failed or report.retrying:
        log.info("grade passback: %s", counts)
    return counts
