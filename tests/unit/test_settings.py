"""Settings give one clear line naming the variable, and refuse placeholders in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from models.errors import ConfigurationError
from workers.settings import (
    RetentionPolicy,
    SessionPolicy,
    Settings,
    load_settings,
    require_stack_secrets,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("TOOLBOX_"):
            monkeypatch.delenv(key)


def test_defaults_use_embedded_servers() -> None:
    settings = load_settings()
    assert settings.database_url is None and settings.redis_url is None
    assert settings.env == "development"
    assert settings.model_for("content") == "offline"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TOOLBOX_DATABASE_URL", "mysql://db/x", "TOOLBOX_DATABASE_URL: must be a postgresql://"),
        ("TOOLBOX_REDIS_URL", "http://x", "TOOLBOX_REDIS_URL: must be a redis://"),
        # the refusal repeats the URL: without its password
        ("TOOLBOX_REDIS_URL", "http://:S3cret@x", "redis+socket:// URL, got 'http://:***@x'"),
        ("TOOLBOX_ENV", "staging", "TOOLBOX_ENV: Input should be"),
        ("TOOLBOX_FLOWER_PORT", "0", "TOOLBOX_FLOWER_PORT"),
        # no upper bound used to take any number, so a task crashing its worker looped for good
        (
            "TOOLBOX_MAX_DELIVERIES",
            "101",
            "TOOLBOX_MAX_DELIVERIES: Input should be less than or equal to 100",
        ),
        ("TOOLBOX_MAX_DELIVERIES", "0", "TOOLBOX_MAX_DELIVERIES: Input should be greater than"),
        ("TOOLBOX_AGENT_MODELS", "painter=openai:x", "TOOLBOX_AGENT_MODELS: unknown agent kind"),
        ("TOOLBOX_FLOWER_BASIC_AUTH", "nopassword", "TOOLBOX_FLOWER_BASIC_AUTH: each entry"),
        ("TOOLBOX_DEFAULT_MODEL", "bogus", "TOOLBOX_DEFAULT_MODEL: model spec 'bogus' is not"),
        ("TOOLBOX_DEFAULT_MODEL", "offline:gpt", "TOOLBOX_DEFAULT_MODEL: unknown offline model"),
        ("TOOLBOX_AGENT_MODELS", "quiz=gpt-4o", "TOOLBOX_AGENT_MODELS: quiz: model spec 'gpt-4o'"),
        # a port that is not a number used to pass here and crash every command with a traceback
        ("TOOLBOX_REDIS_URL", "redis://h:notaport/0", "TOOLBOX_REDIS_URL: port 'notaport' is"),
        # kombu ignores a socket's ?db= (the broker would use database 0, redis-py database 3)
        ("TOOLBOX_REDIS_URL", "redis+socket:///tmp/r.sock?db=3", "is ?virtual_host=N, as Celery"),
        # kombu fails on any query key but ssl_*: a TypeError in every submit and worker
        (
            "TOOLBOX_REDIS_URL",
            "redis://h:6379/0?password=S3cret",
            "TOOLBOX_REDIS_URL: ?password= cannot be in the URL: Celery's kombu reads only ssl_*"
            " options from it and fails on anything else; the login goes before the host:"
            " redis://user:PASSWORD@host:6379/0",
        ),
        (
            "TOOLBOX_REDIS_URL",
            "rediss://h:6380/0?ssl_cert_reqs=required&socket_timeout=5",
            "TOOLBOX_REDIS_URL: ?socket_timeout= cannot be in the URL",
        ),
        (
            "TOOLBOX_REDIS_URL",
            "redis://h:6379/0?db=1",
            "?db= cannot be in the URL: Celery's kombu reads only ssl_* options from it and fails"
            " on anything else; the database number goes in the path: redis://host:6379/1",
        ),
        ("TOOLBOX_DATABASE_URL", "postgresql://u@h:abc/db", "TOOLBOX_DATABASE_URL: port 'abc'"),
        ("TOOLBOX_DATABASE_URL", "postgresql://u@h:99999/db", "TOOLBOX_DATABASE_URL: port"),
        # port 0 passed, and libpq quietly connected to 5432 instead
        ("TOOLBOX_DATABASE_URL", "postgresql://u:S3cret@h:0/db", "URL: port '0' is not a number"),
        ("TOOLBOX_REDIS_URL", "redis://h:0/0", "TOOLBOX_REDIS_URL: port '0' is not a number"),
        # options libpq or psycopg cannot read passed, then failed every command with a traceback
        (
            "TOOLBOX_DATABASE_URL",
            "postgresql://u:S3cret@h/db?bogus=1",
            'TOOLBOX_DATABASE_URL: invalid URI query parameter: "bogus" (not one of libpq',
        ),
        (
            "TOOLBOX_DATABASE_URL",
            "postgresql://u:S3cret@h/db?connect_timeout=abc",
            "TOOLBOX_DATABASE_URL: bad value for connect_timeout: 'abc'",
        ),
        # a database number kombu cannot read passed, then failed every submit with a traceback
        # (after the task's row was written)
        *(
            (
                "TOOLBOX_REDIS_URL",
                f"redis://:S3cret@h:6379/{path}",
                "TOOLBOX_REDIS_URL: the database number (the path) must be a whole number 0 or"
                f" more, as in redis://host:6379/1; got '{path}'",
            )
            for path in ("abc", "1.5", "0/extra", "%41", "-1")
        ),
        (
            "TOOLBOX_REDIS_URL",
            "redis+socket:///tmp/r.sock?virtual_host=x",
            "the database number (?virtual_host=) must be a whole number 0 or more",
        ),
        (
            "TOOLBOX_REDIS_URL",
            "rediss://:S3cret@h:6380/0?ssl_cert_reqs=bogus",
            "TOOLBOX_REDIS_URL: ?ssl_cert_reqs= must be one of required, optional, none;"
            " got 'bogus'",
        ),
        # JSON-valued nested settings used to raise pydantic-settings' SettingsError (traceback)
        ("TOOLBOX_RETENTION", "notjson", "TOOLBOX_RETENTION: invalid JSON"),
        ("TOOLBOX_SESSIONS", "{", "TOOLBOX_SESSIONS: invalid JSON"),
        # a misspelt retention variable used to be ignored, silently keeping the default age
        ("TOOLBOX_RETENTION_USAGE_DAY", "7", "TOOLBOX_RETENTION_USAGE_DAY: unknown variable"),
        ("TOOLBOX_SESSIONS_GAME_IDLE", "60", "TOOLBOX_SESSIONS_GAME_IDLE: unknown variable"),
        ("TOOLBOX_RETENTION", '{"usage_day": 7}', "TOOLBOX_RETENTION_USAGE_DAY: Extra inputs"),
        # the variable is TOOLBOX_AGENT_MODELS, not TOOLBOX_AGENT_MODELS_CONTENT
        ("TOOLBOX_AGENT_MODELS", '{"content": 5}', "TOOLBOX_AGENT_MODELS: content: Input should"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert expected in error.value.message
    assert "\n" not in error.value.message
    assert "S3cret" not in error.value.message


@pytest.mark.parametrize("value", ["1", "100"])
def test_max_deliveries_takes_1_to_100(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TOOLBOX_MAX_DELIVERIES", value)
    assert load_settings().max_deliveries == int(value)


def test_a_redis_url_is_refused_exactly_when_kombu_cannot_take_it() -> None:
    """The refusal stands for kombu's own failure, a TypeError from ``Connection``."""
    from kombu import Connection

    accepted = [
        "redis://h:6379/0",
        "redis://user:S3cret@h:6379/0",
        "rediss://:S3cret@h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem",
    ]
    refused = [f"redis://h:6379/0?{key}=x" for key in ("password", "username", "db", "timeout")]
    for url in accepted:
        assert Settings(redis_url=url).redis_url == url
        Connection(url).info()
    for url in refused:
        with pytest.raises(ValueError, match="cannot be in the URL"):
            Settings(redis_url=url)
        with pytest.raises(TypeError):
            Connection(url).info()
    for url in ("redis://h:6379/", "redis://h", "rediss://h/0?ssl_cert_reqs=CERT_NONE"):
        assert Settings(redis_url=url).redis_url == url
        Connection(url).info()


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("TOOLBOX_DATABASE_URL", "postgresql://app:Start0fPw/rest0fPw@db:5432/toolbox"),
        ("TOOLBOX_DATABASE_URL", "postgresql://app:Start0fPw?rest0fPw@db/toolbox"),
        ("TOOLBOX_REDIS_URL", "redis://u:Start0fPw#rest0fPw@cache:6379/0"),
        ("TOOLBOX_REDIS_URL", "rediss://default:Start0fPw/rest0fPw@cache/0"),
    ],
)
def test_a_password_with_a_slash_question_mark_or_hash_is_not_quoted_as_the_port(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    # urllib ends the address at the first /, ? or #: "app:Start0fPw" reads as host:port
    monkeypatch.setenv(variable, url)
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    message = error.value.message
    assert message.startswith(f"{variable}: the port is not a number")
    assert "percent-encoded (%2F, %3F, %23)" in message
    assert "Start0fPw" not in message and "rest0fPw" not in message


def test_production_refuses_missing_secrets_to_the_stack_not_to_a_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOOLBOX_ENV", "production")
    with pytest.raises(ConfigurationError, match="TOOLBOX_DATABASE_URL and TOOLBOX_REDIS_URL"):
        load_settings()
    monkeypatch.setenv("TOOLBOX_DATABASE_URL", "postgresql://app:pw@db:5432/toolbox")
    monkeypatch.setenv("TOOLBOX_REDIS_URL", "redis://redis:6379/0")
    service = load_settings()  # a service's client needs the two URLs alone
    with pytest.raises(ConfigurationError, match=r"^TOOLBOX_SECRET_KEYS is required"):
        require_stack_secrets(service)
    monkeypatch.setenv("TOOLBOX_SECRET_KEYS", Fernet.generate_key().decode())
    with pytest.raises(ConfigurationError, match=r"^TOOLBOX_FLOWER_BASIC_AUTH is required"):
        require_stack_secrets(load_settings())
    monkeypatch.setenv("TOOLBOX_FLOWER_BASIC_AUTH", "ops:s3cret-Pass")
    require_stack_secrets(load_settings())


def test_production_refuses_placeholder_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBOX_ENV", "production")
    monkeypatch.setenv("TOOLBOX_SECRET_KEYS", "changeme")
    with pytest.raises(ConfigurationError, match="TOOLBOX_SECRET_KEYS: key #1 of 1 is not a valid"):
        load_settings()


PRODUCTION = {
    "TOOLBOX_ENV": "production",
    "TOOLBOX_SECRET_KEYS": Fernet.generate_key().decode(),
    "TOOLBOX_FLOWER_BASIC_AUTH": "ops:s3cret-Pass",
    "TOOLBOX_DATABASE_URL": "postgresql://app:pw@db:5432/toolbox",
    "TOOLBOX_REDIS_URL": "redis://redis:6379/0",
}


def _production(monkeypatch: pytest.MonkeyPatch) -> None:
    """A complete production configuration in the environment."""
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)


