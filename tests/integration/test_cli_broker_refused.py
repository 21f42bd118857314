"""A Redis that answers but refuses ``TOOLBOX_REDIS_URL``'s settings: to fix, not an outage.

A database number out of range (``redis://host:6379/99``) or a wrong user or
password never comes back by itself, yet ``toolbox task submit`` said
``cannot connect to Redis ... the relay will dispatch it once the broker is
back``, exit status 0, and left a ``pending`` row behind.  Now a submit
removes the row it has just written and stops with one ``error:`` line
naming the setting (password masked) and what Redis said, as ``toolbox up``
and ``toolbox status`` do.  A Redis that is down is still an outage
(``test_cli_broker_down``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from kombu.exceptions import OperationalError
from sqlalchemy import Engine, text

from models.redaction import redact
from tests.integration.test_cli import toolbox
from tests.integration.test_cli_errors import one_error_line, up_that_should_not_start
from tests.integration.test_cli_input import task_count
from workers.redis import client_url, refusal

WORKFLOW = ("workflow", "generate", "--subject", "science", "--grade", "6", "--topic", "volcanoes")


def refusing(redis_url: str, *, userinfo: str = "", db: int = 99) -> str:
    """The test Redis's address with another database number (and user part).

    The embedded server's socket too: kombu reads a socket's database from
    ``?virtual_host=N``, which ``workers.redis.client_url`` gives redis-py as ``?db=N``.
    """
    parts = urlsplit(redis_url)
    if parts.scheme == "redis+socket":
        return f"redis+socket://{userinfo}{parts.path}?virtual_host={db}"
    if parts.scheme != "redis":
        pytest.skip("needs a redis:// or redis+socket:// test server (TOOLBOX_TEST_REDIS_URL)")
    return f"redis://{userinfo}{parts.hostname}:{parts.port or 6379}/{db}"


def test_a_submit_to_a_redis_that_refuses_its_database_is_an_error_and_saves_nothing(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    url = refusing(toolbox_env["TOOLBOX_REDIS_URL"])
    env = {**toolbox_env, "TOOLBOX_REDIS_URL": url}
    said = f"Redis refuses TOOLBOX_REDIS_URL={url} (DB index is out of range); fix the setting"
    for args in (("task", "submit", "echo"), ("task", "submit", "echo", "--wait", "--json")):
        result = toolbox(*args, env=env)
        assert one_error_line(result) == f"error: {said}; the task was not saved"
        assert result.stdout == ""
    workflow = toolbox(*WORKFLOW, env=env)  # the user asked for a workflow, not a task
    assert one_error_line(workflow) == f"error: {said}; the workflow was not saved"
    assert task_count(engine) == 0  # nothing left pending for a broker that never comes
    for args in (("status",), ("status", "--json")):
        assert one_error_line(toolbox(*args, env=env)) == f"error: {said}"
    listed = toolbox("task", "list", env=env)  # PostgreSQL only: Redis is not asked
    assert listed.returncode == 0, listed.stderr


def test_up_with_a_redis_that_refuses_its_database_starts_nothing(
    toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    url = refusing(toolbox_env["TOOLBOX_REDIS_URL"])
    result = up_that_should_not_start(
        {**toolbox_env, "TOOLBOX_REDIS_URL": url, "TOOLBOX_DATA_DIR": str(tmp_path / "up")},
        "--processes", "beat",
    )  # fmt: skip
    assert one_error_line(result) == (
        f"error: Redis refuses TOOLBOX_REDIS_URL={url} (DB index is out of range); fix the setting"
    )
    assert result.stdout == ""


def test_a_refused_login_names_the_setting_with_its_password_masked(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    url = refusing(toolbox_env["TOOLBOX_REDIS_URL"], userinfo="nobody:sekret-pw@", db=0)
    result = toolbox("task", "submit", "echo", env={**toolbox_env, "TOOLBOX_REDIS_URL": url})
    line = one_error_line(result)
    assert line.startswith(f"error: Redis refuses TOOLBOX_REDIS_URL={redact(url)} (")
    assert line.endswith("); fix the setting; the task was not saved")
    assert "nobody:***@" in line and "sekret-pw" not in result.stdout + result.stderr
    assert task_count(engine) == 0


def test_the_python_client_raises_and_keeps_no_row_on_either_insert_path(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """The direct insert (by agent type) and the checked one (by agent id) both clean up.

    The idempotency key is free afterwards: the same submit goes through once
    the setting is fixed.
    """
    with engine.connect() as connection:
        echo = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
        ).scalar_one()
    code = (
        "import uuid, sys\n"
        "from models.errors import ConfigurationError\n"
        "from workers import client\n"
        f"for agent in ('echo', uuid.UUID('{echo}')):\n"
        "    try:\n"
        "        client.submit(agent, {}, idempotency_key='lesson-1')\n"
        "    except ConfigurationError as exc:\n"
        "        print(exc.message)\n"
    )
    url = refusing(toolbox_env["TOOLBOX_REDIS_URL"])
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **toolbox_env, "TOOLBOX_REDIS_URL": url},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = f"Redis refuses TOOLBOX_REDIS_URL={url} (DB index is out of range); fix the setting"
    assert result.stdout.splitlines() == [f"{said}; the task was not saved"] * 2
    assert "relay" not in result.stderr  # it used to log that the relay would send the task
    assert task_count(engine) == 0
    from workers import client

    task_id = client.submit("echo", {}, idempotency_key="lesson-1")  # the setting fixed
    assert client.get_task(task_id).status == "queued"


def test_a_sockets_database_reaches_redis_py_as_kombu_reads_it() -> None:
    """kombu takes ``?virtual_host=N`` for a socket and ignores ``?db=N``; redis-py the reverse."""
    assert client_url("redis+socket:///run/r.sock") == "unix:///run/r.sock"
    assert client_url("redis+socket://u:pw@/run/r.sock?socket_timeout=3&virtual_host=99") == (
        "unix://u:pw@/run/r.sock?socket_timeout=3&db=99"
    )
    assert client_url("redis://host:6379/2?virtual_host=9") == "redis://host:6379/2?virtual_host=9"
    refused = redis.Redis.from_url(client_url(refusing("redis+socket:///run/r.sock")))
    assert refused.get_connection_kwargs()["db"] == 99


def test_refusals_are_told_from_outages() -> None:
    refused = OperationalError("DB index is out of range")
    refused.__cause__ = redis.ResponseError("DB index is out of range")
    assert refusal(refused) is refused.__cause__
    assert refusal(redis.AuthenticationError("invalid password")) is not None
    assert refusal(OperationalError("Error 111 connecting")) is None
    assert refusal(redis.ConnectionError("Connection refused")) is None
    assert refusal(redis.BusyLoadingError("loading")) is None
    assert refusal(redis.exceptions.NoPermissionError("NOPERM no permissions")) is not None
    assert refusal(redis.ResponseError("WRONGPASS invalid username-password pair")) is not None
    for passing in (  # answers that may pass by themselves: the task is kept for the relay
        redis.ResponseError("MISCONF Redis is configured to save RDB snapshots, but ..."),
        redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica"),
        redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > ..."),
    ):
        assert refusal(passing) is None, passing
    assert refusal(None) is None


def test_a_send_that_fails_for_no_broker_reason_saves_nothing(
    engine: Engine, toolbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error no broker raises (a bug, a setting kombu reads only when it sends) used to
    leave the row ``queued`` behind the caller's traceback: the relay sent it minutes later,
    and the caller, who got no id, had submitted it again."""
    from workers import client
    from workers.app import app

    with engine.connect() as connection:
        echo = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
        ).scalar_one()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the message could not be built")

    monkeypatch.setattr(app, "send_task", broken)
    for agent in ("echo", echo):  # the direct insert and the checked one
        with pytest.raises(RuntimeError) as error:
            client.submit(agent, {}, idempotency_key="lesson-2")
        assert error.value.__notes__ == ["the task was not saved"]
        with pytest.raises(RuntimeError):
            client.submit_many(agent, [{}, {}])
    assert task_count(engine) == 0
    monkeypatch.undo()
    task_id = client.submit("echo", {}, idempotency_key="lesson-2")  # the key was not taken
    assert client.get_task(task_id).status == "queued"
