"""``toolbox lms ...`` as an operator runs it (real subprocesses, a fake Canvas)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from lms.schedule import claim_now, sync_lock
from lms.secrets import generate_key
from models.errors import LMSUnavailable
from tests.integration.lms_support import add_canvas, sync
from tests.integration.test_cli_errors import one_error_line
from tests.integration.test_lms_sync import no_sleep
from tests.lms.fakes import Dataset, FakeCanvas
from tests.lms.fakes.server import Fault, Reply
from tests.workers import wait_for
from workers.cli.lms import TOOK_OVER

TOOLBOX = str(Path(sys.executable).parent / "toolbox")


def toolbox(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLBOX, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_add_list_sync_status_and_rotate_keys(toolbox_env: dict[str, str]) -> None:
    with FakeCanvas(Dataset.generate(courses=2, students_per_course=3)) as canvas:
        env = {**toolbox_env, "TOOLBOX_LMS_API_KEY": canvas.token}
        added = toolbox("lms", "add", "canvas", "--institution", "Springfield",
                        "--base-url", canvas.base_url + "/", "--json", env=env)  # fmt: skip
        assert added.returncode == 0, added.stderr
        integration = json.loads(added.stdout)["id"]

        (listed,) = json.loads(toolbox("lms", "list", "--json", env=env).stdout)
        assert (listed["id"], listed["last_sync_status"]) == (integration, None)
        assert listed["base_url"] == canvas.base_url

        queued = toolbox("lms", "sync", integration[:8], "--json", env=env)
        assert queued.returncode == 0, queued.stderr
        assert json.loads(queued.stdout)["queued"] is True

        # No worker took it; the operator runs it here instead (the claim's lock is free).
        here = toolbox("lms", "sync", integration, "--now", "--json", env=env)
        assert here.returncode == 0, here.stderr
        report = json.loads(here.stdout)
        assert report["status"] == "success" and report["courses"]["inserted"] == 2
        # the progress bar is for a terminal: piped, it filled logs with redrawn lines
        assert "syncing courses" not in here.stderr

        shown = json.loads(toolbox("lms", "status", integration, "--json", env=env).stdout)
        assert shown["last_sync_status"] == "success"
        assert shown["data"]["courses"] == 2 and shown["data"]["enrollments"] == 8
        assert shown["passbacks"]["pending"] == 0

        old = (Path(toolbox_env["TOOLBOX_DATA_DIR"]) / "secret.key").read_text().strip()
        new = generate_key()
        rotated = toolbox("lms", "rotate-keys", env={**env, "TOOLBOX_SECRET_KEYS": f"{new},{old}"})
        assert rotated.returncode == 0, rotated.stderr
        assert "re-encrypted 1 secret(s) with the newest key" in rotated.stdout
        only_new = {**env, "TOOLBOX_SECRET_KEYS": new}
        assert toolbox("lms", "sync", integration, "--now", env=only_new).returncode == 0
        config = toolbox("config", "--json", env=only_new)

        outputs = added.stdout + added.stderr + here.stdout + here.stderr + rotated.stdout
        assert canvas.token not in outputs + config.stdout and new not in config.stdout


def test_log_records_are_warning_lines_on_stderr_and_stdout_stays_json(
    toolbox_env: dict[str, str],
) -> None:
    """The development key's warning (workers.secrets), a retried 503 (lms.http): the CLI's
    own ``warning:`` lines, never timestamped log records nor httpx's INFO request lines."""
    with FakeCanvas(Dataset.generate(courses=1, students_per_course=2)) as canvas:
        env = {**toolbox_env, "TOOLBOX_LMS_API_KEY": canvas.token, "TOOLBOX_LOG_JSON": "true"}
        added = toolbox("lms", "add", "canvas", "--institution", "Springfield",
                        "--base-url", canvas.base_url, "--json", env=env)  # fmt: skip
        assert added.returncode == 0, added.stderr
        integration = json.loads(added.stdout)["id"]
        assert added.stderr.startswith("warning: TOOLBOX_SECRET_KEYS is not set: LMS secrets are")
        assert len(added.stderr.splitlines()) == 1, added.stderr

        canvas.server_errors(1, path="/api/v1/courses")
        synced = toolbox("lms", "sync", integration, "--now", "--json", env=env)
        assert synced.returncode == 0, synced.stderr
        assert json.loads(synced.stdout)["status"] == "success"
        retried = f"warning: GET {canvas.base_url}/api/v1/courses?per_page=100"
        lines = [line for line in synced.stderr.splitlines() if "syncing" not in line]  # progress
        assert [line.startswith(retried) for line in lines] == [False, True], synced.stderr
        assert "HTTP 503 Service Unavailable; retry 1 in" in lines[1]
        assert all(line.startswith("warning: ") for line in lines), synced.stderr
        assert "WARNING" not in synced.stderr and "HTTP Request" not in synced.stderr