def test_production_accepts_real_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch)
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://app:pw@db:5432/toolbox"


def test_masked_output_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    monkeypatch.setenv("TOOLBOX_SECRET_KEYS", ",".join(keys))
    monkeypatch.setenv("TOOLBOX_FLOWER_BASIC_AUTH", "ops:hunter22")
    monkeypatch.setenv("TOOLBOX_DATABASE_URL", "postgresql://app:topsecret@db/toolbox")
    shown = str(load_settings().masked())
    for secret in (*keys, "hunter22", "topsecret"):
        assert secret not in shown


def test_masked_output_hides_passwords_in_url_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq reads ``?password=`` (the usual form with a socket directory as host)."""
    url = "postgresql:///toolbox?host=/run/pg&password=topsecret&sslpassword=keypass"
    monkeypatch.setenv("TOOLBOX_DATABASE_URL", url)
    shown = load_settings().masked()["database_url"]
    assert "topsecret" not in shown and "keypass" not in shown
    assert shown == ("postgresql+psycopg:///toolbox?host=/run/pg&password=***&sslpassword=***")


def test_masked_output_hides_a_redis_urls_ssl_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py reads ``?ssl_password=`` (the key file's passphrase); ``toolbox config``,
    the settings' ``repr`` and ``model_dump()`` showed it."""
    url = "rediss://:redispw@r.example:6380/0?ssl_password=pw1&ssl_keyfile_password=kfpw"
    monkeypatch.setenv("TOOLBOX_REDIS_URL", url)
    settings = load_settings()
    for shown in (settings.masked()["redis_url"], repr(settings), str(settings.model_dump())):
        assert "redispw" not in shown and "pw1" not in shown and "kfpw" not in shown
    assert settings.masked()["redis_url"] == (
        "rediss://:***@r.example:6380/0?ssl_password=***&ssl_keyfile_password=***"
    )


