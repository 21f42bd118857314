"""Learning-environment workflows on real worker processes."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from agents import workflow as flow
from agents.hotpath import _WORKFLOW_LOCK
from agents.leases import agent_key
from agents.luau import check_luau
from models.errors import ValidationFailed
from tests.integration.test_cli import toolbox
from tests.integration.test_engine import set_agent
from tests.workers import StartWorker, wait_for
from workers import client, workflows

pytestmark = pytest.mark.worker

REQUEST = {
    "subject": "science",
    "grade_level": 6,
    "topic": "volcanoes",
    "learning_objectives": ["Explain why volcanoes erupt", "Compare shield and cinder cones"],
    "duration_minutes": 40,
}


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def artifact_counts(engine: Engine, workflow_id: uuid.UUID) -> dict[str, int]:
    queries = {
        "content": "SELECT count(*) FROM educational_content WHERE workflow_id = :w",
        "quizzes": "SELECT count(*) FROM quizzes q JOIN educational_content c"
        " ON c.id = q.content_id WHERE c.workflow_id = :w",
        "terrain": "SELECT count(*) FROM roblox_terrain t JOIN educational_content c"
        " ON c.id = t.content_id WHERE c.workflow_id = :w",
        "scripts": "SELECT count(*) FROM roblox_scripts s JOIN educational_content c"
        " ON c.id = s.content_id WHERE c.workflow_id = :w",
        "objectives": "SELECT count(*) FROM content_objectives o JOIN educational_content c"
        " ON c.id = o.content_id WHERE c.workflow_id = :w",
    }
    return {name: int(scalar(engine, sql, w=workflow_id)) for name, sql in queries.items()}


def child(workflow_id: uuid.UUID, agent_type: str) -> uuid.UUID:
    """The id of the workflow's task of ``agent_type``, once the supervisor has written it."""
    found: list[uuid.UUID] = []

    def written() -> bool:
        found[:] = [t.id for t in workflows.get(workflow_id).tasks if t.agent_type == agent_type]
        return bool(found)

    wait_for(written, 60)
    return found[0]


def siblings_done(workflow_id: uuid.UUID, *agent_types: str) -> None:
    """Wait until the workflow's tasks of ``agent_types`` have completed."""
    wait_for(
        lambda: all(status_of(child(workflow_id, kind)) == "completed" for kind in agent_types), 60
    )


def status_of(task_id: uuid.UUID) -> str:
    return client.get_task(task_id, states=False).status


@contextmanager
def held_slot(engine: Engine, agent_type: str) -> Iterator[Connection]:
    """The agent's only concurrency slot, held by the test: its tasks wait ``queued``.

    ``release`` hands it back while the ``with`` block goes on.
    """
    set_agent(engine, agent_type, max_concurrent_tasks=1)
    with engine.connect() as connection:
        agent_id = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = :t"), {"t": agent_type}
        ).scalar_one()
        connection.execute(text("SELECT pg_advisory_lock(:a, 0)"), {"a": agent_key(agent_id)})
        connection.commit()
        yield connection


def release(slot: Connection) -> None:
    slot.execute(text("SELECT pg_advisory_unlock_all()"))
    slot.commit()


@contextmanager
def stuck_after_first_phase(
    engine: Engine, slot: Connection, task_id: uuid.UUID, workflow_id: uuid.UUID
) -> Iterator[None]:
    """Let the task start (``slot`` released), then hold it after its first phase.

    The test writes the first phase's state right after the claim, so the
    runner's own write finds it taken and redoes it under the workflow's lock
    (``agents.hotpath``), which the test holds until the block exits.  The
    task stays ``running`` meanwhile, holding no lock on its row, as between
    two phases.
    """
    with engine.connect() as lock, engine.connect() as state:
        lock.exec_driver_sql(_WORKFLOW_LOCK, {"workflow": workflow_id})
        state.execute(
            text(
                "INSERT INTO agent_states (task_id, agent_id, workflow_id, state_type,"
                " state_data, sequence_number) SELECT id, agent_id, workflow_id, 'situation',"
                " '{}', 1000 FROM agent_tasks WHERE id = :id"
            ),
            {"id": task_id},
        )
        release(slot)
        wait_for(lambda: status_of(task_id) == "running", 30)
        state.commit()  # after the claim, which thus did not count the phase as done
        waiting = (
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted"
        )
        # at least one: a sibling of the same workflow that loses a sequence race waits on
        # the same lock (CI saw two waiters); the task cannot pass its first phase either way
        wait_for(lambda: scalar(engine, waiting) >= 1, 30)
        try:
            yield
        finally:
            lock.rollback()