def test_the_readmes_fake_canvas_takes_a_sync(toolbox_env: dict[str, str]) -> None:
    """``python -m tests.lms.fakes``, as the README's Sync section suggests for a first try."""
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.lms.fakes", "--courses", "2", "--students", "3"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert fake.stdout is not None
        base_url = fake.stdout.readline().removeprefix("base URL: ").strip()
        token = fake.stdout.readline().removeprefix("API token: ").strip()
        env = {**toolbox_env, "TOOLBOX_LMS_API_KEY": token}
        added = toolbox("lms", "add", "canvas", "--institution", "Springfield",
                        "--base-url", base_url, "--json", env=env)  # fmt: skip
        assert added.returncode == 0, added.stderr
        synced = toolbox("lms", "sync", json.loads(added.stdout)["id"], "--now", "--json", env=env)
        assert synced.returncode == 0, synced.stderr
        assert json.loads(synced.stdout)["courses"]["inserted"] == 2
    finally:
        fake.terminate()
        assert fake.wait(10) == 0


def add_unreachable(env: dict[str, str]) -> str:
    """A Canvas integration at an address nothing listens on; its id."""
    added = toolbox("lms", "add", "canvas", "--institution", "Springfield",
                    "--base-url", "http://127.0.0.1:9/", "--json", env=env)  # fmt: skip
    assert added.returncode == 0, added.stderr
    return str(json.loads(added.stdout)["id"])


def test_a_failed_sync_names_its_reason_in_errors_and_on_stderr(
    toolbox_env: dict[str, str],
) -> None:
    """An LMS that cannot be reached fails the run as a whole, with no per-course errors."""
    env = {**toolbox_env, "TOOLBOX_LMS_API_KEY": "unreachable-t0ken"}
    integration = add_unreachable(env)
    synced = toolbox("lms", "sync", integration, "--now", "--json", env=env)
    assert synced.returncode == 1, synced.stderr
    report = json.loads(synced.stdout)
    assert report["status"] == "failed" and report["message"]
    (reason,) = report["errors"]
    assert reason == report["message"] and "Connection refused" in reason
    assert reason.startswith("GET http://127.0.0.1:9/api/v1/courses")
    (line,) = [line for line in synced.stderr.splitlines() if "Connection refused" in line
               and "retry" not in line]  # fmt: skip
    assert line == f"warning: sync of {integration} failed: {reason}"
    assert "unreachable-t0ken" not in synced.stdout + synced.stderr
    shown = toolbox("lms", "sync", integration, "--now", env=env)  # the report, not the log line
    assert shown.returncode == 1, shown.stderr
    said = " ".join((shown.stdout + shown.stderr).split())  # the report wraps at the width
    assert said.count("failed after 6 attempt(s)") == 1, said
    assert "LMS sync of" not in said and "unreachable-t0ken" not in said


