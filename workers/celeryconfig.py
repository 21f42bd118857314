"""Celery configuration built from settings (read lazily, on first use).

Redis is only the carrier: PostgreSQL decides whether a task runs (the claim),
so every option here leans towards "deliver again" rather than "lose".
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from models.errors import ConfigurationError
from workers.schedule import beat_schedule
from workers.settings import ENV_PREFIX, Settings

AGENT_QUEUE = "agents"
LMS_QUEUE = "lms"
PASSBACK_QUEUE = "passback"
"""Grade passback drains: a queue and worker of their own, so syncs (up to 50 minutes
each) holding every slot of the LMS worker never hold back the grades of every school."""
MAINTENANCE_QUEUE = "maintenance"
QUEUES = (AGENT_QUEUE, LMS_QUEUE, PASSBACK_QUEUE, MAINTENANCE_QUEUE)

MAX_TIMEOUT_SECONDS = 3000
"""Longest agent soft time limit accepted; the visibility timeout sits above it."""
HARD_LIMIT_GRACE_SECONDS = 15
VISIBILITY_TIMEOUT_SECONDS = 3600
PRIORITY_STEPS = list(range(10))


def broker_priority(priority: int) -> int:
    """Our priorities run 0 (lowest) to 9 (highest); kombu's Redis lists pop 0 first."""
    return 9 - max(0, min(9, priority))


def build_config(settings: Settings) -> dict[str, Any]:
    if settings.redis_url is None:
        raise ConfigurationError(
            f"{ENV_PREFIX}REDIS_URL is not set: set it, or call "
            "workers.embedded.resolve_servers() first to join (or start) the embedded servers "
            f"of {ENV_PREFIX}DATA_DIR, as the toolbox commands do"
        )
    exchange = Exchange("toolbox", type="direct")
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "queue_order_strategy": "priority",
            "priority_steps": PRIORITY_STEPS,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "health_check_interval": 25,
        },
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0.2,
            "interval_step": 0.4,
            "interval_max": 1.0,
        },
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": 1000,
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "task_track_started": True,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_serializer": "json",
        "accept_content": ["json"],
        "enable_utc": True,
        "timezone": "UTC",
        "task_default_queue": MAINTENANCE_QUEUE,
        "task_default_exchange": "toolbox",
        "task_default_priority": broker_priority(5),
        "task_queues": [Queue(name, exchange, routing_key=name) for name in QUEUES],
        "task_routes": {
            "toolbox.agent.*": {"queue": AGENT_QUEUE, "routing_key": AGENT_QUEUE},
            # an exact name wins over the patterns
            "toolbox.lms.drain_passbacks": {"queue": PASSBACK_QUEUE, "routing_key": PASSBACK_QUEUE},
            "toolbox.lms.*": {"queue": LMS_QUEUE, "routing_key": LMS_QUEUE},
            "toolbox.maintenance.*": {"queue": MAINTENANCE_QUEUE, "routing_key": MAINTENANCE_QUEUE},
        },
        "beat_schedule": beat_schedule(),
        "beat_scheduler": "workers.beat_scheduler:Scheduler",  # creates the schedule's folder
        "beat_max_loop_interval": 30,
    }