def test_production_refuses_placeholder_password_in_url_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _production(monkeypatch)
    monkeypatch.setenv("TOOLBOX_DATABASE_URL", "postgresql://app@db/toolbox?password=changeme")
    with pytest.raises(ConfigurationError, match="TOOLBOX_DATABASE_URL holds a placeholder"):
        load_settings()


def test_agent_models_accepts_pairs_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBOX_AGENT_MODELS", "content=openai:gpt-4o-mini, quiz=ollama:llama3")
    assert load_settings().model_for("quiz") == "ollama:llama3"
    monkeypatch.setenv("TOOLBOX_AGENT_MODELS", '{"script": "anthropic:claude-x"}')
    assert load_settings().model_for("script") == "anthropic:claude-x"


@pytest.mark.parametrize("value", ["true", "false"])
def test_task_events_switch_reaches_workers_and_flower(
    monkeypatch: pytest.MonkeyPatch, value: str, tmp_path: Path
) -> None:
    from workers.celeryconfig import build_config
    from workers.flower import flower_launch

    monkeypatch.setenv("TOOLBOX_DATA_DIR", str(tmp_path))  # Flower's state: not ./.toolbox
    monkeypatch.setenv("TOOLBOX_REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("TOOLBOX_TASK_EVENTS", value)
    settings = load_settings()
    config = build_config(settings)
    enabled = value == "true"
    assert config["worker_send_task_events"] is enabled
    assert config["task_send_sent_event"] is enabled
    assert f"--enable_events={enabled}" in flower_launch(settings).argv


@pytest.mark.parametrize("variable", ["TOOLBOX_DATABASE_URL", "TOOLBOX_REDIS_URL"])
def test_production_refuses_placeholder_server_passwords(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    _production(monkeypatch)
    placeholder = {
        "TOOLBOX_DATABASE_URL": "postgresql://toolbox:ChangeMe@db:5432/toolbox",
        "TOOLBOX_REDIS_URL": "redis://:password@broker:6379/0",
    }
    monkeypatch.setenv(variable, placeholder[variable])
    with pytest.raises(ConfigurationError, match=f"{variable} holds a placeholder password"):
        load_settings()


@pytest.mark.parametrize("login", ["admin:admin", "Flower:flower"])
def test_production_refuses_a_flower_password_equal_to_its_user(
    monkeypatch: pytest.MonkeyPatch, login: str
) -> None:
    """The first pair anyone tries on a login page passed the placeholder check."""
    _production(monkeypatch)
    monkeypatch.setenv("TOOLBOX_FLOWER_BASIC_AUTH", f"ops:s3cret-Pass,{login}")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert error.value.message == "TOOLBOX_FLOWER_BASIC_AUTH has a password equal to its user"


def test_model_specs_that_parse_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBOX_DEFAULT_MODEL", "offline:unparseable-scripts")
    monkeypatch.setenv("TOOLBOX_AGENT_MODELS", "quiz=ollama:llama3,content=offline")
    settings = load_settings()
    assert settings.model_for("quiz") == "ollama:llama3"
    assert settings.model_for("content") == "offline"
    assert settings.model_for("review") == "offline:unparseable-scripts"


def test_missing_urls_say_how_a_service_joins_the_embedded_servers() -> None:
    """A service following the README's Python example next to `toolbox up` got told to run it."""
    from workers.celeryconfig import build_config
    from workers.db import database_url
    from workers.settings import get_settings

    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match=r"resolve_servers\(\)"):
            database_url()
        with pytest.raises(ConfigurationError, match=r"resolve_servers\(\)"):
            build_config(load_settings())
    finally:
        get_settings.cache_clear()


SETTING_VARIABLES = sorted(
    {f"TOOLBOX_{name.upper()}" for name in Settings.model_fields}
    | {f"TOOLBOX_RETENTION_{name.upper()}" for name in RetentionPolicy.model_fields}
    | {f"TOOLBOX_SESSIONS_{name.upper()}" for name in SessionPolicy.model_fields}
)


@pytest.mark.parametrize("variable", SETTING_VARIABLES)
def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """``TOOLBOX_DATA_DIR=`` used to mean the current folder (an embedded cluster in the
    project root), ``TOOLBOX_CONCURRENCY=`` an error: empty is now unset everywhere, as the
    Procfile's ``${TOOLBOX_CONCURRENCY:-2}`` and docker-compose's ``${...:-}`` treat it."""
    defaults = load_settings().masked()
    monkeypatch.setenv(variable, "")
    assert load_settings().masked() == defaults


def test_the_repr_of_the_settings_masks_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBOX_DATABASE_URL", "postgresql://app:Db-Pa55word@db/toolbox")
    monkeypatch.setenv("TOOLBOX_REDIS_URL", "rediss://default:Rd-Pa55word@cache:6380/0")
    monkeypatch.setenv("TOOLBOX_FLOWER_BASIC_AUTH", "op:Fl-Pa55word")
    settings = load_settings()
    for shown in (repr(settings), str(settings), f"{settings!r}"):
        assert "Db-Pa55word" not in shown and "Rd-Pa55word" not in shown
        assert "Fl-Pa55word" not in shown
    assert "database_url='postgresql+psycopg://app:***@db/toolbox'" in repr(settings)
    assert "redis_url='rediss://default:***@cache:6380/0'" in repr(settings)
    assert settings.database_url == "postgresql+psycopg://app:Db-Pa55word@db/toolbox"
    # a service logging a dump: model_dump_json() showed both passwords in clear
    for dumped in (settings.model_dump_json(), str(settings.model_dump())):
        assert "Db-Pa55word" not in dumped and "Rd-Pa55word" not in dumped
        assert "Fl-Pa55word" not in dumped
    assert settings.model_dump()["redis_url"] == "rediss://default:***@cache:6380/0"


@pytest.mark.parametrize(
    ("variable", "value", "field", "read"),
    [
        ("TOOLBOX_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("TOOLBOX_LOG_LEVEL", " Warning ", "log_level", "WARNING"),
        ("TOOLBOX_ENV", "Test", "env", "test"),
    ],
)
def test_words_are_read_in_any_case(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, read: str
) -> None:
    """``TOOLBOX_LOG_LEVEL=debug`` was refused (``Input should be 'DEBUG', ...``)."""
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), field) == read