def test_a_sync_the_broker_cannot_queue_names_redis_and_the_setting(
    toolbox_env: dict[str, str],
) -> None:
    """It used to say only ``could not queue the sync (OperationalError)``."""
    env = {**toolbox_env, "TOOLBOX_LMS_API_KEY": "queued-t0ken"}
    integration = add_unreachable(env)
    down = {**env, "TOOLBOX_REDIS_URL": "redis://127.0.0.1:1/0"}
    queued = toolbox("lms", "sync", integration, env=down)
    line = one_error_line(queued)
    assert line.startswith("error: could not queue the sync: cannot connect to Redis at"), line
    assert "127.0.0.1:1" in line and "TOOLBOX_REDIS_URL" in line and "--now" in line


def test_add_explains_what_is_missing(toolbox_env: dict[str, str]) -> None:
    base = ("--institution", "Springfield", "--base-url", "https://canvas.example.edu")
    missing = toolbox("lms", "add", "canvas", *base, env=toolbox_env)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "error: canvas needs the Canvas API access token: pass --api-key or set "
        "TOOLBOX_LMS_API_KEY (or run it in a terminal)"
    )
    unknown = toolbox("lms", "add", "d2l", *base, "--api-key", "k3y-value", env=toolbox_env)
    assert unknown.returncode == 2 and "supported: canvas, schoology, moodle" in unknown.stderr
    schoology = toolbox("lms", "add", "schoology", *base, "--client-id", "ck",
                        "--client-secret", "cs3cret", env=toolbox_env)  # fmt: skip
    assert schoology.returncode == 2
    # the command line's words, not the Python API's (options.user_id)
    assert schoology.stderr.strip() == (
        "error: Schoology needs --option user_id=... (the API user's uid)"
    )
    token = "https://canvas.example.edu/oauth/token"
    oneroster = ("lms", "add", "oneroster", *base, "--client-id", "ck", "--client-secret",
                 "cs3cret", "--token-endpoint", token)  # fmt: skip
    for options in (("--option", "page_size=abc"), ("--options-json", '{"page_size": "abc"}')):
        bad = toolbox(*oneroster, *options, env=toolbox_env)  # a traceback (ValueError) before
        assert bad.returncode == 2 and bad.stdout == ""
        assert bad.stderr.strip() == (
            "error: OneRoster --option page_size=... must be a whole number from 1, got 'abc'"
        )
    assert "cs3cret" not in schoology.stderr


def test_update_disable_enable_and_what_add_refuses(toolbox_env: dict[str, str]) -> None:
    with FakeCanvas(Dataset.generate(courses=1, students_per_course=2)) as canvas:
        expired = {**toolbox_env, "TOOLBOX_LMS_API_KEY": "expired-token"}
        added = toolbox("lms", "add", "canvas", "--institution", "Springfield",
                        "--base-url", canvas.base_url, "--json", env=expired)  # fmt: skip
        assert added.returncode == 0, added.stderr
        integration = json.loads(added.stdout)["id"]

        again = toolbox("lms", "add", "canvas", "--institution", "Springfield",
                        "--base-url", canvas.base_url.upper() + "/", env=expired)  # fmt: skip
        assert one_error_line(again) == (
            f"error: canvas at {canvas.base_url.upper()} is already integration {integration}; "
            f"change it with `toolbox lms update {integration}`"
        )
        update = ("lms", "update", integration[:8])
        fixed = {**toolbox_env, "TOOLBOX_LMS_API_KEY": canvas.token}
        assert toolbox(*update, "--frequency-hours", "0", env=fixed).returncode == 2
        no_terminal = toolbox(*update, "--prompt-secret", env=toolbox_env)
        assert one_error_line(no_terminal) == (
            "error: --prompt-secret needs a terminal; or pass --api-key"
        )
        assert toolbox("lms", "sync", integration, "--now", env=fixed).returncode == 1

        updated = toolbox(*update, "--frequency-hours", "48", "--no-roster-sync", env=fixed)
        assert updated.returncode == 0, updated.stderr
        assert "secrets replaced: api_key" in updated.stdout
        assert toolbox("lms", "sync", integration, "--now", env=fixed).returncode == 0

        assert toolbox("lms", "disable", integration[:8], env=fixed).returncode == 0
        (listed,) = json.loads(toolbox("lms", "list", "--json", env=fixed).stdout)
        assert listed["is_active"] is False and listed["sync_frequency_hours"] == 48
        assert "disabled" in toolbox("lms", "list", env=fixed).stdout
        assert "disabled" in toolbox("lms", "status", integration, env=fixed).stdout
        refused = toolbox("lms", "sync", integration, "--now", env=fixed)
        assert refused.returncode == 1 and "disabled" in refused.stderr
        assert toolbox("lms", "enable", integration[:8], env=fixed).returncode == 0
        shown = json.loads(toolbox("lms", "status", integration, "--json", env=fixed).stdout)
        assert shown["is_active"] is True and shown["roster_sync_enabled"] is False


