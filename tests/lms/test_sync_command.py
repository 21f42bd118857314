"""``toolbox lms sync --now`` and ``lms add`` as an operator runs them (real subprocesses).

A sync stopped twice (``timeout`` signals the command, then its process group) is
recorded as stopped, and the line says what the row holds; a failed course's reason
is said once; a plain-http address is refused before anything is stored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text

from lms.sync import STOP_WRITE_SECONDS
from tests.integration.lms_support import add_canvas, integration_row, scalar
from tests.integration.test_lms_cli import TOOLBOX, toolbox
from tests.lms.fakes import Dataset, FakeCanvas
from tests.workers import wait_for

RECORDED = (
    "error: toolbox lms sync: stopped; the sync of {id} is recorded failed (interrupted);"
    " what it wrote stays, and the next sync writes only what is left"
)
NOT_RECORDED = (
    "error: toolbox lms sync: stopped; the sync of {id} could not be recorded failed: it shows"
    " running until the next `toolbox lms sync` takes it over (beat does after 15 minutes);"
    " what it wrote stays"
)


@pytest.fixture
def canvas() -> Iterator[FakeCanvas]:
    with FakeCanvas(Dataset.generate(courses=3, students_per_course=2)) as server:
        yield server


@pytest.fixture
def integration(engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas) -> uuid.UUID:
    return add_canvas(engine, canvas.base_url, canvas.token)


def sync_here(env: dict[str, str], integration: uuid.UUID) -> subprocess.Popen[str]:
    """``toolbox lms sync ID --now``, started once the fake holds back its course list."""
    return subprocess.Popen(
        [TOOLBOX, "lms", "sync", str(integration), "--now"], env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def row_locked(engine: Engine, integration: uuid.UUID) -> Connection:
    """A transaction holding the integration's row: the run's end waits for it."""
    connection = engine.connect()
    connection.execute(
        text("SELECT 1 FROM lms_integrations WHERE id = :id FOR UPDATE"), {"id": integration}
    )
    return connection


def end_waits_for_the_lock(engine: Engine) -> bool:
    waiting = scalar(
        engine,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE lms_integrations%'",
    )
    return bool(waiting)


@pytest.fixture
def stopping(
    engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas, integration: uuid.UUID
) -> Iterator[tuple[subprocess.Popen[str], Connection]]:
    """A sync here, sent SIGTERM while its course list is held back, whose record of the
    stop waits for a lock the test holds on its row."""
    canvas.delay_response(60, path="/api/v1/courses")
    here = sync_here(toolbox_env, integration)
    locker: Connection | None = None
    try:
        wait_for(lambda: canvas.requests_to("/api/v1/courses"), 60)
        locker = row_locked(engine, integration)
        here.send_signal(signal.SIGTERM)
        wait_for(lambda: end_waits_for_the_lock(engine), 30)
        yield here, locker
    finally:
        if here.poll() is None:
            here.kill()
            here.wait(10)
        if locker is not None:
            locker.close()


def test_a_sync_stopped_twice_is_still_recorded_stopped(
    engine: Engine,
    toolbox_env: dict[str, str],
    integration: uuid.UUID,
    stopping: tuple[subprocess.Popen[str], Connection],
) -> None:
    """``timeout 10 toolbox lms sync ID --now`` (SIGTERM to the command, then to its group):
    the line said ``recorded failed``, and the row stayed ``running`` with its run id."""
    here, locker = stopping
    here.send_signal(signal.SIGTERM)  # the process group's copy
    here.send_signal(signal.SIGINT)  # and an impatient Ctrl-C
    time.sleep(0.5)  # both delivered while the record waits (before: SystemExit cut it)
    locker.rollback()
    out, err = here.communicate(timeout=60)

    assert here.returncode == 143, err
    assert out == ""
    assert err.strip().splitlines()[-1] == RECORDED.format(id=integration)
    row = integration_row(engine, integration)
    assert row.last_sync_status == "failed"
    assert row.sync_error_message == "interrupted (the process was told to stop)"
    (listed,) = json.loads(toolbox("lms", "list", "--json", env=toolbox_env).stdout)
    assert (listed["last_sync_status"], listed["sync_run_id"]) == ("failed", None)


def test_a_stop_that_could_not_be_recorded_says_so(
    engine: Engine,
    toolbox_env: dict[str, str],
    integration: uuid.UUID,
    stopping: tuple[subprocess.Popen[str], Connection],
) -> None:
    """The row locked longer than the write may take: the command ends anyway, in about
    ``STOP_WRITE_SECONDS``, and says the row still shows the run."""
    here, locker = stopping
    started = time.monotonic()
    out, err = here.communicate(timeout=60)
    locker.rollback()

    assert (here.returncode, out) == (143, ""), err
    assert time.monotonic() - started < 3 * STOP_WRITE_SECONDS
    *warnings, last = err.strip().splitlines()
    assert last == NOT_RECORDED.format(id=integration)
    assert warnings[-1] == (
        f"warning: LMS sync of {integration} stopped (the process was told to stop) and could"
        " not be recorded failed: QueryCanceled"
    )
    row = integration_row(engine, integration)
    assert (row.last_sync_status, row.sync_error_message) == ("running", None)
    again = toolbox("lms", "sync", str(integration), "--now", env=toolbox_env)  # takes it over
    assert again.returncode == 0, again.stderr
    assert integration_row(engine, integration).last_sync_status == "success"


@pytest.mark.parametrize("json_output", [False, True])
def test_a_failed_courses_reason_is_said_once(
    toolbox_env: dict[str, str], canvas: FakeCanvas, integration: uuid.UUID, json_output: bool
) -> None:
    """Said live in its warning line, it came again in the report (and with --json in the
    ``warning: sync of ID partial`` line too)."""
    bad = list(canvas.data.courses)[1]
    canvas.malformed_json(times=10, path=f"/api/v1/courses/{bad}/assignments")
    done = toolbox("lms", "sync", str(integration), "--now", *(["--json"] if json_output else []),
                   env=toolbox_env)  # fmt: skip

    assert done.returncode == 1, done.stderr
    said = " ".join(done.stderr.split()) + ("" if json_output else " ".join(done.stdout.split()))
    assert said.count("that are not JSON") == 1, said
    assert f"warning: LMS sync of {integration}: course {bad} failed: GET " in said
    summary = "1 of 3 course(s) failed (the warnings above say why)"
    if json_output:
        (reason,) = json.loads(done.stdout)["errors"]  # the script's copy
        assert reason.startswith(f"course {bad}: GET ") and "that are not JSON" in reason
        assert f"warning: sync of {integration} partial: {summary}" in said
    else:
        assert summary in " ".join(done.stdout.split())


def test_add_refuses_plain_http_to_another_host_in_one_line(toolbox_env: dict[str, str]) -> None:
    """``--base-url http://canvas.example.org`` was taken: the token would go unencrypted."""
    env = {**toolbox_env, "TOOLBOX_LMS_API_KEY": "k3y-value"}
    added = toolbox("lms", "add", "canvas", "--institution", "Springfield",
                    "--base-url", "http://canvas.example.org", env=env)  # fmt: skip

    assert (added.returncode, added.stdout) == (2, "")
    assert added.stderr == (
        "error: base URL (--base-url) must use https: plain http would send the credentials"
        " unencrypted (it is taken only for a loopback host: 127.0.0.0/8, ::1, localhost);"
        " give https://canvas.example.org\n"
    )
    assert json.loads(toolbox("lms", "list", "--json", env=env).stdout) == []
