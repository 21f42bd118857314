"""docker-compose.yml, Dockerfile and Procfile: valid, and consistent with the code.

The compose file is checked against the Compose Specification's JSON schema
(the copy check-jsonschema ships, under its vendored licence) and then for
what the schema cannot know: the commands exist, the settings exist, the
dependencies can be met, and nothing stops ``--scale worker=N``.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml

from workers.celeryconfig import QUEUES
from workers.cli import app as cli_app
from workers.procs import PROCESSES, WORKERS
from workers.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
SECRETS = (
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "TOOLBOX_SECRET_KEYS",
    "TOOLBOX_FLOWER_BASIC_AUTH",
)
COMPOSE_TO_PROCESS = {
    "worker": "agents", "lms": "lms", "passback": "passback", "maintenance": "maintenance",
    "beat": "beat", "flower": "flower",
}  # fmt: skip
INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
VARIABLE = re.compile(r"^[A-Z_][A-Z0-9_]*(?::?[-?].*)?$")


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def test_the_schema_check_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["lms"]["restart_policy"] = "always"
    errors = schema_errors(broken)
    assert any("service_finished" in error for error in errors)
    assert any("restart_policy" in error for error in errors)


def test_interpolations_are_well_formed_and_secrets_required(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = INTERPOLATION.findall(text)
    assert used and all(VARIABLE.match(expression) for expression in used), used
    for secret in SECRETS:
        forms = {expression.split(":", 1)[1][:1] for expression in used
                 if expression.split(":", 1)[0] == secret}  # fmt: skip
        assert forms == {"?"}, f"{secret} must be required with a message, never defaulted"
    for name, value in compose["x-toolbox-env"].items():
        if any(word in name for word in ("PASSWORD", "SECRET", "AUTH", "URL")):
            assert "${" in str(value), f"{name} is hard-coded"


def test_environment_names_are_settings_fields(compose: dict[str, Any]) -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    names = set(compose["x-toolbox-env"])
    assert names <= fields, sorted(names - fields)
    for service in compose["services"].values():
        environment = service.get("environment", {})
        assert all(not key.startswith(ENV_PREFIX) or key in fields for key in environment)


def test_commands_exist_and_match_the_procfile(services: dict[str, dict[str, Any]]) -> None:
    click_app = typer.main.get_command(cli_app)
    for name, service in services.items():
        words = argv(service)
        if not words or words[0] not in ("celery", "toolbox"):
            continue  # a server image's own command
        if words[0] == "toolbox":
            command = click_app.commands[words[1]]  # type: ignore[attr-defined]
            command.make_context(words[1], words[2:])  # unknown options raise
        else:
            assert words[1:3] == ["-A", "workers.app"] and words[3] in ("worker", "beat"), name
        if name in COMPOSE_TO_PROCESS:
            expected = PROCESSES[COMPOSE_TO_PROCESS[name]].replace(
                "${TOOLBOX_DATA_DIR:-.toolbox}", "/data"
            )
            assert argv(service) == shlex.split(expected), name  # the words, quotes aside


def test_every_queue_is_consumed_and_exactly_one_beat(services: dict[str, dict[str, Any]]) -> None:
    consumed: set[str] = set()
    beats = []
    for name, service in services.items():
        words = argv(service)
        if words[:4] == ["celery", "-A", "workers.app", "worker"]:
            queues = words[words.index("-Q") + 1].split(",")
            assert set(queues) <= set(QUEUES), name
            consumed.update(queues)
        if words[:4] == ["celery", "-A", "workers.app", "beat"]:
            beats.append(name)
            assert service["deploy"]["replicas"] == 1
    assert consumed == set(QUEUES)
    assert beats == ["beat"]


def test_dependencies_can_be_met(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target]["restart"] == "no", f"{target} must run once"
            else:
                assert condition == "service_started"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "lms", "passback", "maintenance", "beat", "flower", "metrics"):
        rule = services[name]["depends_on"]["migrate"]
        assert rule["condition"] == "service_completed_successfully", name


def test_scaling_out_assumes_no_single_worker(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "container_name" not in service, name
        if argv(service)[:4] == ["celery", "-A", "workers.app", "worker"]:
            assert "ports" not in service, f"{name} publishes a fixed host port"
            node = argv(service)[argv(service).index("-n") + 1]
            assert node.endswith("@%h"), "node names must differ per container"
            probe = " ".join(service["healthcheck"]["test"])
            assert f"inspect ping -d {node.split('@')[0]}@$$HOSTNAME" in probe
    for server in ("postgres", "redis", "flower", "metrics"):
        assert "healthcheck" in services[server]


def test_compose_workers_run_the_procfile_lines(services: dict[str, dict[str, Any]]) -> None:
    for service, process in COMPOSE_TO_PROCESS.items():
        if process in WORKERS:
            assert argv(services[service]) == shlex.split(PROCESSES[process]), service
    assert {COMPOSE_TO_PROCESS[name] for name in services if name in COMPOSE_TO_PROCESS} == set(
        PROCESSES
    )


def test_procfile_lines_are_the_processes() -> None:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = dict(line.split(": ", 1) for line in lines if line.strip())
    assert entries == PROCESSES


def test_dockerfile_builds_a_non_root_image_of_every_package() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert all(stage.split()[1] == "python:3.11-slim" for stage in stages)
    final = instructions[instructions.index(stages[-1]) :]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "RUN pip install ." in instructions
    copied = {
        line.split()[1]
        for line in instructions
        if line.startswith("COPY ") and "--from" not in line
    }
    packages = {"agents", "lms", "migrations", "models", "tasks", "workers"}
    assert packages <= copied and all((ROOT / name).is_dir() for name in packages)
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", ".toolbox", "tests"} <= ignored


@pytest.mark.parametrize(
    "path", [".env", "toolbox.env", "tool.pem", "keys/lti-tool.pem", ".toolbox/secret.key"]
)
def test_the_files_that_hold_secrets_are_ignored_by_git(path: str) -> None:
    # The README has operators write them in the project folder: `git add -A` must skip them.
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
    assert ignored.returncode == 0, f"{path} is not in .gitignore"


def test_readme_says_where_each_setting_compose_sets_goes(compose: dict[str, Any]) -> None:
    """``environment:`` wins over ``env_file:``: a setting the compose file sets is ignored
    in ``toolbox.env``.  The README sent "any other TOOLBOX_* setting" there, so
    ``TOOLBOX_DEFAULT_MODEL`` or ``TOOLBOX_LOG_LEVEL`` written in it changed nothing."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### docker-compose", 1)[1].split("\n### ", 1)[0]
    header = (ROOT / "docker-compose.yml").read_text().split("\nname:", 1)[0]
    for name, value in compose["x-toolbox-env"].items():
        named = f"{name}=" if name in SECRETS else f"`{name}`"  # secrets: the .env example
        assert named in section, f"the README's docker-compose section omits {name}"
        from_env_file = f"${{{name}:-" in str(value) or f"${{{name}:?" in str(value)
        if from_env_file and name not in SECRETS:
            assert name in header, f"the compose file's header omits {name}"
    assert "any other `TOOLBOX_*` setting" not in section