HOURS_REFUSED = "toolbox lms add: --frequency-hours: expected whole hours from 1"
REFUSED_AT_ADD = [
    (("--frequency-hours", "100000000"), HOURS_REFUSED),
    (("--frequency-hours", "99999999999"), HOURS_REFUSED),
    (("--token-endpoint", "not a url"), "token endpoint must be an http(s) URL"),
    (("--api-key", "   "), "error: the api key (--api-key or TOOLBOX_LMS_API_KEY) is blank"),
    (("--client-secret", " "), "the client secret (--client-secret or TOOLBOX_LMS_CLIENT_SECRET)"),
    (("--refresh-token", "\t"), "the refresh token (--refresh-token or TOOLBOX_LMS_REFRESH_TOKEN)"),
    (("--base-url", "http://admin:S3cret@canvas.example.edu"), "credentials go in the secret"),
    (("--api-key", "S3cret-t\u00e9"), "api key (--api-key or TOOLBOX_LMS_API_KEY) must be ASCII"),
    (("--api-key", "S3cret\nS3cret"), "character 7 of 13 is not"),
    (
        ("--client-secret", "S3cret"),
        "canvas does not use the client secret (--client-secret or"
        " TOOLBOX_LMS_CLIENT_SECRET); it takes the api key",
    ),
]


def test_add_refuses_in_one_line_what_would_fail_later(toolbox_env: dict[str, str]) -> None:
    base = ("--institution", "Springfield", "--base-url", "https://canvas.example.edu")
    env = {**toolbox_env, "TOOLBOX_LMS_API_KEY": "k3y-value"}
    for extra, message in REFUSED_AT_ADD:
        line = one_error_line(toolbox("lms", "add", "canvas", *base, *extra, env=env))
        assert message in line and "S3cret" not in line, (extra, line)
    assert json.loads(toolbox("lms", "list", "--json", env=env).stdout) == []


def test_a_password_an_older_version_stored_in_a_url_shows_nowhere(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    """``lms add`` refuses such URLs now; rows written before show ``user:***@`` instead."""
    with FakeCanvas(Dataset.generate(courses=1, students_per_course=2)) as canvas:
        env = {**toolbox_env, "TOOLBOX_LMS_API_KEY": canvas.token}
        added = toolbox("lms", "add", "canvas", "--institution", "Springfield",
                        "--base-url", canvas.base_url, "--json", env=env)  # fmt: skip
        integration = json.loads(added.stdout)["id"]
        legacy = canvas.base_url.replace("http://", "http://admin:S3cret@")
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE lms_integrations SET base_url = :url, token_endpoint = :token"),
                {"url": legacy, "token": "https://svc:S3cret2@idp.example.edu/token"},
            )

        listed = toolbox("lms", "list", "--json", env=env)
        shown = toolbox("lms", "status", integration, env=env)
        as_json = toolbox("lms", "status", integration[:8], "--json", env=env)
        synced = toolbox("lms", "sync", integration, "--now", "--json", env=env)
        after = toolbox("lms", "status", integration, env=env)

        masked = canvas.base_url.replace("http://", "http://admin:***@")
        assert json.loads(listed.stdout)[0]["base_url"] == masked
        assert json.loads(as_json.stdout)["base_url"] == masked
        assert masked in shown.stdout
        assert json.loads(synced.stdout)["status"] == "failed"  # the URL's user is sent instead
        runs = (added, listed, shown, as_json, synced, after)
        assert all(run.stdout for run in runs)
        outputs = "".join(run.stdout + run.stderr for run in runs)
        assert "S3cret" not in outputs


