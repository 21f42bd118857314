"""The one settings class of the worker (environment variables ``TOOLBOX_*``).

Settings are read when first asked for (``get_settings()``), never at import
time, so forked worker processes and tests can change the environment first.
A bad value becomes one ``ConfigurationError`` line naming the variable; an
empty one counts as unset.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

import psycopg
from cryptography.fernet import Fernet
from psycopg.conninfo import conninfo_to_dict, timeout_from_conninfo
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from agents.model_spec import parse_model_spec
from models.errors import ConfigurationError
from models.redaction import MASK, redact
from workers.variables import unknown_variables

ENV_PREFIX = "TOOLBOX_"
PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "password", "placeholder", "xxx"})
AGENT_KINDS = ("supervisor", "content", "quiz", "terrain", "script", "review", "echo")
NESTED = ("retention", "sessions")
"""Settings read from ``TOOLBOX_<NAME>_<FIELD>`` variables (or ``TOOLBOX_<NAME>`` as JSON)."""
HOW_TO_GENERATE_KEY = (
    "generate one with: python -c "
    '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})
"""URL query parameters that carry a password (libpq reads ``?password=``); shown masked, as
every secret parameter (``models.redaction.SECRET_PARAMS``)."""


def _check_port(parts: SplitResult) -> None:
    """A port that is not a number breaks every client later, with a traceback: refuse it now."""
    try:
        parts.port  # noqa: B018 - urllib checks the port when it is read
    except ValueError:
        if "@" not in parts.netloc and "@" in parts.path + parts.query + parts.fragment:
            # user:pass/word@host: the address ends at the first /, ? or #, so what reads as
            # the port is the start of the password; it is not quoted
            raise ValueError(
                "the port is not a number: a password holding /, ? or # must be"
                " percent-encoded (%2F, %3F, %23)"
            ) from None
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise ValueError(f"port {port!r} is not a number from 1 to 65535") from None
    if parts.port == 0:  # libpq would quietly take the default port, 5432
        raise ValueError("port '0' is not a number from 1 to 65535")


def _normalise_database_url(value: str) -> str:
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in {"postgres", "postgresql", "postgresql+psycopg"}:
        rest = value.split("://", 1)[1]
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("needs a host (or ?host=/socket/dir)")
        _check_port(parts)
        _check_libpq_options(f"postgresql://{rest}")
        return f"postgresql+psycopg://{rest}"
    raise ValueError(f"must be a postgresql:// URL, got scheme {scheme or 'none'!r}")


def _check_libpq_options(url: str) -> None:
    """An option libpq does not know (``?bogus=1``) or psycopg cannot read
    (``?connect_timeout=abc``) fails every connection with a traceback: refuse it now."""
    try:
        timeout_from_conninfo(conninfo_to_dict(url))
    except psycopg.ProgrammingError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        for password in url_passwords(url):
            if password:
                message = message.replace(password, MASK)
        if "query parameter" in message:
            message += " (not one of libpq's connection options)"
        raise ValueError(message) from None


_CERT_REQS = ("required", "optional", "none", "CERT_REQUIRED", "CERT_OPTIONAL", "CERT_NONE")
"""The ``?ssl_cert_reqs=`` values kombu takes (any other is a ``KeyError`` at every send)."""


def _check_redis_database(parts: SplitResult) -> None:
    """kombu reads the database number from the path (a socket's from ``?virtual_host=``)
    and fails at every send on anything but a whole number; redis-py quietly uses 0."""
    if parts.scheme == "redis+socket":
        numbers = [value for key, value in parse_qsl(parts.query) if key == "virtual_host"]
        where, example = "?virtual_host=", "redis+socket:///path/redis.sock?virtual_host=1"
    else:
        numbers = [parts.path.removeprefix("/")] if parts.path not in ("", "/") else []
        where, example = "the path", "redis://host:6379/1"
    for number in numbers:
        if not number.isascii() or not number.isdigit():
            raise ValueError(
                f"the database number ({where}) must be a whole number 0 or more, as in"
                f" {example}; got {number[:40]!r}"
            )


def _check_redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"redis", "rediss", "redis+socket"}:
        shown = redact(value)
        raise ValueError(f"must be a redis://, rediss:// or redis+socket:// URL, got {shown!r}")
    if parts.scheme != "redis+socket" and not parts.hostname:
        raise ValueError("needs a host")
    if parts.scheme == "redis+socket" and not parts.path:
        raise ValueError("needs a socket path")
    if parts.scheme == "redis+socket" and any(
        item.startswith("db=") for item in parts.query.split("&")
    ):
        # kombu ignores it (the broker would use database 0) while redis-py honours it
        raise ValueError(
            "a socket's database number is ?virtual_host=N, as Celery's kombu reads it, not ?db=N"
        )
    if parts.scheme != "redis+socket":
        _check_redis_query(parts.query)
    _check_port(parts)
    _check_redis_database(parts)
    return value


_LOGIN_KEYS = frozenset({"password", "username", "user", "userid"})


def _check_redis_query(query: str) -> None:
    """kombu reads only ``ssl_*`` options from a ``redis://`` query and fails on any other.

    It passes the rest to its ``Connection`` as arguments: ``?password=``
    collides with the URL's own (a ``TypeError`` in every submit and worker
    start), ``?socket_timeout=`` is an unexpected argument.
    """
    items = parse_qsl(query, keep_blank_values=True)
    for key, value in items:
        if key == "ssl_cert_reqs" and value not in _CERT_REQS:
            raise ValueError(
                f"?ssl_cert_reqs= must be one of {', '.join(_CERT_REQS[:3])}; got {value[:40]!r}"
            )
    unread = [key for key, _ in items if not key.startswith("ssl_")]
    if not unread:
        return
    key = unread[0]
    where = ""
    if key.lower() in _LOGIN_KEYS:
        where = (
            "; the login goes before the host: redis://user:PASSWORD@host:6379/0 (or"
            " redis://:PASSWORD@...), percent-encoded"
        )
    elif key.lower() == "db":
        where = "; the database number goes in the path: redis://host:6379/1"
    raise ValueError(
        f"?{key}= cannot be in the URL: Celery's kombu reads only ssl_* options from it"
        f" and fails on anything else{where}"
    )


MAX_DAYS = 36_500
"""Retention ages end at 100 years: a larger one overflows PostgreSQL's ``interval``."""
MAX_SECONDS = 366 * 86_400
"""Periods and timeouts end at a year, for the same reason and because more means never."""
MAX_DELIVERIES = 100
"""``TOOLBOX_MAX_DELIVERIES`` ends at 100: each delivery of a task that crashes its worker
costs a worker restart, so a larger limit no longer ends a crash loop in useful time (and
one past PostgreSQL's ``integer``, which counts the deliveries, never ends it)."""


