"""One rule masks URL secrets wherever text is shown: LMS messages, logs, config, CLI errors."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

import httpx
import pytest

from lms.http import LMSHttp
from models import redaction
from models.redaction import redact
from workers.cli.failures import _scrub
from workers.cli.logs import command_line
from workers.logs import TextFormatter
from workers.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``_scrub`` also masks the configured passwords: one of each kind, seen nowhere else."""
    for key in list(os.environ):
        if key.startswith("TOOLBOX_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TOOLBOX_DATABASE_URL", "postgresql://app:Db-Pa55@db/toolbox")
    monkeypatch.setenv("TOOLBOX_REDIS_URL", "redis://:Rd-Pa55@r:6379/0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _logged(text: str) -> str:
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, text, None, None)
    return TextFormatter("%(message)s").format(record)


def _command_logged(text: str) -> str:
    record = logging.LogRecord("lms.http", logging.WARNING, __file__, 1, text, None, None)
    return command_line(record)


def _config(text: str) -> str:
    shown: str = Settings.model_construct(database_url=text).masked()["database_url"]
    return shown


SHOWN_BY: dict[str, Callable[[str], str]] = {
    "LMS messages (redact)": redact,
    "log lines": _logged,
    "log lines of a command": _command_logged,
    "toolbox config": _config,
    "CLI connection errors": _scrub,
}
CASES = [
    # a password in the user part, one with an @, a / or a # in it, and digits alone
    ("postgresql://app:S3cret@db/toolbox", "postgresql://app:***@db/toolbox"),
    ("redis://:S3cret@h:6379/0", "redis://:***@h:6379/0"),
    ("HTTPS://admin:S3c@ret@Canvas.example.edu:8443/x?a=1#top",
     "HTTPS://admin:***@Canvas.example.edu:8443/x?a=1#top"),
    ("postgresql://app:S3/cret@db/toolbox", "postgresql://app:***@db/toolbox"),
    ("redis://:S3#cret@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://:123456@h:6379/0", "redis://:***@h:6379/0"),
    # a user part without a password: often a token
    ("https://S3cretToken@canvas.example.edu/", "https://***@canvas.example.edu/"),
    # secret query parameters, in any case
    ("postgresql:///toolbox?host=/run/pg&Password=S3cret&SSLPASSWORD=S3cret2",
     "postgresql:///toolbox?host=/run/pg&Password=***&SSLPASSWORD=***"),
    ("https://lms.test/server.php?wstoken=S3cret&x=1&Access_Token=S3cret2",
     "https://lms.test/server.php?wstoken=***&x=1&Access_Token=***"),
    ("https://idp.test/t?client_secret=S3cret&TOKEN=S3cret2&secret=S3cret3#f",
     "https://idp.test/t?client_secret=***&TOKEN=***&secret=***#f"),
    # API keys, OAuth 1 tokens, assertions and signed URLs that a next-page link may carry
    ("https://gw.test/v1/x?page=2&key=S3cret&oauth_token=S3cret2&client_assertion=e.y.J",
     "https://gw.test/v1/x?page=2&key=***&oauth_token=***&client_assertion=***"),
    ("https://s3.test/f?X-Amz-Signature=S3cret&verifier=S3cret2&keyword=kept",
     "https://s3.test/f?X-Amz-Signature=***&verifier=***&keyword=kept"),
    # malformed addresses an older version may have stored: shown, never a crash
    ("https://admin:S3cret@canvas.example.edu:port/", "https://admin:***@canvas.example.edu:port/"),
    ("https://admin:S3cret@[::1/", "https://admin:***@[::1/"),
    # several URLs in one text, and URLs quoted in a message
    ("moved from https://a:S3cret@old.example.edu to https://b:S3cret2@new.example.edu/x?token=S3",
     "moved from https://a:***@old.example.edu to https://b:***@new.example.edu/x?token=***"),
    ('missing "=" after "postgresql://u:S3cret@h/d" in connection info string',
     'missing "=" after "postgresql://u:***@h/d" in connection info string'),
    # no secret: left alone (an @ in a path, e-mail addresses)
    ("https://canvas.example.edu:8443/users/a@b?page=2",
     "https://canvas.example.edu:8443/users/a@b?page=2"),
    ("no URL here, mail admin@example.edu; postgres@db",
     "no URL here, mail admin@example.edu; postgres@db"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "shown"), CASES)
def test_every_place_masks_every_url_secret_alike(text: str, shown: str) -> None:
    assert {where: show(text) for where, show in SHOWN_BY.items()} == dict.fromkeys(SHOWN_BY, shown)


def test_the_cli_masks_the_configured_passwords_wherever_they_appear() -> None:
    message = 'password authentication failed: "Db-Pa55"; AUTH Rd-Pa55 refused'
    assert _scrub(message) == 'password authentication failed: "***"; AUTH *** refused'


def test_an_httpx_url_is_masked_as_its_text() -> None:
    text = "https://admin:S3cret@canvas.example.edu/api/v1?access_token=S3cret"
    masked = "https://admin:***@canvas.example.edu/api/v1?access_token=***"
    assert redact(str(httpx.URL(text))) == masked
    with LMSHttp(text) as client:  # what the LMS layer shows of its address
        assert repr(client) == f"LMSHttp(base_url={masked!r})"


def test_remembering_a_secret_again_is_free_and_a_new_one_still_counts() -> None:
    first, second = "sk-first-remembered-key-0001", "sk-second-remembered-key-0002"
    redaction.remember(first)
    masks = redaction._remembered
    redaction.remember(first, "short")  # a client built again: the masks are not rebuilt
    assert redaction._remembered is masks
    redaction.remember(first, second)
    assert redact(f"Invalid API key: {first!r} then {second}") == "Invalid API key: '***' then ***"