def test_status_names_the_run_id_of_a_running_sync(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    """``sync_run_id`` in JSON always (null unless running), in text only while it runs."""
    integration = add_canvas(engine, "http://127.0.0.1:9", "unused-t0ken")
    shown_id = str(integration)

    def as_json(*args: str) -> Any:
        return json.loads(toolbox("lms", "status", *args, "--json", env=toolbox_env).stdout)

    with engine.begin() as connection:
        run_id = str(claim_now(connection, integration).run_id)
    shown = toolbox("lms", "status", shown_id, env=toolbox_env).stdout
    assert re.search(rf"^\s*sync run id\s+{run_id}\s*$", shown, re.MULTILINE), shown
    assert (as_json(shown_id)["last_sync_status"], as_json()[0]["sync_run_id"]) == (
        "running", run_id
    )  # fmt: skip
    listing = toolbox("lms", "list", env=toolbox_env).stdout
    assert f"{shown_id[:8]}: sync running, run id {run_id}" in listing

    with engine.begin() as connection:  # the run ends; the row keeps its (past) run id
        connection.execute(text("UPDATE lms_integrations SET last_sync_status = 'success'"))
    assert as_json(shown_id)["sync_run_id"] is None
    assert "run id" not in toolbox("lms", "status", env=toolbox_env).stdout


def test_a_sync_that_takes_over_one_waiting_to_retry_says_so(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    """The takeover itself: ``test_lms_schedule``'s operator test, on real workers."""
    with FakeCanvas(Dataset.generate(courses=1, students_per_course=2)) as canvas:
        integration = add_canvas(engine, canvas.base_url, canvas.token)
        shown_id = str(integration)

        def wait_for_a_retry() -> None:  # six 503s: a run's attempts, then it waits
            canvas.inject(Fault(6, Reply.text("upstream down", 503)))
            with pytest.raises(LMSUnavailable):
                sync(engine, integration, client_factory=no_sleep, final_attempt=False)

        wait_for_a_retry()
        queued = toolbox("lms", "sync", shown_id, "--json", env=toolbox_env)
        assert queued.returncode == 0, queued.stderr
        assert json.loads(queued.stdout)["took_over_retry"] is True
        here = toolbox("lms", "sync", shown_id, "--now", "--json", env=toolbox_env)
        report = json.loads(here.stdout)  # it took over a queued message, no retry
        assert (report["status"], report["took_over_retry"]) == ("success", False), here.stderr

        wait_for_a_retry()
        said = toolbox("lms", "sync", shown_id, env=toolbox_env)
        assert said.returncode == 0, said.stderr
        assert TOOK_OVER in said.stdout.splitlines(), said.stdout
        again = toolbox("lms", "sync", shown_id, env=toolbox_env)
        assert again.returncode == 0 and TOOK_OVER not in again.stdout, again.stderr


def test_a_refused_sync_is_one_error_line(toolbox_env: dict[str, str], engine: Engine) -> None:
    """Disabled, already running, or waiting for the LMS's Retry-After: nothing starts.

    It was a ``not started: ...`` line without ``error:``, which rich wrapped at the
    terminal's width (80 columns here), so a long reason spread over two lines.
    """
    integration = add_canvas(engine, "https://canvas.example.edu", "token")
    env = {**toolbox_env, "COLUMNS": "80"}

    def refusal(*flags: str) -> str:
        refused = toolbox("lms", "sync", str(integration)[:8], *flags, env=env)
        assert (refused.returncode, refused.stdout) == (1, ""), refused
        (line,) = refused.stderr.splitlines()
        assert line.startswith(f"error: sync of {integration} not started: "), line
        return line.split(" not started: ", 1)[1]

    with engine.begin() as connection:
        connection.execute(text("UPDATE lms_integrations SET is_active = false"))
    for flags in ((), ("--now",), ("--now", "--json"), ("--json",)):
        assert refusal(*flags) == "the integration is disabled; `toolbox lms enable` it first"

    with engine.begin() as connection:
        connection.execute(text("UPDATE lms_integrations SET is_active = true"))
        assert claim_now(connection, integration).claimed
    with sync_lock(engine, integration) as held:
        assert held
        for flags in (("--json",), ("--now", "--json")):
            assert refusal(*flags).startswith(
                "a sync of this integration is already running (since "
            )

    with engine.begin() as connection:
        connection.execute(
            text("UPDATE lms_integrations SET not_before = now() + interval '1 hour'")
        )
    assert refusal("--now").startswith("the LMS asked (Retry-After) not to be called before ")


def test_a_secret_the_platform_does_not_use_is_refused_before_the_prompt(
    toolbox_env: dict[str, str],
) -> None:
    """In a terminal, ``lms add canvas --client-secret ...`` asked for the Canvas token,
    then refused the client secret: the operator typed the right secret for nothing."""
    base = ("--institution", "Springfield", "--base-url", "https://canvas.example.edu")
    refusal = (
        "error: canvas does not use the client secret (--client-secret or"
        " TOOLBOX_LMS_CLIENT_SECRET); it takes the api key (--api-key or TOOLBOX_LMS_API_KEY)"
    )
    added = toolbox("lms", "add", "canvas", *base, "--json",
                    env={**toolbox_env, "TOOLBOX_LMS_API_KEY": "k3y-value"})  # fmt: skip
    integration = json.loads(added.stdout)["id"]
    commands = [
        ("lms", "add", "canvas", *base, "--client-secret", "S3cret"),
        ("lms", "update", integration, "--prompt-secret", "--client-secret", "S3cret"),
    ]
    for args in commands:
        controller, terminal = os.openpty()  # stdin a terminal: the command may prompt
        try:
            done = subprocess.run(
                [TOOLBOX, *args], env={**os.environ, **toolbox_env}, stdin=terminal,
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        finally:
            os.close(terminal)
            os.close(controller)
        assert (done.returncode, done.stdout) == (2, ""), (args, done.stdout)
        assert done.stderr == f"{refusal}\n", args
    assert len(json.loads(toolbox("lms", "list", "--json", env=toolbox_env).stdout)) == 1


def test_a_sync_here_stopped_by_sigterm_says_so_and_is_recorded(
    toolbox_env: dict[str, str],
) -> None:
    """It exited 143 without a word, and the run was recorded ``interrupted (SystemExit)``."""
    with FakeCanvas(Dataset.generate(courses=1, students_per_course=2)) as canvas:
        env = {**os.environ, **toolbox_env, "TOOLBOX_LMS_API_KEY": canvas.token}
        added = toolbox("lms", "add", "canvas", "--institution", "Springfield",
                        "--base-url", canvas.base_url, "--json", env=env)  # fmt: skip
        integration = json.loads(added.stdout)["id"]
        canvas.delay_response(60, path="/api/v1/courses")  # the first page never comes
        here = subprocess.Popen(
            [TOOLBOX, "lms", "sync", integration, "--now"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(lambda: any(r.path == "/api/v1/courses" for r in canvas.requests), 60)
            here.send_signal(signal.SIGTERM)
            out, err = here.communicate(timeout=60)
        finally:
            if here.poll() is None:
                here.kill()
        assert here.returncode == 143, err
        assert out == ""
        assert err.strip().splitlines()[-1] == (  # after the development key's warning
            f"error: toolbox lms sync: stopped; the sync of {integration} is recorded failed"
            " (interrupted); what it wrote stays, and the next sync writes only what is left"
        )
        shown = json.loads(toolbox("lms", "status", integration, "--json", env=env).stdout)
        assert shown["last_sync_status"] == "failed"
        assert "interrupted (the process was told to stop)" in json.dumps(shown)
