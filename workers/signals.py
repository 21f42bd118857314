"""Process lifecycle hooks: fresh engine per pool child, logging setup, failures recorded.

A worker or beat started by ``toolbox up`` stops once ``toolbox up`` is gone,
however it ended (``workers.lifelines.stop_with_supervisor``).
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from celery import Celery, current_task
from celery.signals import (
    beat_init,
    setup_logging,
    task_failure,
    worker_init,
    worker_process_init,
    worker_ready,
)
from sqlalchemy import make_url

from workers import kombu_fixes
from workers.db import get_engine, reset_engine
from workers.lifelines import stop_with_supervisor
from workers.logs import configure_logging
from workers.outages import OutageFilter, outage
from workers.settings import get_settings

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 10.0
"""A second ``task_failure`` for the same task id and exception type this soon is the same
failure: Celery sends the signal from both ``on_timeout`` and ``on_failure`` for a hard time
limit.  A later delivery of that task can only fail again after running, and retries
fire ``task_retry``, not ``task_failure``."""


class _RecentFailures:
    """Failures recorded in the last ``DUPLICATE_WINDOW_SECONDS`` (bounded, thread-safe)."""

    def __init__(self, limit: int = 1000) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def first(self, task_id: str | None, exception: BaseException) -> bool:
        """True the first time this task failed with this exception type in the window."""
        if task_id is None:
            return True
        key, now = (task_id, type(exception).__name__), time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen < DUPLICATE_WINDOW_SECONDS:
                return False
            self._seen[key] = now
            self._seen.move_to_end(key)
            while len(self._seen) > self._limit:
                self._seen.popitem(last=False)
        return True


_recent_failures = _RecentFailures()


class TaskLogFilter(logging.Filter):
    """Adds the running task's id, name and workflow id (a message header) to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if current_task and current_task.request.id:
            fields = record.__dict__
            fields.setdefault("task_id", current_task.request.id)
            fields.setdefault("task", current_task.name)
            workflow = getattr(current_task.request, "workflow_id", None)
            if workflow:
                fields.setdefault("workflow_id", str(workflow))
        return True


def _watch_supervisor(**_: Any) -> None:
    stop_with_supervisor()


def _freeze_heap(**_: Any) -> None:
    """Move everything the worker imported out of the garbage collector's reach.

    Celery runs a full ``gc.collect()`` in the main process before forking
    every replacement pool child (``worker_max_tasks_per_child``), and the
    imported modules are about 190,000 tracked objects: about 0.1 s in which
    the main process hands no task to any child.  Frozen, they are skipped
    by that collection and by the children's, and their pages stay shared
    with the children (Python's advice for fork without exec).  ``worker_init``
    comes after the task modules are imported and before the pool forks.

    The modules that call a chat model are imported here first: the command
    line leaves them (and langchain) out, and each pool child would otherwise
    import its own copy at its first model call, after every fork.
    """
    for module in ("agents.prompts", "agents.providers", "langchain.chat_models"):
        importlib.import_module(module)
    gc.collect()
    gc.freeze()


def _check_schema(**_: Any) -> None:
    """Say once, as the worker or beat starts, that the database needs ``toolbox migrate``.

    Until then every task fails on a missing table, and the only sign would be
    those failures' tracebacks (the relay's every 5 s).  A database that does
    not answer says so itself, in the tasks' own errors.
    """
    alembic = logging.getLogger("alembic")
    level = alembic.level
    alembic.setLevel(logging.WARNING)  # its INFO lines (plugins, context) are no news here
    try:
        from workers import migrate  # alembic, which logs its plugins as it loads: only at start

        url = get_settings().database_url or ""
        current, head = migrate.current_revision(url), migrate.head_revision()
    except Exception as exc:
        log.warning("could not read the database's schema revision: %s", type(exc).__name__)
        return
    finally:
        alembic.setLevel(level)
    if current != head:
        parts = make_url(url)
        state = "has no schema yet" if current is None else f"is at schema revision {current}"
        log.error(
            "the database %s at %s %s, not %s: run `toolbox migrate`; tasks fail until then",
            parts.database, parts.host or "its socket", state, head,
        )  # fmt: skip


def _child_started(**_: Any) -> None:
    reset_engine()


def _setup_logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, json_output=settings.log_json)
    for handler in logging.getLogger().handlers:
        handler.addFilter(TaskLogFilter())
        handler.addFilter(OutageFilter())


def _task_failed(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """A task that raised lands in ``error_logs`` (agent failures come from the engine),
    once per failure even when Celery signals it twice."""
    if sender is None or exception is None or not _recent_failures.first(task_id, exception):
        return
    if (outage(exception) or "").startswith("postgresql"):
        return  # nowhere to record it; Celery's own line says what failed, and why
    from workers.jobs.errors import record_exception  # the agent engine: only when needed

    try:
        record_exception(
            get_engine(),
            exception,
            service=str(sender.name),
            celery_task_id=task_id,
            stack_trace=None if einfo is None else str(einfo.traceback),
        )
    except Exception as exc:
        log.warning("could not record the failure of %s: %s", sender.name, type(exc).__name__)


def _mask_stats_hostname(**_: Any) -> None:
    kombu_fixes.mask_stats_hostname()  # what `inspect stats` and Flower show of the broker


def connect(app: Celery) -> None:
    del app  # signals are global in Celery; the argument documents who calls this
    worker_init.connect(_watch_supervisor, weak=False)
    worker_init.connect(_freeze_heap, weak=False)
    worker_init.connect(_mask_stats_hostname, weak=False)
    beat_init.connect(_watch_supervisor, weak=False)
    worker_ready.connect(_check_schema, weak=False)
    beat_init.connect(_check_schema, weak=False)
    worker_process_init.connect(_child_started, weak=False)
    setup_logging.connect(_setup_logging, weak=False)
    task_failure.connect(_task_failed, weak=False)
