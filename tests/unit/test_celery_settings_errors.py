"""``celery -A workers.app ...`` refused for its settings says one line, as ``toolbox`` does.

Celery reads the configuration while it parses a command's options, so a
missing or bad setting (a worker machine without ``TOOLBOX_FLOWER_BASIC_AUTH``
in production, a misspelt variable) ended the Procfile's, docker-compose's
and the README's scale-out ``celery worker`` in a traceback of about 70 lines.
A service reading the configuration in its own process still gets the
exception.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from models.errors import ConfigurationError
from workers import app as app_module
from workers.settings import get_settings

CELERY_SCRIPT = str(Path(sys.executable).parent / "celery")
PRODUCTION = {
    "TOOLBOX_ENV": "production",
    "TOOLBOX_DATABASE_URL": "postgresql://toolbox:pw-4f2a@127.0.0.1:1/toolbox",
    "TOOLBOX_REDIS_URL": "redis://:pw-9c1b@127.0.0.1:1/0",
    "TOOLBOX_SECRET_KEYS": Fernet.generate_key().decode(),
}


def celery(program: list[str], *args: str, env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("TOOLBOX_")}
    clean["TOOLBOX_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [*program, "-A", "workers.app", *args], env={**clean, **env}, capture_output=True,
        text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return result.returncode, result.stderr


@pytest.mark.parametrize(
    ("program", "args", "env", "line"),
    [
        ([CELERY_SCRIPT], ["worker", "-Q", "agents", "-n", "agents@%h"], PRODUCTION,
         "error: TOOLBOX_FLOWER_BASIC_AUTH is required in production"),
        ([sys.executable, "-m", "celery"], ["beat"],
         {**PRODUCTION, "TOOLBOX_FLOWER_BASIC_AUTH": "op:pw-77", "TOOLBOX_CONCURENCY": "4"},
         "error: TOOLBOX_CONCURENCY: unknown variable, did you mean TOOLBOX_CONCURRENCY?"),
        ([CELERY_SCRIPT], ["worker", "-Q", "agents", "-n", "agents@%h"],
         {**PRODUCTION, "TOOLBOX_FLOWER_BASIC_AUTH": "op:pw-77",
          "TOOLBOX_AGENT_MODELS": '{"echo": "nosuchprov:x"}'},
         "error: TOOLBOX_AGENT_MODELS (echo): unknown model provider 'nosuchprov'; langchain"),
        ([CELERY_SCRIPT], ["inspect", "ping"],
         {**PRODUCTION, "TOOLBOX_FLOWER_BASIC_AUTH": "op:pw-77", "TOOLBOX_SECRET_KEYS": "x"},
         "error: TOOLBOX_SECRET_KEYS: key #1 of 1 is not a valid Fernet key"),
    ],
)  # fmt: skip
def test_a_celery_command_refused_for_its_settings_says_one_line(
    tmp_path: Path, program: list[str], args: list[str], env: dict[str, str], line: str
) -> None:
    status, stderr = celery(program, *args, env=env, tmp_path=tmp_path)
    assert status == app_module.CONFIGURATION_EXIT_STATUS, stderr
    (said,) = stderr.splitlines()
    assert said.startswith(line), stderr
    assert "pw-" not in stderr


def test_a_service_reading_the_configuration_gets_the_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in os.environ if name.startswith("TOOLBOX_")]:
        monkeypatch.delenv(name)
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        # the stack's secrets are no service's business: its configuration loads without them
        assert app_module._config()["broker_url"] == PRODUCTION["TOOLBOX_REDIS_URL"]
        monkeypatch.setenv("TOOLBOX_CONCURENCY", "4")
        get_settings.cache_clear()
        with pytest.raises(ConfigurationError, match="TOOLBOX_CONCURENCY: unknown variable"):
            app_module._config()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
