"""Learning-environment workflows on real worker processes."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text

from agents.luau import check_luau
from models.errors import ValidationFailed
from tests.workers import StartWorker, wait_for
from workers import workflows

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


def test_a_failed_child_fails_the_workflow_and_nothing_is_marked_ready(
    start_worker: StartWorker, engine: Engine
) -> None:
    start_worker(extra_env={"TOOLBOX_AGENT_MODELS": "terrain=nosuchprovider:model-x"})
    workflow_id = workflows.generate(REQUEST)
    view = workflows.wait(workflow_id, timeout=90)
    assert view.status == "failed"
    assert view.error is not None and "terrain task failed" in view.error
    assert scalar(engine, "SELECT count(*) FROM educational_content") == 0
    assert all(t.finished for t in view.tasks)


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