class RetentionPolicy(BaseModel):
    """``TOOLBOX_RETENTION_*``: ages in days before a retention rule applies."""

    # a misspelt variable must not keep the default; inf or nan no age
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    usage_anonymise_days: float = Field(default=30, gt=0, le=MAX_DAYS)
    usage_days: float = Field(default=180, gt=0, le=MAX_DAYS)
    error_logs_resolved_days: float = Field(default=30, gt=0, le=MAX_DAYS)
    error_logs_days: float = Field(default=180, gt=0, le=MAX_DAYS)
    health_checks_days: float = Field(default=14, gt=0, le=MAX_DAYS)
    job_runs_days: float = Field(default=14, gt=0, le=MAX_DAYS)
    task_payload_days: float = Field(default=30, gt=0, le=MAX_DAYS)
    task_rows_days: float = Field(default=365, gt=0, le=MAX_DAYS)
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    max_batches: int = Field(default=200, ge=1)
    step_seconds: float = Field(default=20, gt=0, le=MAX_SECONDS)
    """Per rule and run: at most ``max_batches`` or ``step_seconds``; the next run goes on."""


class SessionPolicy(BaseModel):
    """``TOOLBOX_SESSIONS_*``: when something left open counts as abandoned."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    plugin_heartbeat_seconds: float = Field(default=300, gt=0, le=MAX_SECONDS)
    socket_ping_seconds: float = Field(default=120, gt=0, le=MAX_SECONDS)
    game_idle_seconds: float = Field(default=1800, gt=0, le=MAX_SECONDS)
    game_max_hours: float = Field(default=12, gt=0, le=MAX_SECONDS / 3600)
    player_max_hours: float = Field(default=12, gt=0, le=MAX_SECONDS / 3600)
    collaboration_idle_seconds: float = Field(default=7200, gt=0, le=MAX_SECONDS)


class Settings(BaseSettings):
    """Effective configuration; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        env_file=None,
        validate_default=True,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        # empty is unset, as the Procfile's ${TOOLBOX_CONCURRENCY:-2} reads it: an empty
        # TOOLBOX_DATA_DIR meant the current folder, an embedded cluster in the project root
        env_ignore_empty=True,
        # inf passed ``ge=1`` and then overflowed PostgreSQL's interval at every relay run
        allow_inf_nan=False,
    )

    env: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(default=None, description="PostgreSQL; embedded if unset")
    redis_url: str | None = Field(default=None, description="Redis broker; embedded if unset")
    data_dir: Path = Field(default=Path(".toolbox"), description="embedded servers' data")
    secret_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Fernet keys for LMS secrets, newest first"
    )
    flower_basic_auth: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="user:password pairs, comma separated"
    )
    flower_port: int = Field(default=5555, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    concurrency: int = Field(default=2, ge=1, le=64, description="processes per worker")
    task_events: bool = Field(
        default=True, description="Celery task events (what Flower shows); off saves ~1/3 CPU"
    )
    max_deliveries: int = Field(
        default=5, ge=1, le=MAX_DELIVERIES, description="claims before a task is failed (1-100)"
    )
    default_model: str = Field(default="offline", description="chat model for every agent kind")
    agent_models: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="per-kind model, e.g. content=openai:gpt-4o-mini"
    )
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    sessions: SessionPolicy = Field(default_factory=SessionPolicy)
    redispatch_after_seconds: float = Field(
        default=300.0,
        ge=1,
        le=MAX_SECONDS,
        description="re-send queued tasks not started after this long",
    )

    @field_validator("env", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: Any, info: ValidationInfo) -> Any:
        """``production`` or ``PRODUCTION``, ``debug`` or ``DEBUG``: words, not spellings."""
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @field_serializer("database_url", "redis_url")
    def _masked_url(self, value: str | None) -> str | None:
        """A dump (``model_dump_json()`` in a service's log) shows URLs as ``repr`` does:
        passwords masked.  The settings' own attributes keep them."""
        return redact(value) if value else value

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        return _normalise_database_url(str(value))

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        return _check_redis_url(str(value))

    @field_validator("secret_keys", "flower_basic_auth", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("secret_keys")
    @classmethod
    def _fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        """Checked at startup, so a bad key stops every command, not the first LMS sync."""
        for position, key in enumerate(value, start=1):
            try:
                Fernet(key.get_secret_value())
            except (ValueError, TypeError):
                raise ValueError(
                    f"key #{position} of {len(value)} is not a valid Fernet key"
                    f" (32 url-safe base64-encoded bytes); {HOW_TO_GENERATE_KEY}"
                ) from None
        return value

    @field_validator("agent_models", mode="before")
    @classmethod
    def _agent_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().startswith("{"):
                pairs = json.loads(value, object_pairs_hook=list)
            else:
                pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
                if any(len(pair) != 2 for pair in pairs):
                    raise ValueError("expected kind=provider:model pairs separated by commas")
            kinds = [str(kind).strip() for kind, _ in pairs]
            twice = sorted({kind for kind in kinds if kinds.count(kind) > 1})
            if twice:  # a dict would keep the last one without a word
                raise ValueError(f"agent kind(s) {twice} named more than once")
            return {
                str(kind).strip(): spec.strip() if isinstance(spec, str) else spec
                for kind, spec in pairs
            }
        return value

    @field_validator("agent_models")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(AGENT_KINDS))
        if unknown:
            raise ValueError(f"unknown agent kind(s) {unknown}; known: {list(AGENT_KINDS)}")
        for kind, spec in value.items():
            try:
                parse_model_spec(spec)
            except ValueError as exc:
                raise ValueError(f"{kind}: {exc}") from None
        return value

    @field_validator("default_model")
    @classmethod
    def _model_spec(cls, value: str) -> str:
        parse_model_spec(value)
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _user_password(cls, value: list[SecretStr]) -> list[SecretStr]:
        for pair in value:
            user, sep, password = pair.get_secret_value().partition(":")
            if not (user and sep and password):
                raise ValueError("each entry must be user:password")
        return value

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        """What production needs of every process, a service's client included.

        The stack's own secrets are ``require_stack_secrets``'s: a service that
        only submits and reads tasks holds neither.
        """
        if self.env != "production":
            return self
        for pair in self.flower_basic_auth:
            user, _, password = pair.get_secret_value().partition(":")
            if password.lower() in PLACEHOLDERS:
                raise ValueError(f"{ENV_PREFIX}FLOWER_BASIC_AUTH holds a placeholder password")
            if password.lower() == user.lower():  # admin:admin, flower:flower
                raise ValueError(f"{ENV_PREFIX}FLOWER_BASIC_AUTH has a password equal to its user")
        if self.database_url is None or self.redis_url is None:
            raise ValueError(
                f"{ENV_PREFIX}DATABASE_URL and {ENV_PREFIX}REDIS_URL are required in production "
                "(embedded servers are for development)"
            )
        for name, url in (("DATABASE_URL", self.database_url), ("REDIS_URL", self.redis_url)):
            if any(password.lower() in PLACEHOLDERS for password in url_passwords(url)):
                raise ValueError(f"{ENV_PREFIX}{name} holds a placeholder password")
        return self

    def model_for(self, agent_type: str) -> str:
        return self.agent_models.get(agent_type, self.default_model)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """pydantic's ``repr`` (and ``str``) fields, URL passwords masked as in ``masked``:
        a ``repr`` lands in tracebacks, debug lines and test reports."""
        for name, value in super().__repr_args__():
            yield name, redact(value) if isinstance(value, str) else value

    def masked(self) -> dict[str, Any]:
        """Every setting as a string, secrets and URL passwords masked."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, list) and value and isinstance(value[0], SecretStr):
                shown[name] = [MASK] * len(value)
            elif name.endswith("_url") and value:
                shown[name] = redact(value)
            elif isinstance(value, BaseModel):
                shown[name] = value.model_dump()
            else:
                shown[name] = value if not isinstance(value, Path) else str(value)
        return shown


def url_passwords(url: str) -> list[str]:
    """The passwords ``url`` carries: in its user part and in ``?password=`` parameters."""
    parts = urlsplit(url)
    found = [unquote(parts.password)] if parts.password is not None else []
    query = parse_qsl(parts.query, keep_blank_values=True)
    return found + [value for key, value in query if key.lower() in SECRET_QUERY_KEYS]


def ensure_data_dir(path: Path) -> Path:
    """Create the data folder; an unusable one is a setting to fix, not a mkdir traceback."""
    problem: str | None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file, or a dangling symbolic link
        problem = data_dir_problem(path) or _unusable(path, "not a folder")
    except OSError as exc:  # the check names the cause (``/x/file is not a folder``) if it can
        problem = data_dir_problem(path) or _unusable(path, f"cannot create it ({_reason(exc)})")
    else:
        problem = data_dir_problem(path)  # created, or there already, but maybe not writable
    if problem is not None:
        raise ConfigurationError(problem)
    return path


def data_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the data folder, in one line naming the setting and the path;
    None if it is one or can be created.  Creates nothing (``toolbox config`` asks too)."""
    try:
        if path.exists():
            if not path.is_dir():
                return _unusable(path, "not a folder")
            writable = os.access(path, os.W_OK | os.X_OK)
            return None if writable else _unusable(path, "not writable")
        for parent in Path(os.path.abspath(path)).parents:  # the nearest one there is
            if not parent.exists():
                continue
            if not parent.is_dir():
                return _unusable(path, f"{parent} is not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                return _unusable(path, f"cannot create it: {parent} is not writable")
            return None
    except OSError as exc:  # a parent that cannot be searched
        return _unusable(path, _reason(exc))
    return None


def _unusable(path: Path, reason: str) -> str:
    return f"{ENV_PREFIX}DATA_DIR={path} is not usable: {reason}"


def _reason(exc: OSError) -> str:
    """``Permission denied`` as a clause: ``permission denied``."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        message = str(item["msg"]).removeprefix("Value error, ")
        if not loc:
            lines.append(message)
            continue
        # a nested setting has a variable per field; any other path is inside one value
        depth = 2 if loc[0] in NESTED and len(loc) > 1 else 1
        name = f"{ENV_PREFIX}{'_'.join(loc[:depth]).upper()}"
        inside = ".".join(loc[depth:])
        lines.append(f"{name}: {inside}: {message}" if inside else f"{name}: {message}")
    return "; ".join(lines)


def setting_variables() -> frozenset[str]:
    """The variables settings read: ``TOOLBOX_<NAME>``, and ``TOOLBOX_<NAME>_<FIELD>``."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"{ENV_PREFIX}{name.upper()}")
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            names.update(f"{ENV_PREFIX}{name}_{inner}".upper() for inner in nested.model_fields)
    return frozenset(names)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus ``overrides``); raise one readable error.

    A ``TOOLBOX_*`` variable nobody reads is refused first: a misspelt setting
    would otherwise keep its default without a word.
    """
    unknown = unknown_variables(os.environ, setting_variables(), ENV_PREFIX)
    if unknown:
        raise ConfigurationError(unknown)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{ENV_PREFIX}AGENT_MODELS: invalid JSON ({exc.msg})") from None
    except SettingsError as exc:  # a JSON-valued variable (TOOLBOX_RETENTION, ...) does not parse
        raise ConfigurationError(_describe_unparsed(exc)) from None


def _describe_unparsed(error: SettingsError) -> str:
    field = next((name for name in Settings.model_fields if f'"{name}"' in str(error)), None)
    name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
    cause = error.__cause__
    if isinstance(cause, json.JSONDecodeError):
        reason = f"invalid JSON ({cause.msg})"
    else:
        reason = str(error)
    hint = f"; or set {name}_<FIELD> variables" if field in NESTED else ""
    return f"{name}: {reason}{hint}"


def require_stack_secrets(settings: Settings) -> None:
    """Production's worker stack (workers, beat, Flower, ``toolbox`` commands) needs its secrets.

    ``TOOLBOX_SECRET_KEYS`` opens every stored LMS secret and
    ``TOOLBOX_FLOWER_BASIC_AUTH`` guards Flower; a service that only hands
    over agent tasks through ``workers.client`` needs neither, and should not
    hold the key to every school's LMS tokens.
    """
    if settings.env != "production":
        return
    if not settings.secret_keys:
        raise ConfigurationError(f"{ENV_PREFIX}SECRET_KEYS is required in production")
    if not settings.flower_basic_auth:
        raise ConfigurationError(f"{ENV_PREFIX}FLOWER_BASIC_AUTH is required in production")


@functools.cache
def get_settings() -> Settings:
    return load_settings()