def stored(engine: Engine, workflow_id: uuid.UUID) -> int:
    """Rows of the workflow's environment (nothing of a failed or cancelled one)."""
    return int(
        scalar(
            engine, "SELECT count(*) FROM educational_content WHERE workflow_id = :w", w=workflow_id
        )
    )


def test_a_request_becomes_a_complete_reviewed_environment(
    start_worker: StartWorker, engine: Engine
) -> None:
    start_worker()
    workflow_id = workflows.generate(REQUEST)
    view = workflows.wait(workflow_id, timeout=90)
    assert view.status == "completed", view.error
    assert sorted(t.agent_type for t in view.tasks) == [
        "content",
        "quiz",
        "review",
        "script",
        "supervisor",
        "terrain",
    ]
    counts = artifact_counts(engine, workflow_id)
    assert counts["content"] == 1 and counts["quizzes"] == 1 and counts["terrain"] == 1
    assert counts["scripts"] >= 1 and counts["objectives"] >= 2
    content_id = view.artifacts["content_id"]
    with engine.connect() as connection:
        content = connection.execute(
            text(
                "SELECT status, subject, grade_level, content_data, version FROM"
                " educational_content WHERE id = :id"
            ),
            {"id": content_id},
        ).one()
        assert (content.status, content.subject, content.grade_level) == ("ready", "science", 6)
        assert "volcano" in str(content.content_data).lower()
        choice = connection.execute(
            text(
                "SELECT q.id, count(o.id) FILTER (WHERE o.is_correct) AS correct, q.explanation"
                " FROM quiz_questions q LEFT JOIN quiz_options o ON o.question_id = q.id"
                " WHERE q.question_type = 'multiple_choice' GROUP BY q.id"
            )
        ).all()
        assert choice and all(row.correct == 1 and row.explanation for row in choice)
        scripts = connection.execute(text("SELECT content, tested FROM roblox_scripts")).all()
        assert all(row.tested and check_luau(row.content).ok for row in scripts)
        reviewed = connection.execute(
            text(
                "SELECT count(*) FILTER (WHERE approved AND reviewed_by IS NOT NULL), count(*)"
                " FROM agent_states s JOIN agent_tasks t ON t.id = s.task_id"
                " WHERE t.context_data->>'role' = 'artifact'"
            )
        ).one()
        assert reviewed[0] == reviewed[1] == 20
        models = set(
            connection.execute(
                text(
                    "SELECT DISTINCT state_data->>'model' FROM agent_states"
                    " WHERE state_data->>'model' IS NOT NULL"
                )
            ).scalars()
        )
        assert models == {"offline:toolbox-deterministic-v1"}
        usage = dict(
            connection.execute(
                text(
                    "SELECT m.metric_type, m.metric_value FROM agent_metrics m"
                    " JOIN agent_tasks t ON t.id = m.task_id WHERE t.task_type = 'content'"
                    " AND m.metric_type IN ('tokens_input', 'tokens_output', 'model_latency')"
                )
            ).all()
        )
        assert set(usage) == {"tokens_input", "tokens_output", "model_latency"}
        assert all(value > 0 for value in usage.values())


