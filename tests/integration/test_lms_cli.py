"""``toolbox lms ...`` as an operator runs it (real subprocesses, a fake Canvas)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lms.secrets import generate_key
from tests.lms.fakes import Dataset, FakeCanvas

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
        assert "syncing courses" in here.stderr  # the progress bar, kept off stdout

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
    assert schoology.returncode == 2 and "options.user_id" in schoology.stderr
    assert "cs3cret" not in schoology.stderr
