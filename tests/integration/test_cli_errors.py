"""What a new user hits on the command line: setup errors, id prefixes, filters, cancel, timings.

Every check runs the real ``toolbox`` command against the test servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.exc import IntegrityError

from models.agents import TASK_STATUSES
from models.errors import WaitTimeout
from tests.integration.ops_support import free_port
from tests.integration.test_cli import TOOLBOX, toolbox
from workers import migrate, workflows
from workers.cli.failures import explain
from workers.cli.lookup import format_seconds
from workers.settings import get_settings

CLOSED_PORT_URL = "postgresql://someone:sekret-pw@127.0.0.1:1/toolbox"
CLOSED_REDIS_URL = "redis://:sekret-pw@127.0.0.1:1/0"


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exit status 2 and one ``error:`` line, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def add_task(
    db: Engine,
    task_id: str,
    *,
    agent: str = "echo",
    status: str = "pending",
    parent: uuid.UUID | None = None,
) -> None:
    """A task row with a chosen id (a workflow root when ``agent`` is the supervisor).

    With a ``parent`` (a workflow's root), a child in that workflow.
    """
    with db.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO agent_tasks (id, agent_id, parent_task_id, workflow_id, task_type,"
                " task_name, input_data, status) SELECT :id, id, :parent,"
                " coalesce(CAST(:parent AS uuid), :id), agent_type, 'test', '{}', :status"
                " FROM ai_agents WHERE agent_type = :agent"
            ),
            {"id": task_id, "agent": agent, "status": status, "parent": parent},
        )


def finish(db: Engine, task_id: str, *, status: str = "completed", ms: int = 6) -> None:
    """Mark a task finished ``ms`` milliseconds after it started, as a worker writes it."""
    with db.begin() as connection:
        connection.execute(
            text(
                "UPDATE agent_tasks SET status = :status, started_at = now(),"
                " completed_at = now() + make_interval(secs => :ms / 1000.0),"
                " duration_seconds = ceil(:ms / 1000.0)::int WHERE id = :id"
            ),
            {"id": task_id, "status": status, "ms": ms},
        )


# 1. no schema -------------------------------------------------------------------------


def test_database_without_schema_says_run_migrate(empty_database_url: str, redis_url: str) -> None:
    env = {"TOOLBOX_DATABASE_URL": empty_database_url, "TOOLBOX_REDIS_URL": redis_url}
    for command in (("task", "submit", "echo"), ("task", "list"), ("status",)):
        line = one_error_line(toolbox(*command, env=env))
        assert "has no schema yet" in line and "toolbox migrate" in line, line
        assert 'relation "' in line
    assert toolbox("migrate", env=env).returncode == 0
    assert toolbox("task", "list", env=env).returncode == 0


def test_outdated_schema_names_both_revisions(db: Engine, toolbox_env: dict[str, str]) -> None:
    with db.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0002'"))
        connection.execute(text("ALTER TABLE agent_tasks DROP COLUMN delivery_count"))
    line = one_error_line(toolbox("task", "list", env=toolbox_env))
    head = migrate.head_revision()
    assert f"has an outdated schema (revision 0002, this code needs {head})" in line, line
    assert "toolbox migrate" in line


def test_a_command_that_works_at_an_older_schema_warns_once_as_it_ends(
    db: Engine, toolbox_env: dict[str, str]
) -> None:
    """New code deployed without ``toolbox migrate``: commands went on without a word."""
    with db.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    result = toolbox("task", "list", env=toolbox_env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: the database {db.url.database} is at schema revision 0007, this code needs"
        f" {migrate.head_revision()}: run `toolbox migrate`; until then tasks and commands may"
        " fail or write what the code does not expect"
    ]


def test_a_read_only_database_is_one_line(db: Engine, toolbox_env: dict[str, str]) -> None:
    """A database that refuses writes (a hot standby, ``default_transaction_read_only``)."""
    name = db.url.database
    with db.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        connection.commit()
    line = one_error_line(toolbox("task", "submit", "echo", env=toolbox_env))
    where = f"{db.url.host}:{db.url.port}" if db.url.host else f"socket {db.url.query['host']}"
    assert line == (
        f"error: the database {name} at {where} refuses writes"
        " (cannot execute SELECT in a read-only transaction): it is read-only (a standby,"
        " or default_transaction_read_only is on); point TOOLBOX_DATABASE_URL at a"
        " writable primary"
    ), line
    assert toolbox("task", "list", env=toolbox_env).returncode == 0  # reading still works


def every_revision() -> str:
    """``0001, 0002, ... (head)``: every migration's revision, oldest first."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config("postgresql://"))
    head = scripts.get_current_head()
    revisions = sorted(script.revision for script in scripts.walk_revisions())
    return ", ".join(
        f"{revision} (head)" if revision == head else revision for revision in revisions
    )


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        ("bogus", "Can't locate revision identified by 'bogus'"),
        ("+5", "Relative revision +5 didn't produce 5 migrations"),
        ("0001:0002", "Range revision not allowed"),
        ("", "no revision given"),
    ],
)
def test_migrate_to_an_unknown_revision_is_one_line(
    toolbox_env: dict[str, str], revision: str, expected: str
) -> None:
    """It was Alembic's traceback (96 lines) and exit status 1."""
    line = one_error_line(toolbox("migrate", revision, env=toolbox_env))
    assert line.startswith(
        f"error: toolbox migrate: REVISION: cannot migrate to {revision!r}: {expected}"
    ), line
    assert line.endswith(f"revisions: {every_revision()}, or head"), line