def test_an_invalid_request_is_refused_and_writes_nothing(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    with pytest.raises(ValidationFailed) as error:
        workflows.generate({**REQUEST, "grade_level": 13, "accessibility": ["telepathy"]})
    assert "grade_level" in error.value.message and "accessibility" in error.value.message
    assert scalar(engine, "SELECT count(*) FROM agent_tasks") == 0


def test_a_script_that_does_not_parse_is_revised_before_it_is_stored(
    start_worker: StartWorker, engine: Engine
) -> None:
    start_worker(extra_env={"TOOLBOX_AGENT_MODELS": "script=offline:unparseable-scripts"})
    workflow_id = workflows.generate(REQUEST)
    view = workflows.wait(workflow_id, timeout=90)
    assert view.status == "completed", view.error
    with engine.connect() as connection:
        repair = connection.execute(
            text(
                "SELECT s.state_data->'output'->'repair' FROM agent_states s JOIN agent_tasks t"
                " ON t.id = s.task_id WHERE t.task_type = 'script' AND s.state_type = 'result'"
            )
        ).scalar_one()
        assert repair["attempted"] is True and repair["errors_before"]
        scripts = connection.execute(text("SELECT content FROM roblox_scripts")).scalars().all()
    assert scripts and all(check_luau(source).ok for source in scripts)


def broken_terrain_model(folder: Path) -> dict[str, str]:
    """A worker environment whose terrain model fails for good at its first call.

    The provider's package is there (a worker checks that at start) but does
    not import, as after a broken install: building the model is a
    ``ConfigurationError``, a permanent failure.
    """
    package = folder / "langchain_ollama"
    package.mkdir()
    (package / "__init__.py").write_text('raise ImportError("a broken install")\n')
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"TOOLBOX_AGENT_MODELS": "terrain=ollama:model-x", "PYTHONPATH": path}


def test_a_failed_child_fails_the_workflow_and_nothing_is_marked_ready(
    start_worker: StartWorker, engine: Engine, tmp_path: Path
) -> None:
    start_worker(extra_env=broken_terrain_model(tmp_path))
    workflow_id = workflows.generate(REQUEST)
    view = workflows.wait(workflow_id, timeout=90)
    assert view.status == "failed"
    assert view.error is not None and "terrain task failed" in view.error
    # "failed" is final at once; a sibling still running stops at its next phase boundary
    wait_for(lambda: workflows.get(workflow_id).settled, 30)
    view = workflows.get(workflow_id)
    assert view.status == "failed"
    siblings = [t for t in view.tasks if t.agent_type not in {"supervisor", "terrain"}]
    assert sorted(t.agent_type for t in siblings) == ["content", "quiz", "script"]
    assert all(t.status in {"completed", "cancelled"} for t in siblings)
    assert scalar(engine, "SELECT count(*) FROM educational_content") == 0


def test_a_workflow_fails_at_once_while_a_sibling_runs_and_that_sibling_stores_nothing(
    start_worker: StartWorker, engine: Engine, tmp_path: Path
) -> None:
    """The failure is reported before a running sibling stops; it stops at its next phase.

    Quiz and script finish first: with content stuck in one of the worker's
    two processes, a sibling losing a sequence race would wait on the lock the
    test holds in the other, and terrain would never get a process to fail in.
    """
    with held_slot(engine, "content") as content_slot, held_slot(engine, "terrain") as terrain_slot:
        start_worker(extra_env=broken_terrain_model(tmp_path))
        workflow_id = workflows.generate(REQUEST)
        content, terrain = child(workflow_id, "content"), child(workflow_id, "terrain")
        siblings_done(workflow_id, "quiz", "script")
        with stuck_after_first_phase(engine, content_slot, content, workflow_id):
            release(terrain_slot)  # terrain fails for good: the workflow fails
            view = workflows.wait(workflow_id, timeout=30)
            assert view.status == "failed" and status_of(terrain) == "failed"
            assert view.error is not None and "terrain task failed" in view.error
            running = client.get_task(content)
            assert running.status == "running" and running.cancel_requested_at is not None
            assert not view.settled
        wait_for(lambda: workflows.get(workflow_id).settled, 30)
    view = workflows.get(workflow_id)
    assert view.status == "failed"
    stopped = client.get_task(content)
    assert stopped.status == "cancelled" and 1 <= len(stopped.states) < 5
    assert "review" not in {t.agent_type for t in view.tasks}
    assert stored(engine, workflow_id) == 0


