"""A server away is one log line per failed run, not a traceback every 5 s."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from tests.integration.ops_support import free_port, start_process, stop_process
from tests.integration.test_broker_restart import PrivateRedis, private_redis  # noqa: F401
from tests.workers import StartWorker, wait_for
from workers.outages import outage

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def read_only(engine: Engine) -> None:
    name = engine.url.database
    with engine.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        connection.commit()
    engine.dispose()  # the setting holds for new sessions


def records(log: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_outage_names_the_server_from_real_errors(engine: Engine) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(DBAPIError) as down:
        create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x").connect()
    assert outage(down.value) == "postgresql unavailable"
    with pytest.raises(redis.ConnectionError) as gone:
        redis.Redis(port=port).ping()
    assert outage(gone.value) == "redis unavailable"
    read_only(engine)
    with pytest.raises(DBAPIError) as refused, engine.begin() as connection:
        connection.execute(text("UPDATE ai_agents SET name = name"))
    assert outage(refused.value) == "postgresql refuses writes (read-only)"
    with (
        pytest.raises(psycopg.errors.UndefinedTable) as missing,
        psycopg.connect(
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        ) as connection,
    ):
        connection.execute("SELECT * FROM no_such_table")
    assert outage(missing.value) is None  # a bug, not an outage: its traceback stays


def test_periodic_tasks_on_a_read_only_database_log_one_line_each(
    start_worker: StartWorker, engine: Engine
) -> None:
    """The relay logged a traceback of about 30 lines every 5 s, and a second line
    saying it could not record that failure in the same database."""
    read_only(engine)
    worker = start_worker(queues="maintenance", concurrency=1, beat=True)
    wait_for(lambda: worker.log().count("raised unexpected") >= 2, timeout=90)
    failed = [r for r in records(worker.log()) if "raised unexpected" in str(r["msg"])]
    assert all(r.get("outage") == "postgresql refuses writes (read-only)" for r in failed), failed
    assert "Traceback" not in worker.log(), worker.log()[-3000:]
    assert "could not record the failure" not in worker.log()


def test_beat_logs_one_line_per_send_while_redis_is_down(
    tmp_path: Path,
    toolbox_env: dict[str, str],
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    """Each send logged ``Message Error`` with a stack and a traceback: about 75 lines."""
    env = {**os.environ, **toolbox_env, "TOOLBOX_REDIS_URL": private_redis.url}
    log_path = tmp_path / "beat.log"
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "-l", "INFO",
            "-s", str(tmp_path / "schedule")]  # fmt: skip
    beat = start_process(argv, env, log_path)
    try:
        log = lambda: log_path.read_text(errors="replace")  # noqa: E731
        wait_for(lambda: "Sending due task" in log() or beat.poll() is not None, timeout=60)
        private_redis.stop()
        wait_for(lambda: log().count("Message Error") >= 2 or beat.poll() is not None, 90)
        assert beat.poll() is None, log()[-3000:]
        errors = [r for r in records(log()) if "Message Error" in str(r["msg"])]
        assert all(r.get("outage") == "redis unavailable" for r in errors), errors
        assert all("\n" not in str(r["msg"]) for r in errors), errors
        assert "Traceback" not in log(), log()[-3000:]
    finally:
        stop_process(beat)