@pytest.mark.slow
def test_fresh_embedded_database_points_at_the_data_dir(tmp_path: Path, redis_url: str) -> None:
    """The user ran a command from a folder with no ``.toolbox``: a new, empty server starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBOX_")}
    elsewhere = tmp_path / "another-folder"
    elsewhere.mkdir()
    result = subprocess.run(
        [TOOLBOX, "task", "submit", "echo"],
        env={**env, "TOOLBOX_REDIS_URL": redis_url}, cwd=elsewhere, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    line = one_error_line(result)
    assert f"the embedded database in {elsewhere / '.toolbox'} has no schema yet" in line, line
    assert "TOOLBOX_DATA_DIR" in line and "toolbox migrate" in line


# 2. servers unreachable ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("task", "list"),
        ("task", "submit", "echo"),
        ("status",),
        ("migrate",),
        ("db", "check"),
        ("workflow", "show", str(uuid.uuid4())),
        ("up",),
    ],
)
def test_unreachable_postgres_is_one_line_without_the_password(
    command: tuple[str, ...], redis_url: str
) -> None:
    # a free Flower port for ``up``: one on the default port (a stack running on this
    # machine) would be its refusal instead
    result = toolbox(*command, env={"TOOLBOX_DATABASE_URL": CLOSED_PORT_URL,
                                    "TOOLBOX_REDIS_URL": redis_url,
                                    "TOOLBOX_FLOWER_PORT": str(free_port())})  # fmt: skip
    line = one_error_line(result)
    assert line == (
        "error: cannot connect to PostgreSQL at 127.0.0.1:1 (connection refused); "
        "check TOOLBOX_DATABASE_URL"
    )
    assert "sekret-pw" not in result.stdout + result.stderr


def up_that_should_not_start(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``toolbox up [args]``; if it starts the stack anyway, stop the whole group and fail.

    Flower gets a free port: a Flower already on the default one (another stack on this
    machine) would be the refusal instead of the one the test looks for."""
    env = {"TOOLBOX_FLOWER_PORT": str(free_port()), **env}
    up = subprocess.Popen(
        [TOOLBOX, "up", *args], env={**os.environ, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = up.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(up.pid, signal.SIGTERM)
        stdout, stderr = up.communicate(timeout=60)
        raise AssertionError(f"toolbox up started:\n{stdout[-2000:]}\n{stderr[-2000:]}") from None
    return subprocess.CompletedProcess(up.args, up.returncode, stdout, stderr)


def test_up_with_redis_unreachable_starts_and_migrates_nothing(
    empty_database_url: str, tmp_path: Path
) -> None:
    result = up_that_should_not_start(
        {"TOOLBOX_DATABASE_URL": empty_database_url, "TOOLBOX_REDIS_URL": CLOSED_REDIS_URL,
         "TOOLBOX_DATA_DIR": str(tmp_path / "data")}
    )  # fmt: skip
    assert one_error_line(result) == (
        "error: cannot connect to Redis at 127.0.0.1:1 (connection refused); "
        "check TOOLBOX_REDIS_URL"
    )
    assert result.stdout == ""  # not even the banner: nothing started
    assert "sekret-pw" not in result.stdout + result.stderr
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        tables = connection.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        )
        assert tables.scalar_one() == 0  # checked before migrating
    engine.dispose()


def test_up_names_both_servers_when_neither_answers(tmp_path: Path) -> None:
    result = up_that_should_not_start(
        {"TOOLBOX_DATABASE_URL": CLOSED_PORT_URL, "TOOLBOX_REDIS_URL": CLOSED_REDIS_URL,
         "TOOLBOX_DATA_DIR": str(tmp_path / "data")}
    )  # fmt: skip
    assert one_error_line(result) == (
        "error: cannot connect to PostgreSQL at 127.0.0.1:1 (connection refused); "
        "check TOOLBOX_DATABASE_URL, and cannot connect to Redis at 127.0.0.1:1 "
        "(connection refused); check TOOLBOX_REDIS_URL"
    )
    assert "sekret-pw" not in result.stdout + result.stderr


def test_up_refuses_an_agent_model_it_cannot_build_before_anything_starts(
    tmp_path: Path,
) -> None:
    result = up_that_should_not_start(
        {"TOOLBOX_DATABASE_URL": CLOSED_PORT_URL, "TOOLBOX_REDIS_URL": CLOSED_REDIS_URL,
         "TOOLBOX_DATA_DIR": str(tmp_path / "data"), "TOOLBOX_DEFAULT_MODEL": "nosuchprov:x"},
        "--processes", "agents,beat",
    )  # fmt: skip
    assert one_error_line(result).startswith(
        "error: TOOLBOX_DEFAULT_MODEL: unknown model provider 'nosuchprov'; langchain knows: "
    )
    assert result.stdout == ""
    # a stack without agent workers builds no model: its refusal is about the servers
    result = up_that_should_not_start(
        {"TOOLBOX_DATABASE_URL": CLOSED_PORT_URL, "TOOLBOX_REDIS_URL": CLOSED_REDIS_URL,
         "TOOLBOX_DATA_DIR": str(tmp_path / "data"), "TOOLBOX_DEFAULT_MODEL": "nosuchprov:x"},
        "--processes", "beat",
    )  # fmt: skip
    assert one_error_line(result).startswith("error: cannot connect to PostgreSQL")


def test_unresolvable_postgres_host(redis_url: str) -> None:
    url = "postgresql://someone:sekret-pw@no-such-host.invalid:5432/toolbox"
    result = toolbox("task", "list", env={"TOOLBOX_DATABASE_URL": url,
                                          "TOOLBOX_REDIS_URL": redis_url})  # fmt: skip
    assert one_error_line(result) == (
        "error: cannot connect to PostgreSQL at no-such-host.invalid:5432 (host not found); "
        "check TOOLBOX_DATABASE_URL"
    )
    assert "sekret-pw" not in result.stdout + result.stderr


def test_status_reports_unreachable_redis_and_where(toolbox_env: dict[str, str]) -> None:
    result = toolbox("status", env={**toolbox_env, "TOOLBOX_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 0, result.stderr
    assert "unavailable" in result.stdout and "redis unreachable" in result.stdout
    assert "cannot connect to Redis at 127.0.0.1:1" in " ".join(result.stdout.split())
    assert "Traceback" not in result.stderr


def test_redis_errors_become_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``main()`` prints for a Redis error a command lets through."""
    monkeypatch.setenv("TOOLBOX_REDIS_URL", "redis://:sekret-pw@127.0.0.1:1/0")
    get_settings.cache_clear()
    client = redis.Redis(host="127.0.0.1", port=1, password="sekret-pw", socket_connect_timeout=5)
    with pytest.raises(redis.ConnectionError) as caught:
        client.ping()
    try:
        assert explain(caught.value, embedded_database=False) == (
            "cannot connect to Redis at 127.0.0.1:1 (connection refused); check TOOLBOX_REDIS_URL"
        )
        assert explain(ValueError("a bug"), embedded_database=False) is None
    finally:
        client.close()
        get_settings.cache_clear()


def test_errors_a_statement_caused_are_left_alone(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """A COMMIT that fails (no statement, like a failed connect) is a bug to show in full."""
    monkeypatch.setenv("TOOLBOX_DATABASE_URL", database_url)
    get_settings.cache_clear()
    with engine.connect() as connection:
        connection.execute(text("CREATE TEMP TABLE p (id int PRIMARY KEY)"))
        connection.execute(
            text("CREATE TEMP TABLE c (p int REFERENCES p DEFERRABLE INITIALLY DEFERRED)")
        )
        connection.commit()
        connection.execute(text("INSERT INTO c VALUES (1)"))
        with pytest.raises(IntegrityError) as caught:
            connection.commit()
    assert caught.value.statement is None
    assert explain(caught.value, embedded_database=False) is None
    get_settings.cache_clear()


# 3. id prefixes -----------------------------------------------------------------------


def test_task_commands_take_a_unique_id_prefix(db: Engine, toolbox_env: dict[str, str]) -> None:
    first, second = "abcd1111-0000-4000-8000-000000000001", "abcd2222-0000-4000-8000-000000000002"
    add_task(db, first)
    add_task(db, second)
    shown = toolbox("task", "show", "abcd1111", "--json", env=toolbox_env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == first
    assert toolbox("task", "show", first, env=toolbox_env).returncode == 0
    # without dashes, past the first 8 digits (as uuid.hex prints it): used to be "no task"
    undashed = toolbox("task", "show", "abcd111100004000", "--json", env=toolbox_env)
    assert undashed.returncode == 0, undashed.stderr
    assert json.loads(undashed.stdout)["id"] == first
    ambiguous = one_error_line(toolbox("task", "show", "abcd", env=toolbox_env))
    assert "'abcd' matches several tasks" in ambiguous
    assert first in ambiguous and second in ambiguous
    missing = one_error_line(toolbox("task", "cancel", "0123abcd", env=toolbox_env))
    assert missing == "error: no task id starts with '0123abcd'"
    too_short = one_error_line(toolbox("task", "show", "abc", env=toolbox_env))
    assert "prefix of 4+ hex characters" in too_short
    cancelled = toolbox("task", "cancel", "abcd2222-", env=toolbox_env)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{second} cancelled"


def test_workflow_commands_take_a_unique_id_prefix(db: Engine, toolbox_env: dict[str, str]) -> None:
    generated = toolbox(
        "workflow", "generate", "--subject", "science", "--grade", "6", "--topic", "volcanoes",
        env=toolbox_env,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    workflow_id = generated.stdout.strip()
    add_task(db, workflow_id[:8] + "-0000-4000-8000-000000000009")  # a task, not a workflow
    shown = toolbox("workflow", "show", workflow_id[:8], "--json", env=toolbox_env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == workflow_id
    cancelled = toolbox("workflow", "cancel", workflow_id[:8], env=toolbox_env)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{workflow_id} cancelled"
    again = toolbox("workflow", "cancel", workflow_id[:8], env=toolbox_env)
    assert again.returncode == 0 and "was already cancelled" in again.stdout
    missing = one_error_line(toolbox("workflow", "show", "ffff0000", env=toolbox_env))
    assert missing == "error: no workflow id starts with 'ffff0000'"


def test_a_long_bad_id_is_cut_at_50_characters(toolbox_env: dict[str, str]) -> None:
    """A pasted paragraph given as an id is repeated cut, as other values given are.

    One command per way in (every command taking an id resolves it by ``models.ids``).
    """
    for command in (("task", "cancel"), ("workflow", "show"), ("lms", "disable"), ("lms", "sync")):
        line = one_error_line(toolbox(*command, "x" * 100, env=toolbox_env))
        assert line.endswith(f"hex characters): '{'x' * 50}'..."), (command, line)
    dashed = "abcd" + "-" * 96  # hex enough for a prefix; nothing starts with it
    missing = one_error_line(toolbox("task", "show", dashed, env=toolbox_env))
    assert missing == f"error: no task id starts with '{dashed[:50]}'..."


def test_a_workflow_that_has_not_started_is_pending(
    db: Engine, toolbox_env: dict[str, str]
) -> None:
    """No worker runs: the library, its JSON and the CLI all say pending, not running."""
    workflow_id = workflows.generate({"subject": "science", "grade_level": 6, "topic": "volcanoes"})
    view = workflows.get(workflow_id)
    assert (view.status, view.summary, view.finished) == ("pending", "pending (not started)", False)
    with pytest.raises(WaitTimeout, match=r"still pending \(not started\) after 0.2s"):
        workflows.wait(workflow_id, timeout=0.2)
    shown = toolbox("workflow", "show", str(workflow_id), "--json", env=toolbox_env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "pending"
    tree = toolbox("workflow", "show", str(workflow_id), env=toolbox_env)
    assert tree.stdout.splitlines()[0] == f"workflow {workflow_id} pending (not started)"
    cancelled = toolbox("workflow", "cancel", str(workflow_id), env=toolbox_env)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{workflow_id} cancelled"
    assert workflows.get(workflow_id).status == "cancelled"


# 4. list filters ----------------------------------------------------------------------


def test_task_list_rejects_unknown_status_and_agent(
    db: Engine, toolbox_env: dict[str, str]
) -> None:
    with db.connect() as connection:
        constraint = connection.execute(
            text("SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                 " WHERE conname = 'ck_agent_tasks_status'")
        ).scalar_one()  # fmt: skip
    assert all(f"'{status}'" in constraint for status in TASK_STATUSES)
    assert constraint.count("'") == 2 * len(TASK_STATUSES)
    status = one_error_line(toolbox("task", "list", "--status", "bogus", env=toolbox_env))
    assert status == (
        f"error: toolbox task list: --status: unknown status 'bogus'; valid: "
        f"{', '.join(TASK_STATUSES)}"
    )
    agent = one_error_line(toolbox("task", "list", "--agent", "painter", env=toolbox_env))
    assert agent.startswith("error: toolbox task list: --agent: unknown agent 'painter'; known: ")
    assert "echo" in agent
    add_task(db, str(uuid.uuid4()), status="failed")
    listed = toolbox("task", "list", "--status", "failed", "--agent", "echo", "--json",
                     env=toolbox_env)  # fmt: skip
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1


# 5. cancelling a finished task ----------------------------------------------------------


def test_cancel_of_a_finished_task_says_nothing_was_cancelled(
    db: Engine, toolbox_env: dict[str, str]
) -> None:
    task_id = str(uuid.uuid4())
    add_task(db, task_id)
    finish(db, task_id)
    result = toolbox("task", "cancel", task_id, env=toolbox_env)
    assert result.returncode == 1
    assert result.stdout.strip() == (
        f"{task_id} completed (had already finished; nothing was cancelled)"
    )
    shown = toolbox("task", "show", task_id, "--json", env=toolbox_env)
    assert json.loads(shown.stdout)["status"] == "completed"


# 6. precise duration ---------------------------------------------------------------------


def test_task_show_gives_the_precise_duration(db: Engine, toolbox_env: dict[str, str]) -> None:
    task_id = str(uuid.uuid4())
    add_task(db, task_id)
    finish(db, task_id, ms=6)
    shown = toolbox("task", "show", task_id, env=toolbox_env)
    assert shown.returncode == 0, shown.stderr
    durations = [line.split() for line in shown.stdout.splitlines() if "duration" in line]
    assert durations == [["duration", "6", "ms"]]
    as_json = toolbox("task", "show", task_id, "--json", env=toolbox_env)
    assert json.loads(as_json.stdout)["duration_seconds"] == 1


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.006, "6 ms"), (0.0004, "0.4 ms"), (0.25, "250 ms"), (2.345, "2.35s"),
     (185.2, "3m 05.2s"), (3723, "1h 02m 03s"),
     # rounded before being split: these used to read 1000 ms, 60.00s, 1m 60.0s and 1h 00m 60s
     (0.9996, "1.00s"), (59.999, "1m 00.0s"), (119.96, "2m 00.0s"), (3599.96, "1h 00m 00s"),
     (7199.6, "2h 00m 00s")],
)  # fmt: skip
def test_durations_read_naturally(seconds: float, shown: str) -> None:
    assert format_seconds(seconds) == shown
