"""``toolbox migrate`` and the README's ``alembic`` commands on the embedded servers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.embedded_support import TOOLBOX, embedded_env
from tests.integration.test_embedded import assert_stopped

pytestmark = [pytest.mark.worker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC = str(Path(TOOLBOX).parent / "alembic")


def test_migrations_at_once_on_a_fresh_folder_then_alembic_without_a_url(
    server_dir: Path,
) -> None:
    """Both made the ``toolbox`` database at once (one failed); ``alembic`` found no URL."""
    data_dir = server_dir / "data"
    env = embedded_env(data_dir)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    runs = [subprocess.Popen([TOOLBOX, "migrate"], env=env, text=True, **pipes) for _ in range(2)]
    for run in runs:
        stdout, stderr = run.communicate(timeout=180)
        assert (run.returncode, stderr) == (0, ""), stderr[-2000:]
        assert stdout.startswith("schema at ")
    for command in (("upgrade", "head"), ("check",)):
        done = subprocess.run(
            [ALEMBIC, *command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr[-2000:]
    assert "No new upgrade operations detected" in done.stdout + done.stderr
    assert_stopped(data_dir, redis=False)  # alembic left the PostgreSQL it joined; no Redis
