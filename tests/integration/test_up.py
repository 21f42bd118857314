"""The quick start as a new user runs it: ``toolbox up`` on embedded servers, twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text

from tests.integration.embedded_support import TOOLBOX, embedded_env
from tests.workers import wait_for
from workers import migrate
from workers.embedded import resolve_servers
from workers.settings import Settings

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def test_urls_set_means_nothing_embedded_starts(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql://u@h/d", redis_url="redis://h:6379/0"
    )
    servers = resolve_servers(settings, export=False)
    assert servers.embedded == []
    assert not any(tmp_path.iterdir())


def test_embedded_data_survives_a_restart(server_dir: Path) -> None:
    data_dir = server_dir / "data"
    first = resolve_servers(Settings(data_dir=data_dir), export=False)
    assert first.embedded == ["postgresql", "redis"]
    engine = create_engine(first.database_url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE kept (note text)"))
        connection.execute(text("INSERT INTO kept VALUES ('still here')"))
    engine.dispose()
    first.close()
    second = resolve_servers(Settings(data_dir=data_dir), export=False)
    engine = create_engine(second.database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT note FROM kept")).scalar_one() == "still here"
    engine.dispose()
    second.close()


def test_toolbox_up_runs_the_stack_on_embedded_servers_and_restarts_on_the_same_data(
    tmp_path: Path,
    server_dir: Path,
) -> None:
    env = embedded_env(server_dir / "toolbox-data")
    ids = []
    for run in range(2):
        log = (tmp_path / f"up-{run}.log").open("wb")
        up = subprocess.Popen(
            [TOOLBOX, "up", "--processes", "agents,maintenance,beat"], env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )  # fmt: skip
        try:
            wait_for(lambda run=run: b"ready." in (tmp_path / f"up-{run}.log").read_bytes(), 90)
            submitted = subprocess.run(
                [TOOLBOX, "task", "submit", "echo", "--input", '{"message": "quick start"}',
                 "--wait", "--json", "--timeout", "60"],
                env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
            )  # fmt: skip
            assert submitted.returncode == 0, submitted.stderr
            ids.append(json.loads(submitted.stdout)["id"])
            listed = subprocess.run(
                [TOOLBOX, "task", "list", "--json"], env=env, capture_output=True, text=True,
                timeout=60, cwd=tmp_path,
            )  # fmt: skip
            assert sorted(t["id"] for t in json.loads(listed.stdout)) == sorted(ids)
        finally:
            os.killpg(up.pid, signal.SIGTERM)
            up.wait(60)
            log.close()
        time.sleep(1)
    assert len(set(ids)) == 2


def test_toolbox_up_with_urls_migrates_an_empty_database_and_creates_its_data_dir(
    tmp_path: Path, empty_database_url: str, redis_url: str
) -> None:
    """Servers of one's own, a database with no schema yet, a folder never used before.

    The folder's path holds a space: beat's command line must keep it one argument.
    """
    data_dir = tmp_path / "new folder" / "data"  # does not exist yet; beat keeps its file there
    env = {
        **embedded_env(data_dir),
        "TOOLBOX_ENV": "test",
        "TOOLBOX_DATABASE_URL": empty_database_url,
        "TOOLBOX_REDIS_URL": redis_url,
    }
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [TOOLBOX, "up", "--processes", "maintenance,beat"], env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path,
        )  # fmt: skip
    try:
        wait_for(lambda: b"Sending due task" in log_path.read_bytes() or up.poll() is not None, 90)
        assert up.poll() is None, log_path.read_text()[-3000:]
        assert f"schema at {migrate.head_revision()}" in log_path.read_text()
        assert any(data_dir.glob("celerybeat-schedule*"))
        # a second one in the same folder would run every worker twice under the same names
        second = subprocess.run(
            [TOOLBOX, "up", "--processes", "agents"], env=env, capture_output=True, text=True,
            timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert second.returncode == 2, second.stdout + second.stderr
        assert second.stderr.startswith(
            f"error: a toolbox up is already running with the data folder {data_dir}"
            f" (pid {up.pid}): stop it first"
        ), second.stderr
        assert second.stdout == "" and up.poll() is None
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGTERM)
            up.wait(60)


def test_an_embedded_postgresql_refuses_a_folder_whose_path_holds_a_space(tmp_path: Path) -> None:
    """pgserver passes the socket folder to postgres unquoted: every command that needed the
    embedded database ended in ``invalid argument: "dir/pg"`` and a traceback."""
    data_dir = tmp_path / "data dir"
    env = {**embedded_env(data_dir), "TOOLBOX_ENV": "test"}
    for command in (("task", "list"), ("up", "--processes", "beat")):
        result = subprocess.run(
            [TOOLBOX, *command], env=env, capture_output=True, text=True, timeout=120,
            cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == (
            "error: TOOLBOX_DATA_DIR: the embedded PostgreSQL cannot run in a folder whose path"
            f" holds a space ({data_dir}); choose another folder, or give TOOLBOX_DATABASE_URL"
            " a server of your own"
        )
        assert result.stdout == ""