def test_cancelling_a_waiting_child_ends_its_workflow_at_once(
    start_worker: StartWorker, engine: Engine, toolbox_env: dict[str, str]
) -> None:
    with held_slot(engine, "content"):
        start_worker()
        workflow_id = workflows.generate(REQUEST)
        content = child(workflow_id, "content")
        siblings_done(workflow_id, "quiz", "terrain", "script")
        assert status_of(content) == "queued"  # waiting for the content slot
        cancelled = toolbox("task", "cancel", str(content), env=toolbox_env)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.strip() == f"{content} cancelled"
        view = workflows.wait(workflow_id, timeout=10)
        assert view.status == "cancelled" and view.settled
        assert view.error == "content task cancelled: cancelled before it started"
    # the slot is free again: the task's message comes back, and it must not run
    other = workflows.generate({**REQUEST, "topic": "earthquakes"})
    assert workflows.wait(other, timeout=90).status == "completed"
    never = client.get_task(content)
    assert never.status == "cancelled" and never.started_at is None and never.states == []
    shown = toolbox("workflow", "show", str(workflow_id)[:8], "--json", env=toolbox_env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "cancelled"
    again = toolbox("workflow", "cancel", str(workflow_id), env=toolbox_env)
    assert again.returncode == 0 and "was already cancelled" in again.stdout
    assert stored(engine, workflow_id) == 0


def test_cancelling_a_running_child_ends_its_workflow_at_its_next_phase(
    start_worker: StartWorker, engine: Engine
) -> None:
    with held_slot(engine, "content") as slot:
        start_worker()
        workflow_id = workflows.generate(REQUEST)
        content = child(workflow_id, "content")
        with stuck_after_first_phase(engine, slot, content, workflow_id):
            asked = client.cancel(content)
            assert asked.status == "running" and asked.cancel_requested_at is not None
            assert workflows.get(workflow_id).status == "running"
        view = workflows.wait(workflow_id, timeout=30)
    assert view.status == "cancelled"
    assert view.error is not None and view.error.startswith(
        "content task cancelled: cancelled after"
    )
    wait_for(lambda: workflows.get(workflow_id).settled, 30)
    stopped = client.get_task(content)
    assert stopped.status == "cancelled" and 1 <= len(stopped.states) < 5
    assert stored(engine, workflow_id) == 0


def test_a_cancelled_workflow_never_runs(start_worker: StartWorker, engine: Engine) -> None:
    workflow_id = workflows.generate(REQUEST)
    assert workflows.cancel(workflow_id).status == "cancelled"
    start_worker()
    other = workflows.generate({**REQUEST, "topic": "earthquakes"})
    assert workflows.wait(other, timeout=90).status == "completed"
    view = workflows.get(workflow_id)
    assert view.status == "cancelled" and [t.status for t in view.tasks] == ["cancelled"]
    assert (
        scalar(
            engine, "SELECT count(*) FROM educational_content WHERE workflow_id = :w", w=workflow_id
        )
        == 0
    )


@pytest.mark.slow
def test_a_worker_killed_mid_workflow_resumes_without_duplicate_artifacts(
    start_worker: StartWorker, engine: Engine
) -> None:
    first = start_worker(concurrency=1)
    workflow_id = workflows.generate(REQUEST)
    wait_for(lambda: workflows.get(workflow_id).stage in {"building", "reviewing"}, 30, 0.002)
    first.kill()
    assert not workflows.get(workflow_id).finished
    start_worker(beat=True, extra_env={"TOOLBOX_REDISPATCH_AFTER_SECONDS": "2"})
    view = workflows.wait(workflow_id, timeout=120)
    assert view.status == "completed", view.error
    assert artifact_counts(engine, workflow_id)["content"] == 1
    assert artifact_counts(engine, workflow_id)["quizzes"] == 1
    assert len(view.tasks) == 6
    per_task = scalar(
        engine,
        "SELECT max(n) FROM (SELECT count(*) AS n FROM agent_states"
        " GROUP BY task_id, state_type) x",
    )
    assert per_task == 1


def test_a_workflow_ended_while_a_task_completes_does_not_deadlock(
    start_worker: StartWorker, engine: Engine
) -> None:
    """Whoever ends a workflow locks its root first, then its tasks; a completion does too.

    A completion that locked its own row first and then waited for the root
    deadlocked with the transaction ending the workflow, which held the root
    and waited for that row; PostgreSQL then aborted one of them.  The other
    children finish first: completions of theirs waiting for the root would
    hold both of the worker's processes and leave none for the quiz.
    """
    with held_slot(engine, "quiz") as slot:
        start_worker()
        workflow_id = workflows.generate(REQUEST)
        quiz = child(workflow_id, "quiz")
        siblings_done(workflow_id, "content", "terrain", "script")
        with engine.connect() as ending:
            ending.execute(
                text("SELECT id FROM agent_tasks WHERE id = :id FOR UPDATE"), {"id": workflow_id}
            )
            ending_pid = ending.execute(text("SELECT pg_backend_pid()")).scalar_one()
            release(slot)
            blocked = (
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE CAST(:pid AS int) = ANY(pg_blocking_pids(pid))"
            )
            running = "SELECT array_agg(id) FROM agent_tasks WHERE status = 'running'"
            phases = "SELECT count(*) FROM agent_states WHERE task_id = :id"

            def completion_waits() -> bool:
                """The quiz, the only task running, ran its five phases and waits for the root."""
                return (
                    scalar(engine, phases, id=quiz) == 5
                    and scalar(engine, running) == [quiz]
                    and scalar(engine, blocked, pid=ending_pid) == 1
                )

            wait_for(completion_waits, 30)
            assert flow.cancel(ending, workflow_id)
            ending.commit()
    view = workflows.wait(workflow_id, timeout=30)
    assert view.status == "cancelled"
    wait_for(lambda: workflows.get(workflow_id).settled, 30)
    done = client.get_task(quiz)
    assert done.status == "completed", done.error_message
    assert done.retry_count == 0 and done.error_details is None
    assert stored(engine, workflow_id) == 0


def test_a_child_the_reaper_fails_for_crash_looping_ends_its_workflow(
    start_worker: StartWorker, engine: Engine
) -> None:
    from agents import recovery

    with held_slot(engine, "content"):
        start_worker()
        workflow_id = workflows.generate(REQUEST)
        content = child(workflow_id, "content")
        wait_for(lambda: status_of(content) == "queued", 60)
        # as the reaper finds it: left running by workers that all died, at its delivery limit
        with engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE agent_tasks SET status = 'running', started_at = now(),"
                    " delivery_count = 5 WHERE id = :id"
                ),
                {"id": content},
            )
        runs: list[recovery.Recovered] = []

        def reaped() -> bool:
            """The worker may hold the task's lease a moment longer (its slot-wait delivery):
            the reaper then leaves the row for its next run, as beat's would."""
            with engine.connect() as lease_connection, engine.begin() as connection:
                lease = lease_connection.execution_options(isolation_level="AUTOCOMMIT")
                runs.append(recovery.orphans(connection, lease, max_deliveries=5))
            return bool(runs[-1].failed)

        wait_for(reaped, 10, interval=0.2)
        found = runs[-1]
        assert found.failed == [content]
        view = workflows.wait(workflow_id, timeout=30)
    assert view.status == "failed"
    assert "worker died 5 times" in (view.error or "")
    assert status_of(content) == "failed"
    assert stored(engine, workflow_id) == 0