def test_the_readme_scales_out_without_docker_with_the_procfile_line() -> None:
    """The README's command for a worker machine without Docker was ``celery -A workers.app
    worker -Q agents -n agents@%h``: a process per CPU whatever ``TOOLBOX_CONCURRENCY``
    said, and gossip on (a long traceback from every worker at each Redis restart)."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    after = readme.split("Without Docker,", 1)[1]
    commands = re.findall(r"`(celery -A workers\.app worker -Q agents[^`]*)`", after)
    assert commands and commands[0] == PROCESSES["agents"], commands[:1]
    assert "`TOOLBOX_FLOWER_BASIC_AUTH`" in after.split("Work spreads", 1)[0]


def test_the_readme_names_the_compose_version_the_file_needs(
    services: dict[str, dict[str, Any]],
) -> None:
    """``env_file`` entries with ``required`` (the optional toolbox.env) need Compose 2.24.0;
    an older Compose refuses the whole file, and the README did not say which it needs."""
    optional = [name for name, service in services.items()
                for entry in service.get("env_file", []) if isinstance(entry, dict)
                and "required" in entry]  # fmt: skip
    assert optional, "no env_file entry is optional any more: revisit the README's version"
    readme = " ".join((ROOT / "README.md").read_text().split())
    section = readme.split("### docker-compose", 1)[1].split("### ", 1)[0]
    assert "Docker Compose 2.24 or newer" in section


def test_every_variable_the_compose_file_reads_is_in_the_readme() -> None:
    """``METRICS_BIND``, ``POSTGRES_PORT`` and ``REDIS_PORT`` were read by the file and
    named nowhere in the README, so an operator could not know the exporter's address
    was settable, nor how to reach a server on another port from an extra machine."""
    readme = (ROOT / "README.md").read_text()
    text = (ROOT / "docker-compose.yml").read_text()
    names = {re.split(r"[:?-]", expression, maxsplit=1)[0]
             for expression in INTERPOLATION.findall(text)}  # fmt: skip
    named = re.findall(r"[`\n]([A-Z][A-Z0-9_]*)[`=]", readme)  # `NAME` or NAME= (.env)
    assert names and sorted(names - set(named)) == []
